"""`shake` headless commands end to end: a real session on the embedded model, and bad input."""

from __future__ import annotations

import json

import pytest

from engine.store import DatasetStore
from helpers import rows_json
from servers import FakeOllama, free_port
from tui.cli import main

REAL = """
[teachers.smollm2]
backend = "embedded"
top_logprobs = 8
[sampling.worker]
temperature = 0.3
max_tokens = 400
[session]
switch_teacher_after = 8
"""


@pytest.mark.slow
def test_real_session_on_the_embedded_teacher_writes_rows_with_logprobs(shake_env, capsys):
    (shake_env / "config.toml").write_text(REAL)
    script = shake_env / "greet.py"
    script.write_text('def greet(name):\n    return "hello " + name\n\nprint(greet("world"))\n')
    feedback = shake_env / "feedback.txt"
    feedback.write_text("# one line per review\nedit: keep going\naccept: good\n")
    out = shake_env / "final.py"
    rc = main(["session", str(script), "--request", "Make the greeting uppercase", "--feedback", str(feedback),
               "--max-steps", "1", "--out", str(out)])
    printed = capsys.readouterr().out
    assert rc == 0, printed
    for header in ("== plan", "== instruction", "== run log", "== diff", "== label: Further edit", "== label: Accepted"):
        assert header in printed
    assert out.exists()
    with DatasetStore(shake_env / "data") as store:
        rows = rows_json(store)
        # the Further-edit row, and an error row for each proposal that failed when run (the real model's
        # answers vary with its prompts); every row of the step carries the accepted output
        kinds = sorted(r["rejected"]["kind"] for r in rows)
        assert kinds.count("further_edit") == 1 and set(kinds) <= {"further_edit", "error"}, kinds
        chosen = rows[0]["chosen"]
        assert all(r["chosen"] == chosen for r in rows) and chosen["script"] == out.read_text()
        lp = store.get_logprobs(chosen["logprobs"]["blob"])
        assert lp.has_ids and lp.k == 8
        assert b"".join(lp.token_bytes).decode() == chosen["text"]
        assert chosen["teacher"]["quantization"] == "Q4_1"
    assert main(["data", "stats", "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["complete_rows"] == stats["with_logprobs"] == len(rows)
    assert main(["data", "export", "--out", str(shake_env / "d.jsonl")]) == 0
    assert json.loads((shake_env / "d.jsonl").read_text().splitlines()[0])["chosen_logprobs"]["token_ids"]


def run_cli(argv, capsys):
    rc = main(argv)
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def no_rows(shake_env):
    with DatasetStore(shake_env / "data") as store:
        return rows_json(store) == []


def test_missing_script_nonparsing_script_and_empty_request(shake_env, capsys):
    rc, _, err = run_cli(["session", str(shake_env / "nope.py"), "--request", "x"], capsys)
    assert rc == 2 and "no script at" in err and err.count("\n") == 1
    broken = shake_env / "broken.py"
    broken.write_text("def f(:\n")
    rc, _, err = run_cli(["session", str(broken), "--request", "x"], capsys)
    assert rc == 2 and "does not parse (line 1" in err
    good = shake_env / "good.py"
    good.write_text("print(1)\n")
    rc, _, err = run_cli(["session", str(good), "--request", "   "], capsys)
    assert rc == 2 and "request is empty" in err
    rc, _, err = run_cli(["session", str(good), "--request", "x", "--feedback", str(shake_env / "none.txt")], capsys)
    assert rc == 2 and "no feedback file" in err
    assert no_rows(shake_env)


def test_unreachable_server_and_missing_model(shake_env, capsys):
    good = shake_env / "good.py"
    good.write_text("print(1)\n")
    port = free_port()
    (shake_env / "config.toml").write_text(
        f'[teachers.remote]\nbackend = "openai"\nhost = "http://127.0.0.1:{port}"\nmodel = "m"\nconnect_timeout_s = 1.0\n'
    )
    rc, _, err = run_cli(["session", str(good), "--request", "x"], capsys)
    assert rc == 2 and "not reachable" in err and "Traceback" not in err
    with FakeOllama() as server:
        (shake_env / "config.toml").write_text(f'[teachers.o]\nbackend = "ollama"\nhost = "{server.url}"\nmodel = "missing"\n')
        rc, _, err = run_cli(["session", str(good), "--request", "x"], capsys)
        assert rc == 2 and "has no model 'missing'" in err
        rc, out, _ = run_cli(["teachers"], capsys)
        assert rc == 1 and "UNAVAILABLE" in out
    assert no_rows(shake_env)


def test_output_with_no_code_pauses_the_session_and_writes_no_row(shake_env, capsys):
    good = shake_env / "good.py"
    good.write_text("print(1)\n")
    with FakeOllama(model="m", reply=["I would ", "rather not."]) as server:
        (shake_env / "config.toml").write_text(
            f'[teachers.o]\nbackend = "ollama"\nhost = "{server.url}"\nmodel = "m"\n[session]\nswitch_teacher_after = 2\n'
        )
        rc, out, _ = run_cli(["session", str(good), "--request", "x", "--feedback", "/dev/null"], capsys)
    assert rc == 3
    assert "teacher 'o' gave no proposal that runs (malformed: the worker's answer has no ```python code block" in out
    assert "shake session --resume" in out
    assert no_rows(shake_env)
    rc, out, _ = run_cli(["sessions"], capsys)
    assert "stalled" in out


def test_config_and_help(shake_env, capsys):
    rc, out, _ = run_cli(["config"], capsys)
    assert rc == 0 and str(shake_env / "config.toml") in out and str(shake_env / "data") in out
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    assert "session" in capsys.readouterr().out
