"""Headless commands: `shake session`, `shake sessions`, `shake data ...`, `shake teachers`, `shake config`."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import TextIO

from engine.agents.analyzer import SOURCES, Classification
from engine.config import DEFAULT_CONFIG_TOML, Config, config_path, load_config, write_default_config
from engine.config_edit import add_teacher
from engine.errors import AttemptsExhausted, InputError
from engine.execution import sandbox
from engine.execution.sanitize import sanitize
from engine.inputs import bounded_int, check_output, decode_utf8, read_request, read_text
from engine.session import Session, SessionEvent
from engine.store import DatasetStore
from engine.store.export import FORMATS, export_dataset, export_hf
from engine.teachers.discovery import Discovery, describe_model, discover, inspect_source, report_lines, teacher_config
from engine.teachers.pool import TeacherPool

EXIT_PAUSED = 3  # the session was saved unfinished (no more feedback, or attempts exhausted)


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("session", help="run a session headless: plan, propose, review from a feedback file or stdin")
    p.add_argument("script", nargs="?", type=Path, help="the Python script to change")
    request = p.add_mutually_exclusive_group()
    request.add_argument("--request", "-r", default=None, help="the change request")
    request.add_argument("--request-file", type=Path, metavar="PATH", help="read the change request from a file")
    p.add_argument("--feedback", "-f", default="-", help="a file with one feedback line per review, or - for stdin")
    p.add_argument("--max-steps", type=bounded_int(1, 100), default=None, help="cut the plan to at most N steps")
    p.add_argument("--resume", metavar="SESSION_ID", help="resume a saved session instead of starting one")
    p.add_argument("--out", type=Path, help="write the finished script here (default: print it)")
    p.add_argument("--edit", action="store_true",
                   help="open each proposal in $EDITOR first: a changed script is the step's accepted output "
                        "(origin user_edit); an unchanged one goes on to the feedback line")
    p.add_argument("--force", action="store_true", help="with --out: replace an existing file")
    p.set_defaults(func=cmd_session)

    p = sub.add_parser("sessions", help="list saved sessions and their state")
    add_skip_bad(p)
    p.set_defaults(func=cmd_sessions)

    data = sub.add_parser("data", help="the DORPO dataset").add_subparsers(dest="data_cmd", required=True)
    p = data.add_parser("stats", help="row counts by kind")
    p.add_argument("--json", action="store_true", help="print JSON")
    add_skip_bad(p)
    p.set_defaults(func=cmd_data_stats)
    p = data.add_parser("export", help="write the dataset in TRL's prompt/chosen/rejected layout")
    p.add_argument("--format", choices=FORMATS, default="jsonl")
    target = p.add_mutually_exclusive_group()
    target.add_argument("--out", type=Path, help="a JSONL or Parquet file (default: JSONL on standard output)")
    target.add_argument("--hf", type=Path, metavar="DIR", help="a Hugging Face `datasets` directory (save_to_disk)")
    p.add_argument("--paired-only", action="store_true", help="only rows that have a rejected (ORPO/DPO need one)")
    p.add_argument("--student", default="", metavar="MODEL",
                   help="with --format axolotl: the student whose tokenizer the ids must index (default: the bundled "
                   "SmolLM2, the trainer's default student)")
    add_skip_bad(p)
    p.add_argument("--force", action="store_true", help="with --out: replace an existing file")
    p.set_defaults(func=cmd_data_export)
    p = data.add_parser("check", help="verify every row against the dataset's rules; --fix repairs what is safe")
    p.add_argument("--fix", action="store_true", help="back up the data, then drop soft labels that break the rules "
                   "(the hard labels stay) and set aside files that are not session files")
    p.add_argument("--json", action="store_true", help="print the problems as JSON lines")
    p.set_defaults(func=cmd_data_check)
    p = data.add_parser("rescore", help="soft labels from a teacher for every chosen it did not score (resumable)")
    p.add_argument("--teacher", default=None, help="the scoring teacher (default: [student] kd_teacher)")
    p.set_defaults(func=cmd_data_rescore)

    p = sub.add_parser("teachers", help="list the configured teachers and check that each answers; "
                       "--discover finds local Ollama and llama.cpp servers; `add` configures one")
    p.add_argument("--discover", action="store_true", help="list the models local servers offer (loopback only)")
    p.add_argument("--host", action="append", default=[], metavar="URL", help="with --discover: also probe this host")
    p.add_argument("--json", action="store_true", help="with --discover: print JSON")
    p.set_defaults(func=cmd_teachers)
    add = p.add_subparsers(dest="teachers_cmd").add_parser(
        "add", help="configure a found model as a teacher, first in the worker's list")
    add.add_argument("name", help="the teacher's name in the config")
    add.add_argument("--from", dest="source", required=True, metavar="SOURCE",
                     help="ollama:MODEL or openai:URL#MODEL")
    add.add_argument("--host", metavar="URL", help="the Ollama server (default: OLLAMA_HOST, else 127.0.0.1:11434)")
    add.add_argument("--force", action="store_true", help="replace a teacher of that name")
    add.set_defaults(func=cmd_teachers_add)

    p = sub.add_parser("config", help="show where the configuration and data live; --init writes the defaults")
    p.add_argument("--init", action="store_true", help="write the documented default config file")
    p.add_argument("--force", action="store_true", help="with --init: replace an existing file")
    p.add_argument("--defaults", action="store_true", help="print the documented defaults")
    p.set_defaults(func=cmd_config)

    from engine.prompts.cli import add_commands as add_prompt_commands

    add_prompt_commands(sub)


def add_skip_bad(p: argparse.ArgumentParser) -> None:
    p.add_argument("--skip-bad", action="store_true",
                   help="leave out data files that are not valid session files (each is named) instead of stopping")


def report_skipped(store: DatasetStore) -> None:
    """Say which files a --skip-bad run left out; never skip silently."""
    for bad in store.bad_files.values():
        print(f"skipped {bad.path}: {bad.problem}", file=sys.stderr)
    if store.bad_files:
        print(f"skipped {len(store.bad_files)} bad file(s); `shake data check` lists every problem", file=sys.stderr)


def read_store(config: Config, args: argparse.Namespace) -> DatasetStore:
    """A read-only view: works beside a running app or session, which holds the writer's lock."""
    return DatasetStore(config.data_dir, writable=False, skip_bad=getattr(args, "skip_bad", False))


# -- session ----------------------------------------------------------------------------------
class FeedbackSource:
    """One feedback line per review, from a file or stdin; None at the end of input.

    A file is read and checked whole before the session starts; a line from stdin is decoded when it
    comes, and one that is not UTF-8 stops the session before anything of that review changes."""

    def __init__(self, spec: str) -> None:
        self.lines: list[str] | None = None
        self.stream: TextIO = sys.stdin
        if spec == os.devnull:  # the usual way to say "no feedback": pause at the first review
            self.lines = []
        elif spec != "-":
            self.lines = read_text(Path(spec), "feedback file").splitlines()
        self.interactive = self.lines is None and self.stream.isatty()
        self.number = 0

    def _read(self) -> str:
        self.number += 1
        if self.lines is not None:
            return self.lines.pop(0) + "\n" if self.lines else ""
        buffer = getattr(self.stream, "buffer", None)
        if buffer is None:  # already text (a test's StringIO)
            return self.stream.readline()
        return decode_utf8(buffer.readline(), f"feedback line {self.number} on stdin")

    def next_line(self, prompt: str) -> str | None:
        while True:
            if self.interactive:
                print(prompt, end="", flush=True)
            line = self._read()
            if not line:
                return None
            if line.strip() and not line.lstrip().startswith("#"):
                return line.strip()


def print_event(event: SessionEvent) -> None:
    headers = {
        "plan": "== plan",
        "instruction": f"== instruction (cycle {event.data.get('cycle')}, worker: {event.data.get('teacher')})",
        "worker": f"== worker output ({event.data.get('teacher')})",
        "run": "== run log",
        "proposal": "== diff",
    }
    if event.kind in headers:
        print(sanitize(headers[event.kind]))
        print(sanitize(event.text.rstrip("\n")))
        for warning in event.data.get("warnings", []) if event.kind == "proposal" else []:
            print(f"!! {sanitize(warning)}")  # the cheat guard's finding: look twice before accepting
    else:
        print(f"-- {sanitize(event.text)}")
    sys.stdout.flush()


def confirm_label(source: FeedbackSource, cls: Classification) -> Classification:
    """On a terminal, show the analyzer's label and let one key override it before it is committed."""
    if not source.interactive:
        return cls
    try:
        answer = input(f"   {cls.name}? [Enter] commit, or a = Accepted, r = Redo, e = Further edit: ").strip().lower()
    except UnicodeDecodeError:
        raise InputError("the answer typed is not UTF-8 text; the label was not committed") from None
    override = {"a": "accepted", "r": "redo", "e": "further_edit"}.get(answer[:1])
    if override and override != cls.label:
        return Classification(override, "user", cls.feedback, cls.raw)
    return cls


def cmd_session(args: argparse.Namespace) -> int:
    config = load_config()
    source = FeedbackSource(args.feedback)
    request = read_request(args.request, args.request_file)
    if args.out:
        check_output(args.out, force=args.force)
    with DatasetStore(config.data_dir) as store:
        pool = TeacherPool(config)
        try:
            if args.resume:
                session = Session.resume(store, pool, config, args.resume)
                print(f"== resumed session {session.id} ({session.status})")
            else:
                if args.script is None or request is None:
                    raise InputError("give a SCRIPT and --request TEXT (or --request-file PATH), "
                                     "or --resume SESSION_ID")
                session = Session.start(store, pool, config, args.script, request)
                print(f"== session {session.id}")
            if session.status == "planning":
                session.plan(emit=print_event, max_steps=args.max_steps)
            while session.status != "done":
                index = session.step_index
                print(f"\n== step {index + 1}/{len(session.steps)}: {sanitize(session.step_text)}")
                try:
                    proposal = session.propose(emit=print_event)
                except AttemptsExhausted as err:
                    print(f"!! {err}")
                    return EXIT_PAUSED
                if args.edit and edit_proposal(session, proposal.script):
                    continue
                line = source.next_line("feedback> ")
                if line is None:
                    print(f"\n== no more feedback; session {session.id} is saved. "
                          f"Resume it with: shake session --resume {session.id}")
                    return EXIT_PAUSED
                print(f"feedback> {sanitize(line)}")
                cls = session.classify(line)
                print(f"== label: {cls.name} ({SOURCES.get(cls.source, cls.source)})")
                cls = confirm_label(source, cls)
                session.apply_feedback(cls, emit=print_event)
            print("\n== finished script")
            if args.out:
                check_output(args.out, force=args.force)  # again: the session may have taken hours
                args.out.write_text(session.current_script, encoding="utf-8")
                print(f"written to {args.out}")
            else:
                print(sanitize(session.current_script.rstrip("\n")))
            stats = store.stats()
            print(f"== dataset: {stats.rows} rows ({stats.complete_rows} complete) in {config.data_dir}")
            return 0
        finally:
            pool.close()


def edit_proposal(session: Session, script: str) -> bool:
    """`--edit`: the proposal in $EDITOR; a changed script is accepted as the user's edit (True)."""
    from engine.editor import edit_in_editor

    edited = edit_in_editor(script, name=Path(session.state.script_path).name)
    if not edited.changed:
        print("== unchanged in the editor: your feedback decides")
        return False
    session.accept_user_edit(edited.text, emit=print_event)
    print("== your edit is the step's accepted output (origin user_edit)")
    return True


def cmd_sessions(args: argparse.Namespace) -> int:
    config = load_config()
    if not (config.data_dir / "sessions").is_dir():
        print(f"no sessions in {config.data_dir}")
        return 0
    with read_store(config, args) as store:
        ids = store.readable_session_ids()
        if not ids:
            print(f"no sessions in {config.data_dir}")
        for sid in ids:
            state = store.load_state(sid)
            accepted = sum(1 for s in state.steps if s.status == "accepted")
            print(f"{sid}  {state.status:<8}  {accepted}/{len(state.steps)} steps  "
                  f"{Path(state.script_path).name}: {state.request[:60]}")
        report_skipped(store)
    return 0


# -- data -------------------------------------------------------------------------------------
def cmd_data_stats(args: argparse.Namespace) -> int:
    config = load_config()
    with read_store(config, args) as store:
        stats = store.stats()
        report_skipped(store)
    if args.json:
        print(json.dumps(stats.as_dict()))
        return 0
    print(f"dataset at {config.data_dir}")
    print(f"  sessions            {stats.sessions}")
    print(f"  rows                {stats.rows}")
    print(f"  complete (chosen)   {stats.complete_rows}")
    print(f"  pending (no chosen) {stats.pending_rows}")
    print(f"  with rejected       {stats.with_rejected}")
    print(f"  with logprobs       {stats.with_logprobs}")
    print(f"  excluded            {stats.excluded_rows}")
    for agent, count in stats.by_agent.items():
        print(f"    agent {agent:<17}{count}")
    for kind, count in stats.by_kind.items():
        print(f"    rejected {kind:<14}{count}")
    return 0


def cmd_data_export(args: argparse.Namespace) -> int:
    config = load_config()
    if args.hf:
        check_output(args.hf, directory=True, what="--hf")
    elif args.out is not None:
        check_output(args.out, force=args.force)
    with read_store(config, args) as store:
        if args.hf:
            report = export_hf(store, args.hf, paired_only=args.paired_only)
            where = f"{args.hf} (Hugging Face datasets)"
        else:
            tokenizer = None
            if args.format == "axolotl":
                from engine.student.loader import load_tokenizer  # the trainer's own student loader

                tokenizer = load_tokenizer(args.student or "")
            if args.out is None:  # the JSONL itself on stdout, nothing else, so that it pipes
                if args.format == "parquet":
                    raise InputError("parquet is binary and is not written to standard output; give --out FILE")
                try:
                    report = export_dataset(store, None, args.format, paired_only=args.paired_only, tokenizer=tokenizer)
                except BrokenPipeError:  # `shake data export | head`: the reader has what it wanted
                    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
                else:
                    if report.without_soft_labels:
                        print(f"shake: {without_soft_labels(report)}", file=sys.stderr)
                report_skipped(store)
                return 0
            report = export_dataset(store, args.out, args.format, paired_only=args.paired_only, tokenizer=tokenizer)
            where = f"{args.out} ({args.format})"
        report_skipped(store)
    excluded = f"; left out {report.excluded} excluded row(s)" if report.excluded else ""
    without = f"; {without_soft_labels(report)}" if report.without_soft_labels else ""
    print(f"wrote {report.rows} rows to {where}{excluded}{without}")
    return 0


def without_soft_labels(report) -> str:
    """Axolotl's KD format indexes the student's vocabulary with the teacher's ids, so a step whose
    teacher tokens are not the student's own tokenization of the text cannot go there (a grammar-
    constrained answer spells its fixed words in pieces). `shake train` aligns those by bytes instead."""
    return (f"left out {report.without_soft_labels} accepted step(s) whose soft labels are not the student "
            f"tokenizer's own tokens (shake train aligns them by bytes)")


def cmd_data_check(args: argparse.Namespace) -> int:
    from engine.store.check import check_data, fix_data

    config = load_config()
    if args.fix:
        with DatasetStore(config.data_dir) as store:
            fixed = fix_data(store)
        for line in fixed.actions:
            print(f"fixed: {line}")
        print(f"backup of the data before the fix: {fixed.backup}")
    problems = check_data(config.data_dir)
    for problem in problems:
        print(json.dumps(problem.as_dict()) if args.json else problem.line())
    if not args.json:
        print(f"{len(problems)} problem(s) in {config.data_dir}" if problems else f"no problems in {config.data_dir}")
    return 1 if problems else 0


def cmd_data_rescore(args: argparse.Namespace) -> int:
    from engine.rescore import rescore

    config = load_config()
    name = args.teacher or config.student.kd_teacher
    if not name:
        raise InputError("name the scoring teacher: --teacher NAME, or [student] kd_teacher in the config")
    pool = TeacherPool(config)
    try:
        teacher = pool.get(name)
        tcfg = config.teachers[name]
        with DatasetStore(config.data_dir) as store:
            report = rescore(store, teacher, top_logprobs=tcfg.top_logprobs, progress=print)
    finally:
        pool.close()
    print(f"rescored {report.scored_steps} steps ({report.rows_updated} rows) with '{name}'; "
          f"{report.skipped_steps} already had its log-probabilities")
    return 0


# -- teachers and config ----------------------------------------------------------------------
def cmd_teachers(args: argparse.Namespace) -> int:
    config = load_config()
    if args.discover:
        return print_discovery(config, discover(args.host), as_json=args.json)
    if args.host or args.json:
        raise InputError("--host and --json go with --discover")
    pool = TeacherPool(config)
    report = pool.health()
    for name, problem in report.items():
        t = config.teachers[name]
        agents = [a for a, names in config.agents.items() if name in names]
        if t.backend == "embedded":
            where = t.model or "bundled SmolLM2-135M-Instruct"
        elif t.backend == "student":  # in process, like embedded: a path, no host
            where = t.model
        else:
            where = f"{t.model} @ {t.host or 'default host'}"
        status = "ok" if problem is None else f"UNAVAILABLE: {problem}"
        print(f"{name:<16} {t.backend:<9} {where}  [{', '.join(agents)}]  {status}")
    pool.close()
    return 0 if all(p is None for p in report.values()) else 1


def print_discovery(config: Config, found: Discovery, *, as_json: bool = False) -> int:
    print(json.dumps(dataclasses.asdict(found)) if as_json else "\n".join(report_lines(config, found)))
    return 0


def cmd_teachers_add(args: argparse.Namespace) -> int:
    config = load_config()
    check_output(config.config_path.resolve(), force=True, what="the config file")
    found = inspect_source(args.source, args.host)
    comment = f"added by `shake teachers add` from {found.source}: " + describe_model(found)
    after = add_teacher(config.config_path, teacher_config(found, args.name), force=args.force, comment=comment)
    print(f"teacher '{args.name}' ({found.kind}: {found.model} at {found.host}, n_ctx {found.n_ctx}) written to "
          f"{config.config_path}; the worker's teachers: {' -> '.join(after.agents['worker'])}")
    if found.logprobs != "yes":
        print(f"note: log-probabilities {found.logprobs}; {found.logprobs_note or 'rows may carry the hard label only'}")
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    if args.defaults:
        print(DEFAULT_CONFIG_TOML, end="")
        return 0
    if args.init:
        path = config_path().resolve()  # a linked config file (dotfiles) is written where the link points
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise InputError(f"cannot create {path.parent}: {err.strerror}") from None
        check_output(path, force=args.force, what="the config file")
        path = write_default_config(path, overwrite=args.force)
        print(f"wrote {path}")
        return 0
    config = load_config()
    exists = "" if config.config_path.exists() else " (not present: defaults apply)"
    print(f"config file: {config.config_path}{exists}")
    print(f"data dir:    {config.data_dir}")
    print(f"teachers:    {', '.join(config.teachers)}")
    for agent, names in config.agents.items():
        print(f"  {agent:<9} {' -> '.join(names)}")
    first, *more = sandbox.describe(config.runner.sandbox)
    print(f"sandbox:     {first}")
    for line in more:
        print(f"             {line}")
    return 0
