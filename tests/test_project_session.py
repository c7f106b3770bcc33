"""Issue 25's end-to-end case: the example project (two modules, a data file, a pytest file) through a
headless `shake session --run ... --check ...` on a scripted teacher; and every bad input, one line."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from engine import cli as engine_cli
from engine.execution import sandbox, scratch
from engine.store import DatasetStore
from engine.teachers.pool import TeacherPool
from helpers import ScriptedTeacher, rows_json, worker_answer
from tui.cli import main

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "report"
RUN = "python report.py --month 3"
CHECK = "pytest -q -p no:cacheprovider tests/test_report.py"
CONFIG = """
[teachers.a]
backend = "embedded"
[agents]
planner = ["a"]
lead = ["a"]
worker = ["a"]
analyzer = ["a"]
[session]
switch_teacher_after = 3
[runner]
timeout_s = 20.0
[analyzer]
scoring = "off"
"""

ORIGINAL = (EXAMPLE / "report.py").read_text()
# The first answer runs but fails the check (no "-" for a month without sales); the second passes it.
HALF = ORIGINAL.replace(
    '''    return f"{MONTHS[month - 1]}: {len(chosen)} sales, total {dollars(total(chosen))}"''',
    '''    average = total(chosen) / len(chosen) if chosen else 0.0
    return f"{MONTHS[month - 1]}: {len(chosen)} sales, total {dollars(total(chosen))}, average {dollars(average)}"''')
FIXED = ORIGINAL.replace(
    '''    return f"{MONTHS[month - 1]}: {len(chosen)} sales, total {dollars(total(chosen))}"''',
    '''    average = dollars(total(chosen) / len(chosen)) if chosen else "-"
    return f"{MONTHS[month - 1]}: {len(chosen)} sales, total {dollars(total(chosen))}, average {average}"''')


def tree_state(root: Path) -> dict[str, tuple]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            info = path.lstat()
            out[str(path.relative_to(root))] = (info.st_mode, info.st_mtime_ns,
                                                path.read_bytes() if path.is_file() else b"")
    return out


@pytest.fixture
def env(tmp_path, monkeypatch):
    (tmp_path / "config.toml").write_text(CONFIG)
    monkeypatch.setenv("SHAKE_CONFIG", str(tmp_path / "config.toml"))
    monkeypatch.setenv("SHAKE_DATA", str(tmp_path / "data"))
    return tmp_path


def scripted(monkeypatch, answers) -> ScriptedTeacher:
    teacher = ScriptedTeacher("a", answers)
    monkeypatch.setattr(engine_cli, "TeacherPool", lambda config: TeacherPool(config, extra={"a": teacher}))
    return teacher


@pytest.mark.skipif(sandbox.probe() is not None, reason=f"no sandbox here: {sandbox.probe()}")
def test_the_example_project_goes_through_a_headless_session_with_run_and_check(env, monkeypatch, capsys):
    teacher = scripted(monkeypatch, {
        "planner": ["1. Show the month's average sale"],
        "lead": ["Add the average sale to the summary line.", "Make the check pass."],
        "worker": [worker_answer(HALF), worker_answer(FIXED)],
    })
    feedback = env / "feedback.txt"
    feedback.write_text("accept: good\n")
    out = env / "final.py"
    before, dirs_before = tree_state(EXAMPLE), {e for e in os.listdir(tempfile.gettempdir()) if e.startswith(scratch.PREFIX)}
    rc = main(["session", str(EXAMPLE / "report.py"), "--project", str(EXAMPLE), "--run", RUN, "--check", CHECK,
               "--request", "Show the average sale", "--feedback", str(feedback), "--out", str(out)])
    printed = capsys.readouterr().out
    assert rc == 0, printed
    assert f"== project {EXAMPLE}: 5 files" in printed
    # the run saw the sibling modules and the data file, with its arguments; the fixed script passed the check
    assert "$ python report.py --month 3   # exit code 0" in printed
    assert "March: 3 sales, total $60.00, average $20.00" in printed
    assert "$ pytest -q -p no:cacheprovider tests/test_report.py   # exit code 0" in printed
    assert out.read_text() == FIXED
    # the agents were told how the script runs and what it imports
    worker_messages = [m for agent, m in teacher.calls if agent == "worker"]
    assert "`python report.py --month 3`" in worker_messages[0][-1]["content"]
    assert "def load_sales(path: str) -> list[Sale]" in worker_messages[0][-1]["content"]
    lead_messages = [m for agent, m in teacher.calls if agent == "lead"]
    assert "def dollars(amount: float) -> str" in lead_messages[0][-1]["content"]
    with DatasetStore(env / "data") as store:
        rows = rows_json(store)
    # the half answer failed the check: an error row whose error is pytest's report
    assert [r["rejected"]["kind"] for r in rows] == ["error"]
    error = rows[0]["rejected"]["error"]
    assert error.startswith(f"The script ran, but the check `{CHECK}` failed") and "average -" in error
    assert rows[0]["chosen"]["script"] == FIXED
    context = rows[0]["prompt"]["context"]
    assert context["root"] == str(EXAMPLE) and context["script"] == "report.py"
    assert context["run"] == RUN.split() and context["check"] == CHECK.split()
    assert [m["path"] for m in context["modules"]] == ["money.py", "sales.py"]
    assert len(context["files_sha"]) == 64
    # nothing outside the run directory changed: not the project, not its script; no copy left behind
    assert tree_state(EXAMPLE) == before
    assert {e for e in os.listdir(tempfile.gettempdir()) if e.startswith(scratch.PREFIX)} == dirs_before


def no_session_written(env) -> bool:
    return not (env / "data" / "sessions").exists() or not any((env / "data" / "sessions").iterdir())


def test_every_bad_project_input_is_one_line_and_writes_nothing(env, monkeypatch, capsys, tmp_path):
    scripted(monkeypatch, {})
    script = str(EXAMPLE / "report.py")
    big = tmp_path / "big"
    big.mkdir()
    (big / "main.py").write_text("print(1)\n")
    for i in range(2001):
        (big / f"f{i}.txt").write_text("")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    x = ["--request", "x"]
    cases = [
        ([script, "--project", str(elsewhere), *x], "does not contain the script"),
        ([script, "--project", str(EXAMPLE), "--run", "python reprot.py", *x], "names reprot.py, which is not in the project"),
        ([script, "--project", str(EXAMPLE), "--check", "pytest tests/test_nothing.py", *x], "names tests/test_nothing.py"),
        ([script, "--project", str(EXAMPLE), "--run", "python report.py > out.txt", *x], "uses shell syntax (>)"),
        ([script, "--project", str(EXAMPLE), "--stdin", str(tmp_path / "none.txt"), *x], "no stdin file at"),
        ([str(big / "main.py"), "--run", "python main.py", *x], "is too big"),
        (["--resume", "abc", "--run", "python main.py"], "belongs to a new session"),
    ]
    for extra, words in cases:
        rc = main(["session", *extra])
        captured = capsys.readouterr()
        assert rc == 2, (extra, captured)
        assert words in captured.err and captured.err.count("\n") == 1 and "Traceback" not in captured.err, captured.err
        assert no_session_written(env)


@pytest.mark.skipif(sandbox.probe() is not None, reason=f"no sandbox here: {sandbox.probe()}")
def test_a_side_chain_students_script_runs_in_the_project_like_the_teachers(env, tmp_path):
    """Run alone, a student's script that imports a sibling fails, and would be stored as a false negative."""
    from engine.config import load_config
    from engine.execution.project import make_spec
    from engine.session import Session

    root = tmp_path / "proj"
    root.mkdir()
    (root / "words.py").write_text('BYE = "bye"\n')
    (root / "main.py").write_text('print("hello")\n')
    (env / "config.toml").write_text('[teachers.s1]\nbackend = "embedded"\n' + CONFIG
                                     + '[student]\nmode = "side-chain"\nteachers = ["s1"]\n')
    config = load_config()
    teacher_script = 'from words import BYE\nprint("hello", BYE)\n'
    student_script = 'from words import BYE\nprint("hello " + BYE)\n'
    a = ScriptedTeacher("a", {"worker": [worker_answer(teacher_script)], "judge": ["B"] * 8})
    s1 = ScriptedTeacher("s1", {"worker": [worker_answer(student_script)]}, backend="student")
    spec, _ = make_spec(root / "main.py")
    with DatasetStore(config.data_dir) as store:
        session = Session.start(store, TeacherPool(config, extra={"a": a, "s1": s1}), config, root / "main.py", "say bye",
                                project=spec)
        session.plan()
        proposal = session.propose()
        assert proposal.run.ok and "hello bye" in proposal.run.stdout
        rows = rows_json(store)
    # the judge preferred the student's answer, which ran: no negative; run alone it would have failed
    assert [r for r in rows if r["agent"] == "worker"] == [], rows
