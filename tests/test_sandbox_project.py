"""Project mode in the sandbox: the read-only project copy, sibling imports, data files, arguments,
stdin, the check command, and that nothing outside the run directory changes."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import pytest

from engine.config import RunnerConfig
from engine.execution import project, run_script, sandbox, scratch

pytestmark = pytest.mark.skipif(sandbox.probe() is not None, reason=f"no sandbox here: {sandbox.probe()}")


def tree_state(root: Path) -> dict[str, tuple[int, str]]:
    """Every path under root with its mode and content hash (links by target): what must not change."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            info = path.lstat()
            if path.is_symlink():
                digest = os.readlink(path)
            elif path.is_file():
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                digest = "dir"
            out[str(path.relative_to(root))] = (info.st_mode, info.st_mtime_ns, digest)
    return out


def run_dirs() -> set[str]:
    return {e for e in os.listdir(tempfile.gettempdir()) if e.startswith(scratch.PREFIX)}


@pytest.fixture
def proj(tmp_path):
    root = tmp_path / "proj"
    (root / "tests").mkdir(parents=True)
    (root / "helper.py").write_text("def double(x):\n    return 2 * x\n")
    (root / "numbers.csv").write_text("1\n2\n3\n")
    (root / "tests" / "test_main.py").write_text(
        "from main import total\n\ndef test_total():\n    assert total() == 12\n")
    secret = tmp_path / "secret.txt"
    secret.write_text("the key")
    (root / "peek.txt").symlink_to(secret)
    return root


def spec_for(root, script="main.py", **kw):
    (root / script).write_text("print('original')\n")
    spec, _ = project.make_spec(root / script, project=root, **kw)
    return spec


CONFIG = RunnerConfig(timeout_s=20.0)

USES_PROJECT = """
import sys
from helper import double

def total():
    with open("numbers.csv") as f:
        return sum(double(int(line)) for line in f)

if __name__ == "__main__":
    print("args", sys.argv[1:], "total", total(), "stdin", sys.stdin.read().strip())
"""


def test_the_run_sees_the_sibling_module_the_data_file_its_arguments_and_stdin(proj, tmp_path):
    feed = tmp_path / "in.txt"
    feed.write_text("from a file\n")
    spec = spec_for(proj, run="python main.py --month 3", stdin=feed)
    result = run_script(USES_PROJECT, CONFIG, spec=spec)
    assert result.ok, result.log()
    assert "args ['--month', '3'] total 12 stdin from a file" in result.stdout
    assert result.command == "python main.py --month 3" and result.log().startswith("$ python main.py --month 3")


def test_the_project_is_read_only_and_nothing_outside_the_run_directory_changes(proj):
    spec = spec_for(proj)
    before, dirs_before = tree_state(proj.parent), run_dirs()
    attack = """
import errno, os, pathlib
results = []
for target in ("main.py", "helper.py", "new.txt", "/sandbox/project/numbers.csv"):
    try:
        with open(target, "a") as f:
            f.write("changed")
        results.append(target + ": written")
    except OSError as err:
        results.append(target + ": " + errno.errorcode[err.errno])
for path in ("peek.txt", "../secret.txt"):
    results.append(path + (": seen" if os.path.exists(path) else ": absent"))
home = pathlib.Path(os.environ["HOME"]) / "out.txt"
home.write_text("fine")
results.append("home: " + home.read_text())
print(";".join(results))
"""
    result = run_script(attack, CONFIG, spec=spec)
    assert result.ok, result.log()
    line = result.stdout.strip()
    for target in ("main.py", "helper.py", "/sandbox/project/numbers.csv"):
        assert f"{target}: E" in line, line  # refused (the files belong to root; the run has its own uid)
    assert "new.txt: EROFS" in line, line  # and the mount itself is read-only, not only its files' modes
    assert "peek.txt: absent" in line and "../secret.txt: absent" in line and "home: fine" in line
    assert tree_state(proj.parent) == before  # the project, the script, the secret: not one byte or mode
    assert run_dirs() == dirs_before  # the copy was removed


def test_a_failing_check_fails_the_run_with_the_checks_output_as_the_error(proj):
    spec = spec_for(proj, check="pytest -q -p no:cacheprovider tests/test_main.py")
    wrong = USES_PROJECT.replace("double(int(line))", "int(line)")
    result = run_script(wrong, CONFIG, spec=spec)
    assert result.exit_code == 0 and result.check is not None and not result.ok
    error = result.error_text()
    assert error.startswith("The script ran, but the check `pytest -q -p no:cacheprovider tests/test_main.py` failed")
    assert "assert 6 == 12" in error
    assert "$ pytest -q" in result.log()
    good = run_script(USES_PROJECT, CONFIG, spec=spec)
    assert good.ok and good.check.ok, good.log()


def test_a_check_that_hangs_is_stopped_by_the_timeout(proj):
    (proj / "hang.py").write_text("import time\ntime.sleep(60)\n")
    spec = spec_for(proj, check="python hang.py")
    result = run_script("print('ran')\n", RunnerConfig(timeout_s=1.0), spec=spec)
    assert not result.ok and result.check.timed_out
    assert "did not finish within the time limit" in result.error_text()


def test_a_failing_run_skips_the_check(proj):
    spec = spec_for(proj, check="python helper.py")
    result = run_script("raise SystemExit(4)\n", CONFIG, spec=spec)
    assert result.exit_code == 4 and result.check is None and "Exit code 4" in result.error_text()
