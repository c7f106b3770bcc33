"""`shake train`, `shake eval`, `shake student export`."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from engine.execution.sanitize import sanitize
from trainer.config import add_arguments, from_args


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="distill the dataset into the student with DORPO (LoRA / QLoRA)")
    add_arguments(p)
    p.add_argument("--stop-file", type=Path, default=None,
                   help="stop cleanly (checkpoint, resumable) after the step during which this file appears")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="the student's loss on held-out rows; --generate also runs its scripts")
    p.add_argument("run", help="run name (under DATA/runs) or run directory")
    p.add_argument("--generate", action="store_true", help="generate a script per held-out row and run it")
    p.add_argument("--max-new-tokens", type=int, default=512)
    p.add_argument("--scoreboard", action="store_true",
                   help="replay the held-out steps with the student, the base model and the teacher as the worker; "
                        "writes RUN/scoreboard.json")
    p.add_argument("--max-steps", type=int, default=0, help="with --scoreboard: at most N held-out steps (0: all)")
    p.set_defaults(func=cmd_eval)

    student = sub.add_parser("student", help="the trained student").add_subparsers(dest="student_cmd", required=True)
    p = student.add_parser("export", help="write the adapter and a merged Hugging Face model directory")
    p.add_argument("run", help="run name or directory")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--ollama", action="store_true", help="also write a Modelfile that `ollama create` accepts")
    p.add_argument("--gguf", action="store_true", help="also write student.gguf (F32, Llama architecture) for llama.cpp")
    p.set_defaults(func=cmd_student_export)


def cmd_train(args: argparse.Namespace) -> int:
    from engine.config import load_config

    config = from_args(args)
    config.validate()  # before torch is imported: a bad flag is refused at once
    from trainer.recipe import train

    stop = args.stop_file
    # the progress bar is for a person at a terminal; piped or captured, the lines below say it all
    result = train(config, load_config().data_dir, progress=sys.stderr.isatty(),
                   should_stop=(lambda step: stop.exists()) if stop else None)
    if os.environ.get("RANK", "0") == "0":  # one summary for a multi-process run
        print(sanitize(f"done: {result.steps} steps; adapter in {result.adapter_dir}"))
        print(json.dumps(result.final_metrics))
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from engine.config import load_config
    from trainer.evaluate import evaluate
    from trainer.trained import resolve_run

    config = load_config()
    if args.scoreboard:
        from trainer.scoreboard import scoreboard

        if args.max_steps < 0 or args.max_new_tokens < 1:
            from engine.errors import InputError

            raise InputError("--max-steps must be >= 0 and --max-new-tokens >= 1")
        run_dir = resolve_run(args.run, config.data_dir)
        board = scoreboard(run_dir, config, max_new_tokens=args.max_new_tokens, max_steps=args.max_steps)
        print(sanitize("\n".join(board.lines())))  # model names are the servers' words
        from engine.student.runs import RunDir

        print(sanitize(f"written to {RunDir(run_dir).scoreboard}"))
        return 0
    result = evaluate(resolve_run(args.run, config.data_dir), generate=args.generate,
                      max_new_tokens=args.max_new_tokens, runner=config.runner)
    print(json.dumps(result, indent=1))
    return 0


def cmd_student_export(args: argparse.Namespace) -> int:
    from engine.config import load_config
    from engine.inputs import check_output
    from trainer.trained import resolve_run
    from trainer.export import export_student

    check_output(args.out, directory=True)
    exported = export_student(resolve_run(args.run, load_config().data_dir), args.out, ollama=args.ollama,
                              gguf=args.gguf)
    print(sanitize("\n".join(exported.lines())))
    return 0
