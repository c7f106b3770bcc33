"""What the headless commands print: stored and user-supplied text sanitized (a request holding an OSC 52
clipboard write, a session file named with a title change), and ordinary I/O errors (a read-only
directory, a full disk, standard output on /dev/full or closed) as one line naming the path and the
system's words, exit 1 or 2, never exit 70 "a bug in shake"."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.execution import sandbox
from engine.execution.sanitize import is_safe
from engine.store import DatasetStore
from engine.store.schema import Agent
from records import chosen, row, state
from tui.cli import EXIT_IO, main

ROOT = Path(__file__).resolve().parent.parent
CLIPBOARD = "\x1b]52;c;cHduZWQ=\x07"
TITLE = "\x1b]0;owned\x07"


def one_line(err: str) -> bool:
    return err.count("\n") == 1 and "Traceback" not in err and "a bug in shake" not in err


@pytest.fixture
def stored(shake_env):
    """One session whose request and script name carry terminal escapes, as `--request-file` accepts them."""
    with DatasetStore(shake_env / "data") as store:
        sid = store.create_session(state(request=f"make it {CLIPBOARD}fast{TITLE}",
                                         script_path=f"/tmp/{TITLE}x.py"))
        # a planner's row: complete (it exports) and breaking no rule (`data check` passes)
        store.commit(sid, new_rows=[row(-1, None, chosen(agent=Agent.PLANNER), agent=Agent.PLANNER)])
    return shake_env / "data", sid


# -- item 18: escapes in stored text ---------------------------------------------------------------
def test_sessions_prints_the_stored_request_sanitized(stored, capsys):
    """`shake sessions` printed the request's OSC 52 and title change raw."""
    assert main(["sessions"]) == 0
    out = capsys.readouterr().out
    assert stored[1] in out and is_safe(out) and "␛]52;c;cHduZWQ=␇fast" in out


def test_data_check_prints_session_file_names_sanitized(stored, capsys):
    """`shake data check` (and `--fix`) printed a session file's name raw: anyone can name a file."""
    data_dir, _ = stored
    (data_dir / "sessions" / f"{TITLE}.json").write_text("{oops")
    assert main(["data", "check"]) == 1
    out = capsys.readouterr().out
    assert "␛]0;owned␇.json" in out and is_safe(out)
    assert main(["data", "check", "--fix"]) == 0
    out = capsys.readouterr().out
    assert "moved ␛]0;owned␇.json" in out and is_safe(out)


# -- item 20: ordinary I/O errors ------------------------------------------------------------------
def shake(args: list[str], env: Path, *, wrap: list[str] = (), **kw) -> subprocess.CompletedProcess:
    """`shake ARGS` in its own process (optionally under `wrap`), as a user runs it."""
    environ = {**os.environ, "SHAKE_CONFIG": str(env / "config.toml"), "SHAKE_DATA": str(env / "data"),
               "PYTHONPATH": str(ROOT)}
    return subprocess.run([*wrap, sys.executable, "-m", "tui.cli", *args], cwd=ROOT, env=environ, text=True,
                          timeout=180, **{"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, **kw})


needs_bwrap = pytest.mark.skipif(sandbox.probe() is not None, reason=f"no bubblewrap here: {sandbox.probe()}")


def read_only(*paths: Path) -> list[str]:
    """bubblewrap over the whole host with `paths` remounted read-only: a read-only file system for
    real, which even root cannot write to (a chmod does not stop root)."""
    args = ["bwrap", "--dev-bind", "/", "/"]
    for path in paths:
        args += ["--ro-bind", str(path), str(path)]
    return args


@needs_bwrap
def test_out_into_a_read_only_directory_is_one_line(stored, shake_env):
    target = shake_env / "ro"
    target.mkdir()
    done = shake(["data", "export", "--out", str(target / "rows.jsonl")], shake_env, wrap=read_only(target))
    assert done.returncode == 2 and one_line(done.stderr), done.stderr
    assert str(target / "rows.jsonl") in done.stderr and "Read-only file system" in done.stderr


@needs_bwrap
@pytest.mark.parametrize("command", [["data", "check", "--fix"], ["session", "SCRIPT", "--request", "x",
                                                                      "--feedback", os.devnull]])
def test_a_read_only_data_directory_is_one_line(stored, shake_env, command):
    data_dir, _ = stored
    script = shake_env / "s.py"
    script.write_text("print(1)\n")
    command = [str(script) if part == "SCRIPT" else part for part in command]
    done = shake(command, shake_env, wrap=read_only(data_dir))
    assert done.returncode == 2 and one_line(done.stderr), done.stderr
    assert str(data_dir) in done.stderr and "Read-only file system" in done.stderr


@needs_bwrap
def test_hf_onto_a_full_disk_is_one_line(stored, shake_env):
    data_dir, sid = stored
    with DatasetStore(data_dir) as store:  # more than the 8 KB disk holds
        store.commit(sid, new_rows=[row(-1, None, chosen("x" * 2000, agent=Agent.PLANNER), agent=Agent.PLANNER)
                                    for _ in range(10)])
    full = shake_env / "full"
    full.mkdir()
    wrap = ["bwrap", "--dev-bind", "/", "/", "--size", "8192", "--tmpfs", str(full)]
    done = shake(["data", "export", "--hf", str(full / "ds")], shake_env, wrap=wrap)
    assert done.returncode == 2 and one_line(done.stderr), done.stderr
    assert str(full / "ds") in done.stderr and "No space left on device" in done.stderr


def test_standard_output_on_dev_full_is_one_line(stored, shake_env):
    with open("/dev/full", "w") as full:
        done = shake(["data", "stats"], shake_env, stdout=full)
    assert done.returncode == EXIT_IO and one_line(done.stderr), done.stderr
    assert "standard output: No space left on device" in done.stderr


def test_standard_output_closed_is_one_line(stored, shake_env):
    environ = {**os.environ, "SHAKE_CONFIG": str(shake_env / "config.toml"), "SHAKE_DATA": str(shake_env / "data"),
               "PYTHONPATH": str(ROOT)}
    done = subprocess.run(["bash", "-c", f"exec {sys.executable} -m tui.cli sessions >&-"], cwd=ROOT, env=environ,
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == EXIT_IO and one_line(done.stderr), done.stderr
    assert "standard output is closed" in done.stderr


def test_a_config_nested_thousands_deep_is_one_line(shake_env, capsys):
    (shake_env / "config.toml").write_text("[ui]\ntheme = " + "[" * 5000 + "]" * 5000 + "\n")
    assert main(["config"]) == 2
    err = capsys.readouterr().err
    assert one_line(err) and "nested too deeply" in err and str(shake_env / "config.toml") in err
