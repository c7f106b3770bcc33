"""Bad input everywhere: one clear line on stderr and exit 2, never a traceback, never a hang, nothing
written where the user did not mean; and a bug is one line naming the log that holds its traceback."""

from __future__ import annotations

import io
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from engine.store import DatasetStore
from servers import FakeOllama
from tui.cli import EXIT_BROKEN_PIPE, EXIT_BUG, main

ROOT = Path(__file__).resolve().parent.parent


def run_cli(argv, capsys):
    rc = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def one_line(err: str) -> bool:
    return err.count("\n") == 1 and "Traceback" not in err


def nothing_stored(shake_env) -> bool:
    with DatasetStore(shake_env / "data") as store:
        return list(store.rows()) == [] and store.session_ids() == []


@pytest.fixture
def good(shake_env):
    path = shake_env / "good.py"
    path.write_text("print(1)\n")
    return path


# -- the script ----------------------------------------------------------------------------------
def test_a_fifo_as_the_script_is_refused_at_once(shake_env, capsys):
    fifo = shake_env / "script.py"
    os.mkfifo(fifo)
    rc, _, err = run_cli(["session", fifo, "--request", "x"], capsys)  # it used to hang here forever
    assert rc == 2 and one_line(err) and "is a FIFO (named pipe), not a file" in err
    assert nothing_stored(shake_env)


@pytest.mark.parametrize("device, kind", [("/dev/zero", "a character device"), ("/dev/null", "a character device")])
def test_a_device_as_the_script_is_refused(shake_env, capsys, device, kind):
    rc, _, err = run_cli(["session", device, "--request", "x"], capsys)
    assert rc == 2 and one_line(err) and f"{device} is {kind}" in err


def test_a_symlink_as_the_script_says_where_it_points(shake_env, capsys, tmp_path_factory):
    secret = tmp_path_factory.mktemp("elsewhere") / "id_ed25519"
    secret.write_text("x = 'not a script the user meant'\n")
    link = shake_env / "script.py"
    link.symlink_to(secret)
    rc, _, err = run_cli(["session", link, "--request", "x"], capsys)
    assert rc == 2 and one_line(err) and f"is a symbolic link to {secret}" in err
    assert nothing_stored(shake_env)


def test_a_script_that_is_not_utf8_or_too_large(shake_env, capsys):
    latin = shake_env / "latin.py"
    latin.write_bytes(b"# caf\xe9\nprint(1)\n")
    rc, _, err = run_cli(["session", latin, "--request", "x"], capsys)
    assert rc == 2 and one_line(err) and "not UTF-8 text (byte 0xe9 on line 1)" in err
    big = shake_env / "big.py"
    big.write_text("x = 1\n" * 50_000)
    rc, _, err = run_cli(["session", big, "--request", "x"], capsys)
    assert rc == 2 and one_line(err) and "up to 200000 bytes" in err


# -- --out -------------------------------------------------------------------------------------
@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full here")
def test_out_onto_a_device_node_is_refused_and_the_device_stays(shake_env, capsys):
    rc, _, err = run_cli(["data", "export", "--out", "/dev/full", "--force"], capsys)
    assert rc == 2 and one_line(err) and "/dev/full is a character device; refusing to replace it" in err
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)  # as root, the old code replaced it with a file


def test_out_into_proc_is_refused(shake_env, capsys):
    rc, _, err = run_cli(["data", "export", "--out", "/proc/shake-export.jsonl"], capsys)
    assert rc == 2 and one_line(err) and "kernel file system (proc)" in err
    rc, _, err = run_cli(["data", "export", "--hf", "/proc/self"], capsys)
    assert rc == 2 and one_line(err)


def test_out_onto_an_existing_file_needs_force(shake_env, capsys):
    target = shake_env / "rows.jsonl"
    target.write_text("keep me\n")
    rc, _, err = run_cli(["data", "export", "--out", target], capsys)
    assert rc == 2 and one_line(err) and "already exists; pass --force" in err
    assert target.read_text() == "keep me\n"
    rc, out, _ = run_cli(["data", "export", "--out", target, "--force"], capsys)
    assert rc == 0 and "wrote 0 rows" in out and target.read_text() == ""


def test_out_through_a_symlink_says_where_it_points(shake_env, capsys, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("elsewhere") / "precious.txt"
    elsewhere.write_text("precious")
    link = shake_env / "out.jsonl"
    link.symlink_to(elsewhere)
    rc, _, err = run_cli(["data", "export", "--out", link, "--force"], capsys)
    assert rc == 2 and one_line(err) and f"symbolic link to {elsewhere}" in err
    assert elsewhere.read_text() == "precious"


def test_hf_into_a_file_or_a_full_directory_is_refused(shake_env, capsys):
    a_file = shake_env / "file"
    a_file.write_text("x")
    rc, _, err = run_cli(["data", "export", "--hf", a_file], capsys)  # it used to raise NotADirectoryError
    assert rc == 2 and one_line(err) and "give a new or empty directory" in err


def test_session_out_is_checked_before_the_session_starts(shake_env, capsys, good):
    existing = shake_env / "final.py"
    existing.write_text("mine\n")
    rc, _, err = run_cli(["session", good, "--request", "x", "--out", existing], capsys)
    assert rc == 2 and one_line(err) and "pass --force" in err
    assert nothing_stored(shake_env) and existing.read_text() == "mine\n"


def test_config_init_onto_a_device_is_refused_even_with_force(shake_env, capsys, monkeypatch):
    monkeypatch.setenv("SHAKE_CONFIG", "/dev/full")
    rc, _, err = run_cli(["config", "--init", "--force"], capsys)
    assert rc == 2 and one_line(err) and "character device" in err
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)


def test_student_export_out_is_checked(shake_env, capsys):
    pytest.importorskip("trainer.cli")
    full = shake_env / "full"
    full.mkdir()
    (full / "x").write_text("x")
    rc, _, err = run_cli(["student", "export", "some-run", "--out", full], capsys)
    assert rc == 2 and one_line(err) and "is not empty" in err


# -- the request, feedback and config --------------------------------------------------------------------
def test_request_file_for_a_request_longer_than_the_argument_limit(shake_env, capsys, good):
    request = shake_env / "request.txt"
    request.write_text("Make it better. " * 200_000)  # 3.2 MB: more than ARG_MAX allows on one line
    rc, _, err = run_cli(["session", good, "--request-file", request], capsys)
    assert rc == 2 and one_line(err) and "up to 1048576 bytes" in err
    request.write_text("Print two instead of one. " * 8000)  # 200 kB: over MAX_ARG_STRLEN (128 kB)
    with FakeOllama(model="m", reply=["no code here"]) as server:
        (shake_env / "config.toml").write_text(f'[teachers.o]\nbackend = "ollama"\nhost = "{server.url}"\nmodel = "m"\n'
                                               '[session]\nswitch_teacher_after = 1\n')
        rc, out, _ = run_cli(["session", good, "--request-file", request, "--feedback", "/dev/null"], capsys)
    assert "== session" in out and rc == 3
    with DatasetStore(shake_env / "data") as store:
        (sid,) = store.session_ids()
        assert store.load_state(sid).request == request.read_text().strip()


def test_request_file_that_is_missing_a_fifo_or_empty(shake_env, capsys, good):
    rc, _, err = run_cli(["session", good, "--request-file", shake_env / "none.txt"], capsys)
    assert rc == 2 and one_line(err) and "no request file at" in err
    fifo = shake_env / "fifo"
    os.mkfifo(fifo)
    rc, _, err = run_cli(["session", good, "--request-file", fifo], capsys)
    assert rc == 2 and one_line(err) and "FIFO" in err
    empty = shake_env / "empty.txt"
    empty.write_text("  \n")
    rc, _, err = run_cli(["session", good, "--request-file", empty], capsys)
    assert rc == 2 and one_line(err) and "is empty" in err
    with pytest.raises(SystemExit) as exc:  # one or the other
        main(["session", str(good), "--request", "x", "--request-file", str(empty)])
    assert exc.value.code == 2


def test_a_feedback_file_that_is_not_utf8_stops_before_the_session_starts(shake_env, capsys, good):
    feedback = shake_env / "feedback.txt"
    feedback.write_bytes(b"accept: fine\nredo: caf\xe9\n")
    rc, _, err = run_cli(["session", good, "--request", "x", "--feedback", feedback], capsys)
    assert rc == 2 and one_line(err) and "not UTF-8 text (byte 0xe9 on line 2)" in err
    assert nothing_stored(shake_env)


WORKS = "1. Print two\n\n```python\nprint(2)\n```\n"


def test_feedback_on_stdin_that_is_not_utf8_leaves_the_session_as_it_was(shake_env, capsys, good, monkeypatch):
    with FakeOllama(model="m", reply=[WORKS]) as server:
        (shake_env / "config.toml").write_text(f'[teachers.o]\nbackend = "ollama"\nhost = "{server.url}"\nmodel = "m"\n')
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"caf\xe9 is fine\n")))
        rc, out, err = run_cli(["session", good, "--request", "print two", "--max-steps", "1"], capsys)
    assert "== diff" in out, out
    assert rc == 2 and one_line(err) and "feedback line 1 on stdin is not UTF-8" in err
    with DatasetStore(shake_env / "data") as store:
        (sid,) = store.session_ids()
        state = store.load_state(sid)
        assert state.status == "review" and list(store.rows()) == []  # the proposal waits, as before


def test_bad_config_values_through_the_cli(shake_env, capsys):
    for text, message in (("[agents]\nworker = 5\n", "must be a list of strings"),
                          ("teachers = 5\n", "[teachers] must be a table"),
                          ("[paths]\ndata_dir = 5\n", "data_dir must be a string"),
                          ("[runner]\ntimeout_s = nan\n", "must be a finite number"),
                          ("[runner]\ndisk_mb = 0\n", "disk_mb must be an integer in 1..65536")):
        (shake_env / "config.toml").write_text(text)
        rc, _, err = run_cli(["config"], capsys)
        assert rc == 2 and one_line(err) and message in err, err
    (shake_env / "config.toml").write_bytes(b"[runner]\n# caf\xe9\n")
    rc, _, err = run_cli(["config"], capsys)
    assert rc == 2 and one_line(err) and "not UTF-8" in err


@pytest.mark.parametrize("value", ["0", "1000", "ten"])
def test_max_steps_out_of_range_is_a_usage_error(shake_env, good, value, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["session", str(good), "--request", "x", "--max-steps", value])
    assert exc.value.code == 2 and "--max-steps" in capsys.readouterr().err


# -- the entry point -------------------------------------------------------------------------------
def test_a_closed_pipe_ends_quietly(shake_env):
    proc = subprocess.Popen([sys.executable, "-c", "import sys; from tui.cli import main; sys.exit(main())",
                             "config", "--defaults"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # `| head` that has already read what it wanted
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == EXIT_BROKEN_PIPE and err == b""


def test_an_unexpected_error_is_one_line_naming_the_log(shake_env, capsys, monkeypatch):
    from engine import cli as engine_cli

    def broken(args):
        raise KeyError("a bug")

    monkeypatch.setattr(engine_cli, "cmd_sessions", broken)
    rc, _, err = run_cli(["sessions"], capsys)
    assert rc == EXIT_BUG and one_line(err) and "a bug in shake (KeyError" in err
    log = Path(err.rsplit("the traceback is in ", 1)[1].strip())
    assert log.parent == shake_env / "data" / "logs" and "Traceback" in log.read_text()
    assert "raise KeyError" in log.read_text()
