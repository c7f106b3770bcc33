"""Every template of the task suite, by category (one module per category, each with its `TEMPLATES`)."""

from __future__ import annotations

from engine.tasks.task import Template
from engine.tasks.templates import bugfix, cli, data, docs, errors, feature, formatting, refactor

TEMPLATES: tuple[Template, ...] = (
    feature.TEMPLATES + bugfix.TEMPLATES + refactor.TEMPLATES + cli.TEMPLATES
    + data.TEMPLATES + formatting.TEMPLATES + errors.TEMPLATES + docs.TEMPLATES
)
