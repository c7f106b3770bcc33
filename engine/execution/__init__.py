"""Running model-written scripts: the runner (public API: `run_script`, `RunResult`), the bubblewrap
sandbox, the launcher inside it, the seccomp filter, per-run cgroups, host run directories, and the
sanitizer for what scripts and models print."""

from engine.execution.runner import RunResult, run_script
from engine.execution.sanitize import sanitize

__all__ = ["RunResult", "run_script", "sanitize"]
