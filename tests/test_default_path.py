"""README's command table, in order, on the defaults, as a user types it.

A fresh config and data directory (SHAKE_CONFIG, SHAKE_DATA in a temporary directory), the embedded
SmolLM2 teacher and the bundled SmolLM2 student, every command run as `shake ...` in its own process.
Each step checks what the command printed and stored, and that standard output and standard error
carry none of the libraries' chatter (warnings, log lines, progress bars).

The one departure from the defaults: after `shake config --init` the test lowers the agents' token
caps in the written file, as a user may, so that the walk fits in a few minutes on a CPU. SmolLM2-135M
is a weak teacher, so the feedback file labels each review with an explicit prefix (`redo:`,
`accept:`) and sessions are cut to one step (`--max-steps 1`).

To add a command: add its row to README's command table and a step function here, decorated with
`@step("<the row's command cell>")`, at the same place in STEPS; `test_readme_lists_what_the_walk_runs`
fails until the two agree.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHAKE = str(Path(sys.executable).with_name("shake"))
SCRIPT = 'def greet(name):\n    return "hello " + name\n\nprint(greet("world"))\n'
REQUEST = "Make the greeting uppercase"
TOKEN_CAPS = {"planner": 32, "lead": 64, "worker": 160}

# What the libraries under shake print when nobody stops them.
NOISE = re.compile(r"Traceback|Warning|warnings\.warn|kernels-community|it/s\]|examples/s\]|\r|Loading weights|"
                   r"Saving the dataset|\[transformers\]|llama_model_loader|ggml_")


@dataclass
class Done:
    argv: list[str]
    rc: int
    out: str
    err: str


@dataclass
class Walk:
    """The user's world: a home directory, the environment, and what earlier steps left for later ones."""

    home: Path
    env: dict[str, str]
    ran: list[list[str]] = field(default_factory=list)
    session_id: str = ""
    second_session_id: str = ""
    rows_before_teachers: int = 0

    @property
    def data(self) -> Path:
        return self.home / "data"

    @property
    def config(self) -> Path:
        return self.home / "config.toml"

    def shake(self, *args: str, expect: int = 0, timeout: float = 600) -> Done:
        argv = [str(a) for a in args]
        self.ran.append(argv)
        proc = subprocess.run([SHAKE, *argv], cwd=self.home, env=self.env, capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)
        done = Done(argv, proc.returncode, proc.stdout, proc.stderr)
        assert done.rc == expect, f"shake {' '.join(argv)} -> {done.rc}\n{done.out[-3000:]}\n{done.err[-3000:]}"
        assert not NOISE.search(done.out), f"noise on stdout of shake {' '.join(argv)}:\n{done.out[-3000:]}"
        if expect == 2:
            assert done.err.startswith("shake: ") and done.err.count("\n") == 1, done.err
        else:
            assert done.err == "", f"stderr of shake {' '.join(argv)}:\n{done.err[-3000:]}"
        return done

    def edit_config(self, pattern: str, replacement: str) -> None:
        text = self.config.read_text()
        edited, n = re.subn(pattern, replacement, text, flags=re.M)
        assert n == 1, f"{pattern!r} matched {n} times in the config"
        self.config.write_text(edited)

    def rows(self) -> list[dict]:
        from engine.store import DatasetStore

        with DatasetStore(self.data, writable=False) as store:  # the rows as the store writes them (JSON)
            return [r.to_json() for r in store.rows()]


Step = Callable[[Walk], None]
STEPS: list[Step] = []


def step(*rows: str) -> Callable[[Step], Step]:
    """A step of the walk, covering these rows of README's command table (their first cells)."""
    def register(fn: Step) -> Step:
        fn.rows = rows  # type: ignore[attr-defined]
        STEPS.append(fn)
        return fn
    return register


def feedback_file(walk: Walk, name: str, *lines: str) -> Path:
    path = walk.home / name
    path.write_text("# one line per review\n" + "".join(line + "\n" for line in lines))
    return path


# -- the walk, in README's order ----------------------------------------------------------------------
@step("shake config [--init] [--defaults]")
def config_init(walk: Walk) -> None:
    shown = walk.shake("config").out
    assert f"config file: {walk.config} (not present: defaults apply)" in shown and f"data dir:    {walk.data}" in shown
    assert walk.shake("config", "--defaults").out.startswith("# shake configuration.")
    assert walk.shake("config", "--init").out == f"wrote {walk.config}\n"
    for agent, cap in TOKEN_CAPS.items():  # the walk's one departure from the defaults (see the docstring)
        walk.edit_config(rf"(^\[sampling\.{agent}\]\ntemperature = [^\n]*\nmax_tokens = )\d+", rf"\g<1>{cap}")


@step("shake teachers")
def teachers(walk: Walk) -> None:
    out = walk.shake("teachers").out
    assert re.fullmatch(r"smollm2 +embedded +bundled SmolLM2-135M-Instruct +\[planner, lead, worker, analyzer\] +ok\n", out)


@step("shake teachers --discover [--json] [--host URL]")
def teachers_discover(walk: Walk) -> None:
    out = walk.shake("teachers", "--discover").out
    assert out.startswith("worker's teachers: smollm2\n") and re.search(r"^\(probed in [\d.]+ s\)$", out, re.M), out
    for kind, url in (("Ollama", "http://127.0.0.1:11434"), ("OpenAI-compatible server", "http://127.0.0.1:8080"),
                      ("OpenAI-compatible server", "http://127.0.0.1:8000")):
        assert f"{kind} at {url}" in out  # loopback only, each usual port probed
    found = json.loads(walk.shake("teachers", "--discover", "--json").out)
    assert {s["url"] for s in found["servers"]} >= {"http://127.0.0.1:11434", "http://127.0.0.1:8080"}


@step("shake teachers add NAME --from ollama:MODEL\\|openai:URL#MODEL [--host URL] [--force]")
def teachers_add(walk: Walk) -> None:
    import socket

    with socket.socket() as probe:  # a loopback port where nothing listens: no Ollama on this walk's machine
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    before = walk.config.read_text()
    refused = walk.shake("teachers", "add", "coder", "--from", "ollama:qwen2.5-coder:7b", "--host", closed, expect=2).err
    assert refused == f"shake: no Ollama at {closed}: not running\n"
    assert walk.config.read_text() == before  # nothing written when the model cannot be found


@step("shake session SCRIPT --request TEXT\\|--request-file PATH [--feedback FILE\\|-] [--max-steps N] [--out FILE [--force]]")
def session_until_the_feedback_runs_out(walk: Walk) -> None:
    (walk.home / "greet.py").write_text(SCRIPT)
    feedback = feedback_file(walk, "redo.txt", "redo: use str.upper() on the whole greeting",
                             "redo: keep the function and upper-case its result")
    out = walk.shake("session", "greet.py", "--request", REQUEST, "--feedback", feedback, "--max-steps", "1",
                     expect=3).out
    for shown in ("== plan", "== step 1/1", "== instruction (cycle 1, worker: smollm2)", "== worker output (smollm2)",
                  "== diff", "feedback> redo: use str.upper()", "feedback> redo: keep the function"):
        assert shown in out, shown
    assert out.count("== label: Redo (explicit prefix)") == 2
    walk.session_id = re.search(r"Resume it with: shake session --resume (\w+)", out).group(1)
    rows = walk.rows()
    assert len([r for r in rows if r["rejected"] and r["rejected"]["kind"] == "redo"]) == 2
    assert all(r["chosen"] is None for r in rows)  # nothing accepted yet


@step("shake session --resume ID")
def session_resumed_and_accepted(walk: Walk) -> None:
    feedback = feedback_file(walk, "accept.txt", "accept: good enough")
    out = walk.shake("session", "--resume", walk.session_id, "--feedback", feedback, "--out", "final.py").out
    assert f"== resumed session {walk.session_id} (review)" in out and "== label: Accepted (explicit prefix)" in out
    final = (walk.home / "final.py").read_text()
    compile(final, "final.py", "exec")
    rows = walk.rows()
    assert len(rows) >= 2 and all(r["chosen"] and r["chosen"]["script"] == final for r in rows)
    assert re.search(rf"== dataset: {len(rows)} rows \({len(rows)} complete\) in {re.escape(str(walk.data))}", out)
    # a second session, accepted at its first proposal: training holds out whole steps, so the run needs two
    feedback = feedback_file(walk, "accept-at-once.txt", "accept: fine")
    out = walk.shake("session", "greet.py", "--request", REQUEST, "--feedback", feedback, "--max-steps", "1").out
    walk.second_session_id = re.search(r"^== session (\w+)$", out, re.M).group(1)
    second = [r for r in walk.rows() if r["session_id"] == walk.second_session_id]
    assert second and all(r["chosen"] for r in second)
    assert sum(1 for r in second if r["rejected"] is None) == (0 if any(r["rejected"] for r in second) else 1)


@step("shake sessions")
def sessions(walk: Walk) -> None:
    out = walk.shake("sessions").out
    assert re.fullmatch(rf"{walk.session_id}  done +1/1 steps  greet\.py: {REQUEST}\n"
                        rf"{walk.second_session_id}  done +1/1 steps  greet\.py: {REQUEST}\n", out)


@step("shake data stats [--json]")
def data_stats(walk: Walk) -> None:
    stats = json.loads(walk.shake("data", "stats", "--json").out)
    rows = walk.rows()
    n = len(rows)
    assert stats["rows"] == stats["complete_rows"] == n and stats["with_rejected"] == sum(1 for r in rows if r["rejected"])
    assert stats["with_logprobs"] == n and stats["by_kind"]["redo"] == 2 and stats["by_agent"] == {"worker": n}
    assert f"  rows                {n}\n" in walk.shake("data", "stats").out


@step("shake data check [--fix] [--json]")
def data_check(walk: Walk) -> None:
    checked = walk.shake("data", "check").out
    assert re.fullmatch(rf"soft labels on \d+\.\d% of chosen bytes \(\d+ of \d+\)\nno problems in {re.escape(str(walk.data))}\n",
                        checked), checked
    assert walk.shake("data", "check", "--json").out == ""


@step("shake data export [--format jsonl\\|parquet] [--out FILE [--force]] [--paired-only]")
def data_export(walk: Walk) -> None:
    n = len(walk.rows())
    assert walk.shake("data", "export", "--out", "rows.jsonl").out == f"wrote {n} rows to rows.jsonl (jsonl)\n"
    records = [json.loads(line) for line in (walk.home / "rows.jsonl").read_text().splitlines()]
    assert len(records) == n and all(r["prompt"][0]["role"] == "system" and r["chosen"][0]["role"] == "assistant"
                                     and r["chosen_logprobs"]["token_ids"] and r["logprobs_match_prompt"]
                                     for r in records)
    assert [r["rejected_kind"] for r in records if r["session_id"] == walk.session_id] == ["redo", "redo"]
    assert walk.shake("data", "export").out == (walk.home / "rows.jsonl").read_text()  # stdout: the JSONL itself
    assert "give --out FILE" in walk.shake("data", "export", "--format", "parquet", expect=2).err
    walk.shake("data", "export", "--format", "parquet", "--out", "rows.parquet", "--paired-only")
    import pyarrow.parquet as pq

    table = pq.read_table(walk.home / "rows.parquet")
    paired = sum(r["rejected"] is not None for r in records)  # a step accepted on its first cycle has none
    assert table.num_rows == paired and {"prompt", "chosen", "rejected", "chosen_logprobs"} <= set(table.column_names)


@step("shake data export --hf DIR")
def data_export_hf(walk: Walk) -> None:
    from datasets import load_from_disk

    assert walk.shake("data", "export", "--hf", "hf").out == f"wrote {len(walk.rows())} rows to hf (Hugging Face datasets)\n"
    assert load_from_disk(str(walk.home / "hf")).num_rows == len(walk.rows())


@step("shake data export --format axolotl [--out FILE] [--student MODEL]")
def data_export_axolotl(walk: Walk) -> None:
    out = walk.shake("data", "export", "--format", "axolotl", "--out", "kd.jsonl").out
    # two accepted steps: both exported, a grammar-constrained answer's soft labels carried over by bytes
    written = re.fullmatch(r"wrote (\d) rows to kd\.jsonl \(axolotl\)(?:; left out (\d) accepted step\(s\) with no soft "
                           r"labels for the student's tokens)?\n", out)
    assert written and int(written.group(1)) >= 1 and int(written.group(1)) + int(written.group(2) or 0) == 2, out
    records = [json.loads(line) for line in (walk.home / "kd.jsonl").read_text().splitlines()]
    assert all(r["messages"][-1]["role"] == "assistant" and len(r["logprobs"]) == len(r["target_token_ids"])
               and len({len(p) for p in r["logprobs"] + r["target_token_ids"]}) == 1 for r in records)


@step("shake prompts list` / `show AGENT\\|VERSION [--form json]", "shake prompts add AGENT --from FILE [--pin]",
      "shake prompts optimize [--agents lead,worker,analyzer] [--source suite\\|dataset] [--pin]")
def prompts_listed_added_and_optimized(walk: Walk) -> None:
    listed = walk.shake("prompts", "list").out
    assert all(agent in listed for agent in ("planner", "lead", "worker", "analyzer", "judge"))
    assert "LABEL: ACCEPTED" in walk.shake("prompts", "show", "analyzer").out  # the format, shown by examples
    (walk.home / "lead.txt").write_text("You are the project lead. Tell the programmer in plain words what to change.\n")
    added = walk.shake("prompts", "add", "lead", "--from", "lead.txt").out  # not pinned: later steps keep the built-in
    version = re.search(r"^saved (lead-[0-9a-f]{12}) ", added, re.M).group(1)
    assert version in walk.shake("prompts", "list").out
    assert "INSTRUCTION:" in walk.shake("prompts", "show", version).out  # the answer format is always added
    out = walk.shake("prompts", "optimize", "--agents", "analyzer", "--source", "suite", "--train", "1",
                     "--validation", "1", "--candidates", "1", "--max-demos", "1").out
    assert "best:" in out


@step("shake train [--flags]")
def train_until_stopped(walk: Walk) -> None:
    (walk.home / "stop").touch()  # stop after the first step, so that the next command has something to resume
    out = walk.shake("train", "--name", "first", "--max-steps", "2", "--eval-fraction", "0.5", "--lora-r", "4",
                     "--stop-file", "stop").out
    assert "stopped after step 1; continue with --resume" in out
    assert len((walk.data / "runs" / "first" / "metrics.jsonl").read_text().splitlines()) == 1


@step("shake train --resume --run-dir DIR")
def train_resumed(walk: Walk) -> None:
    run = walk.data / "runs" / "first"
    out = walk.shake("train", "--resume", "--run-dir", run).out
    assert "resumed from step-000001" in out and f"done: 2 steps; adapter in {run / 'adapter'}" in out
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [1, 2] and all(math.isfinite(m["loss"]) for m in metrics)
    assert (run / "DONE").exists()


@step("shake train --init-from RUN")
def train_from_the_first_run(walk: Walk) -> None:
    out = walk.shake("train", "--init-from", "first", "--name", "second", "--max-steps", "1", "--lora-r", "4",
                     "--eval-fraction", "0.5").out
    assert "done: 1 steps" in out
    config = json.loads((walk.data / "runs" / "second" / "config.json").read_text())
    assert config["init_from"] == "first"


@step("shake eval RUN [--generate] [--max-new-tokens N]")
def evaluate(walk: Walk) -> None:
    report = json.loads(walk.shake("eval", "first").out)
    assert report["held_out_rows"] >= 1 and math.isfinite(report["loss"])
    report = json.loads(walk.shake("eval", "first", "--generate", "--max-new-tokens", "48").out)
    assert report["generated"] == report["held_out_steps"] == 1 and 0.0 <= report["pass_rate"] <= 1.0
    assert json.loads((walk.data / "runs" / "first" / "eval.json").read_text()) == report


@step("shake eval RUN --scoreboard [--max-steps N]")
def scoreboard(walk: Walk) -> None:
    walk.shake("eval", "first", "--scoreboard", "--max-steps", "1")
    board = json.loads((walk.data / "runs" / "first" / "scoreboard.json").read_text())
    assert board["held_out_steps"] == 1 and {c["contestant"] for c in board["contestants"]} == {"student", "base", "teacher"}


@step("shake student export RUN --out DIR [--gguf] [--ollama]")
def student_export(walk: Walk) -> None:
    from transformers import AutoTokenizer

    from trainer.modelfile import PROBES, render_go_template

    out = walk.shake("student", "export", "first", "--out", "exported", "--gguf", "--ollama").out
    lines = out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["adapter", "merged", "gguf", "modelfile"]
    assert float(re.search(r"within ([0-9.e+-]+) nats", lines[2]).group(1)) < 1e-3
    exported = walk.home / "exported"
    assert (exported / "adapter" / "adapter_config.json").exists() and (exported / "student.gguf").stat().st_size > 1e8
    assert "quantization_config" not in json.loads((exported / "merged" / "config.json").read_text())
    modelfile = (exported / "Modelfile").read_text()
    assert "FROM ./student.gguf" in modelfile
    template = re.search(r'^TEMPLATE """(.*?)"""$', modelfile, re.S | re.M).group(1)
    tokenizer = AutoTokenizer.from_pretrained(exported / "merged")
    for conversation in PROBES:
        assert render_go_template(template, conversation) == tokenizer.apply_chat_template(
            conversation, tokenize=False, add_generation_prompt=True)


def session_on(walk: Walk, teacher: str, config: str, model: str) -> None:
    """A new session whose worker is `teacher`: shown in the output, its proposal accepted, and stored as
    the chosen's writer. The barely trained student writes what the SmolLM2 it started from writes (both
    made the greeting "Hello " at their first attempt in the runs measured), and the default
    `switch_teacher_after` gives each three attempts with their own seeds: the step is accepted, exit 0."""
    with walk.config.open("a") as f:
        f.write(config)
    walk.edit_config(r'^worker = \["\w+"\]', f'worker = ["{teacher}"]')
    listed = walk.shake("teachers").out
    assert re.search(rf"^{teacher} .* \[worker\]  ok$", listed, re.M), listed
    before = {r["row_id"] for r in walk.rows()}
    feedback = feedback_file(walk, f"{teacher}.txt", "accept: fine")
    session = subprocess.run([SHAKE, "session", "greet.py", "--request", REQUEST, "--feedback", str(feedback),
                              "--max-steps", "1"], cwd=walk.home, env=walk.env, capture_output=True, text=True,
                             timeout=1800, stdin=subprocess.DEVNULL)
    walk.ran.append(["session", "greet.py", "--request", REQUEST])
    assert session.returncode == 0, session.stdout[-3000:] + session.stderr[-3000:]
    assert session.stderr == "" and not NOISE.search(session.stdout), session.stderr + session.stdout[-3000:]
    assert f"worker: {teacher})" in session.stdout and f"== worker output ({teacher})" in session.stdout
    assert "== label: Accepted (explicit prefix)" in session.stdout
    new = [r for r in walk.rows() if r["row_id"] not in before]
    assert new and all(r["chosen"]["teacher"]["name"] == teacher for r in new)
    assert all(r["chosen"]["teacher"]["model"] == model for r in new)


@step()
def the_exported_gguf_as_an_embedded_teacher(walk: Walk) -> None:
    walk.rows_before_teachers = len(walk.rows())
    session_on(walk, "mine", f'\n[teachers.mine]\nbackend = "embedded"\nmodel = "{walk.home / "exported" / "student.gguf"}"\n',
               "student.gguf")


@step()
def the_run_as_a_student_teacher(walk: Walk) -> None:
    session_on(walk, "stud", f'\n[teachers.stud]\nbackend = "student"\nmodel = "{walk.data / "runs" / "first"}"\n',
               "first@final")


@step("shake data rescore [--teacher NAME]")
def data_rescore(walk: Walk) -> None:
    refused = walk.shake("data", "rescore", "--teacher", "stud", expect=2).err
    assert "is a student" in refused  # a student never labels data: it would be distilled into itself
    out = walk.shake("data", "rescore", "--teacher", "smollm2").out
    scored = int(re.search(r"^rescored (\d+) steps \(\d+ rows\) with 'smollm2'", out, re.M).group(1))
    assert scored == 2  # the steps the exported GGUF and the student wrote (every other one is smollm2's own)
    accepted = [r for r in walk.rows() if r["chosen"]]
    assert all(r["chosen"]["logprobs"]["scorer"]["name"] == "smollm2" for r in accepted)
    assert walk.shake("data", "check").out.endswith(f"no problems in {walk.data}\n")
    again = walk.shake("data", "rescore", "--teacher", "smollm2").out
    assert again.startswith("rescored 0 steps")  # resumable: nothing left to do


@pytest.fixture
def walk(tmp_path) -> Walk:
    from engine.logs import QUIET_ENVIRONMENT

    # nothing inherited that would quiet the libraries for shake, or point it at another config
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHAKE_") and k not in QUIET_ENVIRONMENT}
    env.update(SHAKE_CONFIG=str(tmp_path / "config.toml"), SHAKE_DATA=str(tmp_path / "data"), HOME=str(tmp_path),
               XDG_CONFIG_HOME=str(tmp_path / "xdg-config"), XDG_DATA_HOME=str(tmp_path / "xdg-data"))
    # the test run's cache of the converted default student (tests/conftest.py), as a user's cache is kept
    # between commands: the walk's `shake train`s do not convert the GGUF again (tests/test_converted.py does)
    env["SHAKE_CACHE"] = os.environ["SHAKE_CACHE"]
    return Walk(tmp_path, env)


def literal_words(row: str) -> list[str]:
    """The words of a README command that every use of it types: `data export` of
    `shake data export [--format jsonl|parquet] [--out FILE]`."""
    return [w for w in re.sub(r"\[[^\]]*\]", "", row).split()[1:] if re.fullmatch(r"[a-z][a-z-]*|--[a-z-]+", w)]


def typed(argv: list[str], words: list[str]) -> bool:
    rest = iter(argv)
    return all(any(word == arg for arg in rest) for word in words)  # in order, gaps allowed


@pytest.mark.slow
@pytest.mark.timeout(3600)  # ~4 minutes on a quiet 2-core machine; far more when other work shares it
def test_every_command_on_the_defaults_as_a_user_types_it(walk):
    for each in STEPS:
        start, started = len(walk.ran), time.perf_counter()
        each(walk)
        print(f"{each.__name__}: {time.perf_counter() - started:.1f} s")  # shown with -s, or on a failure
        for row in each.rows:  # the step ran the command its README row shows
            assert any(typed(argv, literal_words(row)) for argv in walk.ran[start:]), (row, walk.ran[start:])


# -- the app: what it can do of the same walk ------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.timeout(1800)
async def test_the_app_on_the_defaults(walk):
    """`shake app SCRIPT -r REQUEST` on the real embedded teacher: a proposal, accepted with one line; the
    dataset screen counts the row and exports it. (Training from the app is `test_app.py`'s, on the tiny
    student.)"""
    from engine.config import load_config
    from tui.app import ShakeApp

    config_init(walk)
    (walk.home / "greet.py").write_text(SCRIPT)
    os.environ.update(SHAKE_CONFIG=walk.env["SHAKE_CONFIG"], SHAKE_DATA=walk.env["SHAKE_DATA"])
    try:
        app = ShakeApp(walk.home / "greet.py", REQUEST, config=load_config(), check_ollama=False)
        async with app.run_test(size=(140, 45)) as pilot:
            screen = await wait_until(pilot, lambda: app.session_screen and app.session_screen.session
                                      and app.session_screen.session.status in ("review", "stalled")
                                      and not app.session_screen.busy and app.session_screen)
            session = screen.session
            assert session.status == "review", "the first proposal of this walk's session runs on the defaults"
            screen.query_one("#feedback-input").focus()
            await pilot.press(*"accept: good")
            await pilot.press("enter")
            await wait_until(pilot, lambda: app.focused is not None and app.focused.id == "label-confirm")
            assert "Accepted" in str(screen.query_one("#label-confirm").render())
            await pilot.press("enter")
            # the step is accepted (the app's plan is not cut to one step: the session may go on to the next)
            await wait_until(pilot, lambda: session.steps[0].status == "accepted")
            rows = [r.to_json() for r in app.store.rows() if r.step_index == 0]
            assert len(rows) == 1 and rows[0]["chosen"]["teacher"]["name"] == "smollm2"
            await pilot.press("f3")  # the dataset screen: the row, and its export
            await wait_until(pilot, lambda: re.match(r"\d+ rows? in 1 session · [1-9]\d* complete",
                                                     str(app.screen.query_one("#dataset-counts").render())), timeout=30)
            await pilot.press("e")
            exported = await wait_until(pilot, lambda: list((walk.data / "exports").glob("*.jsonl")), timeout=30)
            records = [json.loads(line) for line in exported[0].read_text().splitlines()]
            assert rows[0]["chosen"]["text"] in [r["chosen"][0]["content"] for r in records]
    finally:
        os.environ.pop("SHAKE_CONFIG", None)
        os.environ.pop("SHAKE_DATA", None)


async def wait_until(pilot, predicate, timeout: float = 600.0):
    for _ in range(int(timeout / 0.1)):
        value = predicate()
        if value:
            return value
        await pilot.pause(0.1)
    raise AssertionError("the app did not get there in time")


# -- README and the walk agree ----------------------------------------------------------------------
def readme_rows() -> list[str]:
    text = (ROOT / "README.md").read_text()
    table = text.split("## Commands", 1)[1].split("\n\n", 2)[1]
    return [re.split(r"(?<!\\)\|", line)[1].strip() for line in table.splitlines()[2:]]


def test_readme_lists_what_the_walk_runs():
    """README's command table, row by row and in order, is the app walk's row and then the steps' rows."""
    covered = ["`shake` / `shake app [SCRIPT] [-r REQUEST \\| --request-file PATH]`"] + [f"`{row}`" for each in STEPS for row in each.rows]
    assert readme_rows() == covered
