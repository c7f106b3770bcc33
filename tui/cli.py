"""The `shake` console command. No subcommand opens the app; the rest run headless.

Heavy imports (Textual, torch, transformers) happen inside the subcommand that needs them, so that
`shake --help` and the headless commands start fast.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from engine import cli as engine_cli
from engine.errors import ShakeError


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
    return parser


def cmd_app(args: argparse.Namespace) -> int:
    from tui.app import ShakeApp

    return run_app(ShakeApp(script=getattr(args, "script", None), request=getattr(args, "request", "")))


def run_app(app) -> int:
    """Run the app on this terminal (see `tui.terminal`); its exit status."""
    from tui.terminal import driver_for, own_terminal

    log = app.config.data_dir / "app.log"
    with own_terminal(log) as terminal:
        if terminal is not None:
            app.driver_class = driver_for(terminal) or app.driver_class
            app.terminal = terminal  # programs the app hands the screen to (the editor) write here too
        app.run()
    if app.return_code:
        print(f"shake: the app stopped on an error; details in {log}", file=sys.stderr)
    return app.return_code or 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", cmd_app)
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
