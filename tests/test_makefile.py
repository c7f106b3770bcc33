"""The README's first command on a fresh machine: `make run` sets up the sandbox before the app opens,
and says the command to run where it cannot (issue #23 item 1)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def fake_venv(tmp_path: Path) -> Path:
    """A venv as `make run` expects it, whose `shake` only says it started."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    shake = venv / "bin" / "shake"
    shake.write_text("#!/bin/sh\necho APP-STARTED\n")
    shake.chmod(0o755)
    (venv / ".installed").touch()  # newer than the Makefile and pyproject.toml: nothing to install
    return venv


def test_make_run_without_bubblewrap_and_no_way_to_install_it_names_the_command_and_opens_the_app(tmp_path):
    venv = fake_venv(tmp_path)
    empty = tmp_path / "no-tools"  # no bwrap, no apt-get, no sudo on PATH
    empty.mkdir()
    result = subprocess.run([shutil.which("make"), "-s", "-C", str(ROOT), "run", f"VENV={venv}"],
                            capture_output=True, text=True, env={"PATH": str(empty)}, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "sudo apt-get install bubblewrap" in result.stderr
    assert result.stdout.strip().endswith("APP-STARTED")


def test_make_run_installs_bubblewrap_before_the_app_opens(tmp_path):
    venv = fake_venv(tmp_path)
    tools = tmp_path / "tools"
    tools.mkdir()
    # A stand-in apt-get as root has it: records what it was asked and "installs" bwrap.
    (tools / "apt-get").write_text(f"#!/bin/sh\necho \"apt-get $*\" >> {tmp_path}/apt.log\n"
                                   f"[ \"$1\" = install ] && printf '#!/bin/sh\\n' > {tools}/bwrap "
                                   f"&& /bin/chmod +x {tools}/bwrap\nexit 0\n")
    (tools / "id").write_text("#!/bin/sh\necho 0\n")
    for tool in ("apt-get", "id"):
        (tools / tool).chmod(0o755)
    result = subprocess.run([shutil.which("make"), "-s", "-C", str(ROOT), "run", f"VENV={venv}"],
                            capture_output=True, text=True, env={"PATH": str(tools)}, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "install -y -qq bubblewrap" in (tmp_path / "apt.log").read_text()
    assert "bubblewrap" not in result.stderr  # installed: nothing to say
    assert result.stdout.strip().endswith("APP-STARTED")
