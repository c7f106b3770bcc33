"""Hostile scripts: each is contained and comes back as an ordinary failed (or harmless) run."""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from pathlib import Path

import pytest

from engine.execution import sandbox
from engine.config import RunnerConfig
from engine.execution import run_script

pytestmark = pytest.mark.skipif(sandbox.probe() is not None, reason=f"no sandbox here: {sandbox.probe()}")


def cfg(**kw):
    return RunnerConfig(**{"timeout_s": 4.0, **kw})


def processes_with(marker: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if marker.encode() in Path(f"/proc/{entry}/cmdline").read_bytes():
                    found.append(int(entry))
            except OSError:
                pass
    return found


def test_fork_bomb_is_contained():
    marker = f"bomb-{uuid.uuid4().hex}"
    script = f"""
import os, sys
marker = {marker!r}
while True:
    try:
        if os.fork() == 0:
            os.execv(sys.executable, [sys.executable, "-c", "import os\\nwhile True:\\n  try: os.fork()\\n  except OSError: pass", marker])
    except OSError:
        pass
"""
    started = time.perf_counter()
    res = run_script(script, cfg(timeout_s=3.0))
    # the bomb never ends by itself: the time limit ended it, and the run came back far under a minute
    # (a few seconds when idle; no bound a loaded machine reaches)
    assert not res.ok and res.timed_out and time.perf_counter() - started < 60
    time.sleep(0.5)
    assert processes_with(marker) == []


def test_setsid_double_fork_leaves_no_process():
    marker = f"daemon-{uuid.uuid4().hex}"
    script = f"""
import os, sys
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execv(sys.executable, [sys.executable, "-c", "import time\\nwhile True: time.sleep(0.05)", {marker!r}])
    os._exit(0)
print("parent done")
"""
    res = run_script(script, cfg())
    assert res.ok and res.stdout == "parent done\n"
    time.sleep(0.3)
    assert processes_with(marker) == []


@pytest.mark.parametrize("body", ["while True:\n    pass\n", "import time\ntime.sleep(3600)\n"])
def test_busy_loop_and_long_sleep_end_at_the_wall_clock(body):
    res = run_script(body, cfg(timeout_s=1.5))
    assert res.timed_out and res.duration_s < 6


def test_ten_gigabytes_are_refused():
    res = run_script("x = bytearray(10 * 1024**3)\n", cfg())
    assert not res.ok and "MemoryError" in res.stderr


def test_no_network_public_or_loopback():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(0.1)
    port = listener.getsockname()[1]
    accepted = []

    def accept():
        try:
            accepted.append(listener.accept())
        except OSError:
            pass

    thread = threading.Thread(target=accept)
    thread.start()
    script = f"""
import socket
for host, port in (("1.1.1.1", 80), ("127.0.0.1", {port})):
    s = socket.socket()
    s.settimeout(2)
    try:
        s.connect((host, port))
        print("CONNECTED", host)
    except OSError as err:
        print("refused", host, type(err).__name__)
"""
    res = run_script(script, cfg())
    thread.join()
    listener.close()
    assert "CONNECTED" not in res.stdout and res.stdout.count("refused") == 2
    assert accepted == []


def test_writes_outside_the_run_directory_are_refused(tmp_path, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    home = Path.home()
    targets = [str(home / f"shake-evil-{uuid.uuid4().hex}"), str(data / "evil.json"), "../evil", "/tmp/../evil",
               "/usr/evil"]
    script = f"""
import os
for target in {targets!r}:
    try:
        with open(target, "w") as f:
            f.write("pwned")
        print("WROTE", target)
    except OSError as err:
        print("refused", target, type(err).__name__)
os.symlink({str(data)!r}, "link")
try:
    with open("link/evil.json", "w") as f:
        f.write("pwned")
    print("WROTE through symlink")
except OSError as err:
    print("refused symlink", type(err).__name__)
with open("fine.txt", "w") as f:
    f.write("the run directory is writable")
print("ok inside")
"""
    res = run_script(script, cfg())
    assert "WROTE" not in res.stdout and res.stdout.count("refused") == len(targets) + 1
    assert "ok inside" in res.stdout
    assert list(data.iterdir()) == [] and not any(home.glob("shake-evil-*"))


def test_secrets_on_the_host_are_not_readable(tmp_path):
    secret = tmp_path / "id_ed25519"
    secret.write_text("SECRET-KEY-MATERIAL")
    script = f"""
for path in ({str(secret)!r}, "/root/.ssh/id_rsa", "/etc/shadow", "/proc/1/environ"):
    try:
        print(open(path).read()[:40])
    except OSError as err:
        print("refused", type(err).__name__)
"""
    res = run_script(script, cfg())
    assert "SECRET-KEY-MATERIAL" not in res.stdout and res.stdout.count("refused") >= 3


def test_a_gigabyte_of_output_is_capped():
    script = "import sys\nchunk = b'x' * (1 << 20)\nfor _ in range(1024):\n    sys.stdout.buffer.write(chunk)\n"
    res = run_script(script, cfg(timeout_s=30.0, output_cap_kb=64))
    assert res.stdout_truncated and len(res.stdout) == 64 * 1024


def test_terminal_keystroke_injection_is_blocked():
    script = """
import fcntl, os, termios
results = []
try:
    fd = os.open("/dev/tty", os.O_RDWR)
    results.append("tty opened")
    fcntl.ioctl(fd, termios.TIOCSTI, b"x")
    results.append("INJECTED")
except OSError as err:
    results.append(f"tty refused {type(err).__name__}")
for fd in (0, 1, 2):
    try:
        fcntl.ioctl(fd, termios.TIOCSTI, b"x")
        results.append("INJECTED")
    except OSError as err:
        results.append(f"fd{fd} refused")
print(results)
"""
    res = run_script(script, cfg())
    assert "INJECTED" not in res.stdout and "tty refused" in res.stdout


def test_environment_is_cleared(monkeypatch):
    monkeypatch.setenv("SHAKE_TEST_SECRET", "hunter2")
    res = run_script("import os\nprint(sorted(os.environ))\nprint(os.getuid())\n", cfg())
    assert "SHAKE_TEST_SECRET" not in res.stdout and "hunter2" not in res.stdout
    assert "SHAKE_LAUNCH" not in res.stdout  # the launcher's settings are not the script's
    if os.geteuid() == 0:  # root is dropped to a uid of the run's own, from the reserved range
        uid = int(res.stdout.splitlines()[1])
        assert sandbox.UID_BASE <= uid < sandbox.UID_BASE + sandbox.UID_COUNT


def test_missing_bubblewrap_refuses_with_the_fix_and_the_opt_in(monkeypatch):
    monkeypatch.setattr(sandbox.shutil, "which", lambda name: None)
    sandbox.probe.cache_clear()
    try:
        with pytest.raises(sandbox.SandboxUnavailable, match="apt-get install bubblewrap.*sandbox = \"none\""):
            run_script("print(1)\n", cfg())
        assert run_script("print(1)\n", cfg(sandbox="none")).ok  # the explicit, documented opt-in
    finally:
        sandbox.probe.cache_clear()


def test_fresh_tmp_is_mounted_before_the_python_binds():
    """A virtual environment under /tmp (a fresh clone there) must not be hidden by the sandbox's /tmp."""
    import sys

    args = sandbox.bwrap_args(sandbox.Mounts(script_fd=3, seccomp_fd=None, block_fd=None, disk_bytes=1 << 20), {})
    tmpfs = args.index("/tmp")
    python_binds = [i for i, a in enumerate(args) if a == "--ro-bind" and args[i + 1] in (sys.prefix, sys.base_prefix)]
    assert args[tmpfs - 1] == "--tmpfs" and python_binds and all(i > tmpfs for i in python_binds)
