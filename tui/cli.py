"""The `shake` console command. No subcommand opens the app; the rest run headless.

Heavy imports (Textual, torch, transformers) happen inside the subcommand that needs them, so that
`shake --help` and the headless commands start fast.

Whatever happens, the user sees one line, never a traceback: a `ShakeError` (bad input, an
unreachable teacher) is its own sentence and exit code 2; a reader that closed the pipe early
(`shake config --defaults | head`) ends the command quietly, as `cat` would (exit 141, a shell's code
for SIGPIPE); an ordinary I/O error (a read-only directory, a full disk, standard output on
/dev/full or closed) is one line naming the path and the system's words, exit code 1; anything else
is a bug in shake: one line naming it and the log file that holds the traceback
(`DATA/logs/crash-*.log`), and exit code 70 (EX_SOFTWARE).
"""

from __future__ import annotations

import argparse
import datetime
import os
import shutil
import sys
import tempfile
import traceback
from pathlib import Path
from typing import TextIO

from engine import cli as engine_cli
from engine.config import default_data_dir, load_config
from engine.errors import ShakeError
from engine.execution.sanitize import sanitize
from engine.logs import LOG_NAME, log_file, route_third_party_output

EXIT_IO = 1
EXIT_BAD_INPUT = 2
EXIT_BROKEN_PIPE = 141
EXIT_BUG = 70
STDOUT = "standard output"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="shake",
        description="Precision Shaking: change scripts with local LLM teachers, collect a DORPO dataset, "
        "and distill it into a small private model. With no command, opens the app.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    app = sub.add_parser("app", help="open the app (the default)")
    app.add_argument("script", nargs="?", type=Path, help="open a new session on this script")
    request = app.add_mutually_exclusive_group()
    request.add_argument("--request", "-r", default="", help="the change request for SCRIPT")
    request.add_argument("--request-file", type=Path, metavar="PATH", help="read the change request from a file")
    app.set_defaults(func=cmd_app)
    engine_cli.add_commands(sub)
    try:
        from trainer import cli as trainer_cli
    except ImportError:  # the trainer's dependencies are optional for the engine
        trainer_cli = None
    if trainer_cli is not None:
        trainer_cli.add_commands(sub)
    add_verbose(parser)
    return parser


def add_verbose(parser: argparse.ArgumentParser, *, top: bool = True) -> None:
    """`--verbose` before or after the command: `shake --verbose train` and `shake train --verbose`."""
    parser.add_argument("--verbose", "-v", action="store_true", default=False if top else argparse.SUPPRESS,
                        help="show the warnings, log messages and progress bars of the libraries shake uses "
                        f"(otherwise they go to DATA/{LOG_NAME})")
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                add_verbose(child, top=False)


def log_path() -> Path:
    """DATA/shake.log, for the libraries' messages; resolved when the first one arrives."""
    try:
        return log_file(load_config().data_dir)
    except ShakeError:  # a broken config is reported by the command itself
        return log_file(default_data_dir())


def cmd_app(args: argparse.Namespace) -> int:
    from engine.inputs import read_request
    from tui.app import ShakeApp

    request = read_request(getattr(args, "request", ""), getattr(args, "request_file", None))
    return run_app(ShakeApp(script=getattr(args, "script", None), request=request))


def run_app(app) -> int:
    """Run the app on this terminal (see `tui.terminal`); its exit status."""
    from tui.hangup import HANGUP_EXIT_CODE
    from tui.terminal import driver_for, own_terminal

    log = app.config.data_dir / "app.log"
    with own_terminal(log) as terminal:
        if terminal is not None:
            app.driver_class = driver_for(terminal) or app.driver_class
            app.terminal = terminal  # programs the app hands the screen to (the editor) write here too
        app.run()
    if app.return_code and app.return_code != HANGUP_EXIT_CODE:  # after a hangup nobody reads it
        print(sanitize(f"shake: the app stopped on an error; details in {log}"), file=sys.stderr)
    return app.return_code or 0


def crash_log_dir() -> Path:
    """Where a bug's traceback goes: DATA/logs (the data directory as configured, else the default)."""
    from engine import config

    try:
        data_dir = config.load_config().data_dir
    except Exception:  # the config may be what is broken; the log must still be written
        data_dir = Path(os.environ["SHAKE_DATA"]) if os.environ.get("SHAKE_DATA") else config.default_data_dir()
    return data_dir / "logs"


def write_crash_log(err: BaseException, argv: list[str]) -> Path:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    text = (f"shake {' '.join(argv)}\npython {sys.version.split()[0]}\n\n"
            + "".join(traceback.format_exception(err)))
    for folder in (crash_log_dir, lambda: Path(tempfile.gettempdir())):
        try:
            path = folder() / f"crash-{stamp}-{os.getpid()}.log"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            return path
        except Exception:
            continue
    raise err


def _quiet_stdout() -> None:
    """The reader is gone: point stdout at /dev/null so that the final flush does not complain."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


class NamedStdout:
    """sys.stdout for a headless command: a write error names standard output (an OSError from the
    bare file descriptor names nothing, and `shake data export > /dev/full` must say where it failed)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def _named(self, call, *args):
        try:
            return call(*args)
        except BrokenPipeError:
            raise
        except OSError as err:
            raise OSError(err.errno, err.strerror, STDOUT) from None

    def write(self, text: str) -> int:
        return self._named(self.stream.write, text)

    def flush(self) -> None:
        self._named(self.stream.flush)

    def __getattr__(self, name: str):
        return getattr(self.stream, name)


def describe_os_error(err: OSError) -> str:
    """`PATH: the system's words` (both paths of a rename or a copy), for an I/O error that is not a bug."""
    words = err.strerror or str(err)
    paths = [str(p) for p in (err.filename, err.filename2) if p is not None]
    if isinstance(err, shutil.Error) and err.args and isinstance(err.args[0], list):  # copytree's list
        source, target, why = err.args[0][0]
        paths, words = [source, target], why
    return sanitize(f"{' -> '.join(paths)}: {words}" if paths else f"an I/O error: {words}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", cmd_app)
    route_third_party_output(verbose=args.verbose, log_path=log_path)
    if func is not cmd_app and sys.stdout is None:  # started with `>&-`: every line it prints would vanish
        print(f"shake: {STDOUT} is closed; send it to a file or /dev/null", file=sys.stderr)
        return EXIT_IO
    original = sys.stdout
    if func is not cmd_app:
        sys.stdout = NamedStdout(original)
    try:
        code = func(args)
        sys.stdout.flush()  # here, not at exit, so that a closed pipe or a full disk is caught below
        return code
    except ShakeError as err:
        print(f"shake: {sanitize(str(err))}", file=sys.stderr)  # it may quote a file name or a server's reply
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("\nshake: interrupted; the session state is saved", file=sys.stderr)
        return 130
    except BrokenPipeError:
        sys.stdout = original
        _quiet_stdout()
        return EXIT_BROKEN_PIPE
    except OSError as err:  # the file system's refusal (permissions, space, a read-only mount), not a bug
        sys.stdout = original
        if err.filename == STDOUT:
            _quiet_stdout()  # what is still buffered would fail again at exit
        print(f"shake: {describe_os_error(err)}", file=sys.stderr)
        return EXIT_IO
    except Exception as err:
        log = write_crash_log(err, argv)
        print(f"shake: internal error, a bug in shake ({type(err).__name__}: {sanitize(str(err)[:200])}); "
              f"the traceback is in {log}", file=sys.stderr)
        return EXIT_BUG
    finally:
        if isinstance(sys.stdout, NamedStdout):
            sys.stdout = original


if __name__ == "__main__":
    sys.exit(main())
