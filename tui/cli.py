"""The `shake` console command. No subcommand opens the app; the rest run headless.

Heavy imports (Textual, torch, transformers) happen inside the subcommand that needs them, so that
`shake --help` and the headless commands start fast.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from engine import cli as engine_cli
from engine.config import default_data_dir, load_config
from engine.errors import ShakeError
from engine.logs import LOG_NAME, log_file, route_third_party_output


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="shake",
        description="Precision Shaking: change scripts with local LLM teachers, collect a DORPO dataset, "
        "and distill it into a small private model. With no command, opens the app.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    app = sub.add_parser("app", help="open the app (the default)")
    app.add_argument("script", nargs="?", type=Path, help="open a new session on this script")
    app.add_argument("--request", "-r", default="", help="the change request for SCRIPT")
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
    from tui.app import ShakeApp

    ShakeApp(script=getattr(args, "script", None), request=getattr(args, "request", "")).run()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", cmd_app)
    route_third_party_output(verbose=args.verbose, log_path=log_path)
    try:
        return func(args)
    except ShakeError as err:
        print(f"shake: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nshake: interrupted; the session state is saved", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
