"""The runner: exit codes, timeouts, output caps, rlimits and the whole process tree ended."""

from __future__ import annotations

import time

from engine.config import RunnerConfig
from engine.execution import run_script


def cfg(**kw):
    return RunnerConfig(**{"timeout_s": 3.0, **kw})


def test_clean_run_and_a_failing_run():
    ok = run_script('print("hi")\n', cfg())
    assert ok.ok and ok.stdout == "hi\n" and ok.exit_code == 0
    bad = run_script('import sys\nprint("oops", file=sys.stderr)\nsys.exit(3)\n', cfg())
    assert not bad.ok and bad.exit_code == 3 and "oops" in bad.stderr
    crash = run_script("1/0\n", cfg())
    assert "ZeroDivisionError" in crash.error_text()


def test_syntax_error_is_reported_without_running():
    res = run_script("def f(:\n", cfg())
    assert not res.ok and "SyntaxError" in res.stderr and res.duration_s == 0.0


def test_the_log_of_a_script_that_does_not_compile_says_nothing_ran():
    # Issue #23 item 10: it read `$ python script.py   # exit code 1, 0.00 s` although nothing ran.
    log = run_script("def f(:\n", cfg()).log()
    assert log.splitlines()[0] == "$ python script.py   # did not compile: nothing ran"
    assert "SyntaxError" in log and "exit code" not in log


def test_wall_clock_timeout_ends_a_sleeping_script():
    started = time.perf_counter()
    res = run_script("import time\ntime.sleep(60)\n", cfg(timeout_s=1.0))
    assert res.timed_out and res.exit_code is None and not res.ok
    # ended before the sleep would have ended by itself (~1 s here; a bound that a loaded machine cannot reach)
    assert time.perf_counter() - started < 60
    assert "time limit" in res.error_text()


def test_output_is_capped():
    res = run_script("import sys\nfor _ in range(20000): sys.stdout.write('x' * 1000)\n", cfg(output_cap_kb=8))
    assert res.stdout_truncated and len(res.stdout) == 8 * 1024


def test_memory_limit_stops_a_huge_allocation():
    res = run_script("x = bytearray(4 * 1024**3)\nprint('allocated')\n", cfg(memory_mb=256))
    assert not res.ok and "MemoryError" in res.stderr


def test_stdin_is_empty_and_cwd_is_private():
    res = run_script("import os, sys\nprint(repr(sys.stdin.read()))\nprint(os.getcwd())\n", cfg())
    lines = res.stdout.splitlines()
    assert lines[0] == "''" and lines[1] == "/sandbox/run"


def test_unsandboxed_mode_runs_in_a_private_temp_dir():
    res = run_script("import os\nprint(os.getcwd())\n", cfg(sandbox="none"))
    assert res.ok and "shake-run-" in res.stdout
