"""Where third-party chatter goes: the log file, not the terminal (unless `shake --verbose`).

shake's output is one line per outcome on standard output and errors on standard error. The libraries
it drives have their own ideas: bitsandbytes logs that it found no CPU kernel package, transformers
and torch warn about deprecations, transformers and `datasets` draw progress bars, peft warns about
configs it did not find. None of that is something the user can act on, so by default their warnings
and log records go to `DATA/shake.log` and their progress bars are switched off; `--verbose` leaves
them all on the terminal, as the libraries have them.

Why environment variables: transformers, huggingface_hub and `datasets` read their switches once, at
import, and shake imports them late (inside the command that needs them) to start fast; variables
set before any such import are the one switch that reaches all of them without importing them up front.
shake's own warnings (a skipped partial checkpoint, say) are for the user and still go to stderr.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from pathlib import Path
from typing import Callable

QUIET_ENVIRONMENT = {
    "TRANSFORMERS_VERBOSITY": "error",  # transformers keeps its own stderr handler; this mutes its warnings
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",  # transformers' "Loading weights" bars go through huggingface_hub
    "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",  # "Saving the dataset" during `data export --hf`
    "TOKENIZERS_PARALLELISM": "false",  # the fork warning of the tokenizers library
    # plain tqdm bars, such as transformers' "Converting and de-quantizing GGUF tensors"; shake's own
    # training bar asks for itself explicitly (disable=False) and stays
    "TQDM_DISABLE": "1",
}
LOG_NAME = "shake.log"
_SHAKE_SOURCES = tuple(str(Path(__file__).resolve().parents[1] / pkg) + os.sep for pkg in ("engine", "trainer", "tui"))


class _LogFile(logging.Handler):
    """Appends to the log file, opened at the first record (most commands never write one); a log that
    cannot be written drops the record rather than fail the command."""

    def __init__(self, path: Callable[[], Path]) -> None:
        super().__init__(logging.WARNING)
        self.path = path
        self.stream = None
        self.failed = False
        self.setFormatter(logging.Formatter("%(asctime)s %(process)d %(name)s %(levelname)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        if self.failed:
            return
        try:
            if self.stream is None:
                target = self.path()
                target.parent.mkdir(parents=True, exist_ok=True)
                self.stream = open(target, "a", encoding="utf-8")  # noqa: SIM115 (kept open for the process)
            self.stream.write(self.format(record) + "\n")
            self.stream.flush()
        except (OSError, ValueError):
            self.failed = True

    def close(self) -> None:
        if self.stream is not None:
            self.stream.close()
            self.stream = None
        super().close()


_installed: _LogFile | None = None
_original_showwarning = warnings.showwarning


def _showwarning(message, category, filename, lineno, file=None, line=None) -> None:
    if str(Path(filename).resolve()).startswith(_SHAKE_SOURCES):
        print(f"shake: warning: {message}", file=sys.stderr)
        return
    logging.getLogger("py.warnings").warning("%s", warnings.formatwarning(message, category, filename, lineno, line).rstrip())


def route_third_party_output(*, verbose: bool, log_path: Callable[[], Path]) -> None:
    """Called once at the start of a command, before heavy imports. Idempotent (tests call main twice)."""
    global _installed
    if verbose:
        return
    for key, value in QUIET_ENVIRONMENT.items():
        os.environ.setdefault(key, value)
    root = logging.getLogger()
    if _installed is not None:
        root.removeHandler(_installed)
        _installed.close()
    _installed = _LogFile(log_path)
    root.addHandler(_installed)  # with a handler on the root, logging's last-resort stderr handler stays unused
    root.setLevel(logging.WARNING)
    warnings.showwarning = _showwarning
    _quiet_loaded_libraries()


def _quiet_loaded_libraries() -> None:
    """The environment reaches libraries imported from now on; ones already imported are told directly."""
    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    if "datasets" in sys.modules:
        import datasets

        datasets.disable_progress_bars()


def log_file(data_dir: Path) -> Path:
    return Path(data_dir) / LOG_NAME
