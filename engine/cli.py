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
from engine.execution.project import RunSpec, make_spec
from engine.execution.sanitize import sanitize
from engine.inputs import bounded_int, check_output, decode_utf8, read_request, read_text
from engine.prompts.echo import echo_reason
from engine.session import Proposal, Session, SessionEvent
from engine.session.driver import Decision, Edit, Ending, Feedback, Pause, drive
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
    project = p.add_argument_group("project mode", "the script runs inside a read-only copy of its project "
                                   "(any of these turns it on)")
    project.add_argument("--project", type=Path, metavar="DIR",
                         help="the project root (default: the script's git work tree, else its directory)")
    project.add_argument("--run", metavar="CMD", help='how the script runs, from the project root (default: '
                         '"python SCRIPT"), e.g. "python report.py --month 3"')
    project.add_argument("--check", metavar="CMD", help='a check after each clean run, e.g. "pytest -q tests/test_report.py"; '
                         "its failure is the run's error")
    project.add_argument("--stdin", type=Path, metavar="FILE", help="a file the run command reads on stdin")
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
        print(sanitize(f"skipped {bad.path}: {bad.problem}"), file=sys.stderr)
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
    if event.kind == "step":
        print(sanitize(f"\n== step {event.data['step_index'] + 1}/{event.data['of']}: {event.text}"))
        sys.stdout.flush()
        return
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


NO_MORE_FEEDBACK = "no more feedback"


class FeedbackReviewer:
    """`shake session`'s user (engine/session/driver.py `Reviewer`): each proposal's feedback from the
    file or the terminal, labelled by the analyzer (a terminal may override the label); with `--edit`,
    the proposal in $EDITOR first, where a changed script is the step's accepted output."""

    def __init__(self, source: FeedbackSource, *, edit: bool) -> None:
        self.source = source
        self.edit = edit

    def more(self, session: Session) -> bool:
        return True

    def review(self, session: Session, proposal: Proposal) -> Decision:
        if self.edit:
            from engine.editor import edit_in_editor

            edited = edit_in_editor(proposal.script, name=Path(session.state.script_path).name)
            if edited.changed:
                print("== your edit is the step's accepted output (origin user_edit)")
                return Edit(edited.text)
            print("== unchanged in the editor: your feedback decides")
        line = self.source.next_line("feedback> ")
        if line is None:
            return Pause(NO_MORE_FEEDBACK)
        print(f"feedback> {sanitize(line)}")
        cls = session.classify(line)
        print(f"== label: {cls.name} ({SOURCES.get(cls.source, cls.source)})")
        return Feedback(confirm_label(self.source, cls))

    def stalled(self, session: Session, error: AttemptsExhausted) -> Decision:
        print(f"!! {sanitize(str(error))}")
        return Pause(str(error))


def project_spec(args: argparse.Namespace) -> RunSpec | None:
    """Project mode's settings, checked before anything is written; None when none was given."""
    given = [flag for flag in ("project", "run", "check", "stdin") if getattr(args, flag) is not None]
    if not given:
        return None
    if args.resume:
        raise InputError(f"--{given[0]} belongs to a new session; a resumed session runs as it was started")
    if args.script is None:
        return None  # the missing script is said below
    spec, exposure = make_spec(args.script, project=args.project, run=args.run, check=args.check, stdin=args.stdin)
    print(f"== project {spec.root}: {exposure.summary()}")
    print(f"   run: {spec.run_text}" + (f"; check: {spec.check_text}" if spec.check else ""))
    return spec


def cmd_session(args: argparse.Namespace) -> int:
    config = load_config()
    source = FeedbackSource(args.feedback)
    request = read_request(args.request, args.request_file)
    if args.out:
        check_output(args.out, force=args.force)
    spec = project_spec(args)
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
                session = Session.start(store, pool, config, args.script, request, project=spec)
                print(f"== session {session.id}")
            outcome = drive(session, FeedbackReviewer(source, edit=args.edit), print_event, max_steps=args.max_steps)
            if outcome.ending == Ending.STALLED:
                return EXIT_PAUSED
            if outcome.ending == Ending.PAUSED:
                print(f"\n== {outcome.reason}; session {session.id} is saved. "
                      f"Resume it with: shake session --resume {session.id}")
                return EXIT_PAUSED
            print("\n== finished script")
            if args.out:
                check_output(args.out, force=args.force)  # again: the session may have taken hours
                args.out.write_text(session.current_script, encoding="utf-8")
                print(f"written to {sanitize(str(args.out))}")
            else:
                print(sanitize(session.current_script.rstrip("\n")))
            stats = store.stats()
            print(sanitize(f"== dataset: {stats.rows} rows ({stats.complete_rows} complete) in {config.data_dir}"))
            return 0
        finally:
            pool.close()


def cmd_sessions(args: argparse.Namespace) -> int:
    config = load_config()
    if not (config.data_dir / "sessions").is_dir():
        print(sanitize(f"no sessions in {config.data_dir}"))
        return 0
    with read_store(config, args) as store:
        ids = store.readable_session_ids()
        if not ids:
            print(sanitize(f"no sessions in {config.data_dir}"))
        for sid in ids:
            state = store.load_state(sid)
            skipped = f" ({state.skipped_steps} skipped)" if state.skipped_steps else ""
            # the request and the script's name are the user's text, read back from the file: sanitized
            print(sanitize(f"{sid}  {state.status:<8}  {state.done_steps}/{len(state.steps)} steps{skipped}  "
                           f"{Path(state.script_path).name}: {state.request[:60]}"))
        report_skipped(store)
    return 0


# -- data -------------------------------------------------------------------------------------
def coverage_line(stats) -> str:
    """The share of chosen bytes that carry soft labels, and the chosens whose offered labels were refused."""
    line = (f"soft labels on {stats.soft_label_coverage:.1%} of chosen bytes "
            f"({stats.labelled_bytes} of {stats.chosen_bytes})")
    if stats.soft_labels_refused:
        line += f"; {stats.soft_labels_refused} chosen(s) refused soft labels that did not spell their text"
    return line


def cmd_data_stats(args: argparse.Namespace) -> int:
    config = load_config()
    with read_store(config, args) as store:
        stats = store.stats()
        report_skipped(store)
    if args.json:
        print(json.dumps(stats.as_dict()))
        return 0
    print(sanitize(f"dataset at {config.data_dir}"))
    print(f"  sessions            {stats.sessions}")
    print(f"  rows                {stats.rows}")
    print(f"  complete (chosen)   {stats.complete_rows}")
    print(f"  pending (no chosen) {stats.pending_rows}")
    print(f"  with rejected       {stats.with_rejected}")
    print(f"  with logprobs       {stats.with_logprobs}")
    print(f"  {coverage_line(stats)}")
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
            if args.out is None:  # the JSONL itself on stdout, the report on stderr, so that it pipes
                if args.format == "parquet":
                    raise InputError("parquet is binary and is not written to standard output; give --out FILE")
                # A reader that goes away (`| head`) raises BrokenPipeError out of here: the command
                # ends with 141, so that `set -o pipefail` sees the export was cut.
                report = export_dataset(store, None, args.format, paired_only=args.paired_only, tokenizer=tokenizer)
                for line in left_out(report):
                    print(f"shake: {line}", file=sys.stderr)
                report_skipped(store)
                return 0
            report = export_dataset(store, args.out, args.format, paired_only=args.paired_only, tokenizer=tokenizer)
            where = f"{args.out} ({args.format})"
        report_skipped(store)
    print("; ".join([f"wrote {report.rows} rows to {sanitize(where)}", *left_out(report)]))
    return 0


def left_out(report) -> list[str]:
    """What an export did not write, one phrase each: said whether it went to a file or to stdout."""
    out = [f"left out {report.excluded} excluded row(s)"] if report.excluded else []
    return out + ([without_soft_labels(report)] if report.without_soft_labels else [])


def without_soft_labels(report) -> str:
    """The steps the Axolotl export leaves out: no position of the student's tokens got the teacher's soft
    labels (none recorded under the row's prompt, or none that map onto the student's vocabulary)."""
    return f"left out {report.without_soft_labels} accepted step(s) with no soft labels for the student's tokens"


def cmd_data_check(args: argparse.Namespace) -> int:
    from engine.store.check import check_data, fix_data

    config = load_config()
    if args.fix:
        with DatasetStore(config.data_dir) as store:
            fixed = fix_data(store)
        for line in fixed.actions:
            print(sanitize(f"fixed: {line}"))  # file names in sessions/ are anyone's choice
        print(sanitize(f"backup of the data before the fix: {fixed.backup}"))
    problems = check_data(config.data_dir, echo=echo_reason)
    for problem in problems:
        print(json.dumps(problem.as_dict()) if args.json else sanitize(problem.line()))
    if not args.json:
        with DatasetStore(config.data_dir, writable=False, skip_bad=True) as store:
            print(coverage_line(store.stats()))
        print(sanitize(f"{len(problems)} problem(s) in {config.data_dir}" if problems
                       else f"no problems in {config.data_dir}"))
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
    print(sanitize(f"rescored {report.scored_steps} steps ({report.rows_updated} rows) with '{name}'; "
                   f"{report.skipped_steps} already had its log-probabilities"))
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
        print(sanitize(f"{name:<16} {t.backend:<9} {where}  [{', '.join(agents)}]  {status}"))  # a server's words
    pool.close()
    return 0 if all(p is None for p in report.values()) else 1


def print_discovery(config: Config, found: Discovery, *, as_json: bool = False) -> int:
    print(json.dumps(dataclasses.asdict(found)) if as_json else sanitize("\n".join(report_lines(config, found))))
    return 0


def cmd_teachers_add(args: argparse.Namespace) -> int:
    config = load_config()
    check_output(config.config_path.resolve(), force=True, what="the config file")
    found = inspect_source(args.source, args.host)
    comment = f"added by `shake teachers add` from {found.source}: " + describe_model(found)
    after = add_teacher(config.config_path, teacher_config(found, args.name), force=args.force, comment=comment)
    print(sanitize(f"teacher '{args.name}' ({found.kind}: {found.model} at {found.host}, n_ctx {found.n_ctx}) written "
                   f"to {config.config_path}; the worker's teachers: {' -> '.join(after.agents['worker'])}"))
    if found.logprobs != "yes":
        print(sanitize(f"note: log-probabilities {found.logprobs}; "
                       f"{found.logprobs_note or 'rows may carry the hard label only'}"))
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
        print(sanitize(f"wrote {path}"))
        return 0
    config = load_config()
    exists = "" if config.config_path.exists() else " (not present: defaults apply)"
    print(sanitize(f"config file: {config.config_path}{exists}"))
    print(sanitize(f"data dir:    {config.data_dir}"))
    print(sanitize(f"teachers:    {', '.join(config.teachers)}"))
    for agent, names in config.agents.items():
        print(sanitize(f"  {agent:<9} {' -> '.join(names)}"))
    first, *more = sandbox.describe(config.runner.sandbox)
    print(f"sandbox:     {first}")
    for line in more:
        print(f"             {line}")
    return 0
