"""What the lead and the worker are told about the script's project, and its record for the rows.

Per cycle, from the session's `RunSpec` and the script the worker is given: one paragraph on how the
script runs (its path in the project, the run command, the check), then the repo map of the project
modules it imports (engine/prompts/repo_map.py). The same value gives the `GivenContext` that the
step's prompt stores, so that every row names the context its messages carried.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from engine.execution import project
from engine.prompts import repo_map
from engine.store.schema import GivenContext


@dataclass(frozen=True)
class PromptContext:
    text: str  # appended to the lead's and the worker's user messages
    record: GivenContext


def how_it_runs(spec: project.RunSpec) -> str:
    text = (f"The script is {spec.script} in a project. It runs as `{spec.run_text}` from the project root, "
            "which it can read but not write (write only under $HOME or /tmp)")
    text += f"; after a clean run, `{spec.check_text}` checks it." if spec.check else "."
    return text


def for_prompt(spec: project.RunSpec | None, script: str) -> PromptContext | None:
    """The project context for a cycle whose worker gets `script`; None outside project mode."""
    if spec is None:
        return None
    root = Path(spec.root)
    mapped = repo_map.build(root, spec.script, script)
    exposure = project.scan(root, spec.bounds)
    text = how_it_runs(spec) + (f"\n\n{mapped.text}" if mapped.text else "")
    record = GivenContext(root=spec.root, script=spec.script, run=spec.run, check=spec.check, modules=mapped.modules,
                          left_out=mapped.left_out, files_sha=project.files_digest(root, exposure))
    return PromptContext(text, record)
