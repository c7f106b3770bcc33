"""The app's responsiveness: time to first paint, and key-press latency while a worker streams tokens.

First paint: a fresh `python` process starts the app (headless) and reports when the first frame
is drawn (Textual's `Ready` event); measured from spawning the process, median of 5. torch and
transformers must not be imported by then (they load only when training or scoring needs them).
The child writes its report to a file, not to stdout: the embedded teacher's health check loads the
model inside llama-cpp-python's `suppress_stdout_stderr`, which points stdout at /dev/null for the
whole process while it runs, and a report printed then was lost (the 1-in-3 failure of issue #15).

Key latency: a scripted teacher streams worker tokens into the live pane every 5 ms while keys are
typed into the feedback box; latency is from posting the key event to the app (as the terminal
driver does) until the input holds the character, plus one 60 Hz frame for it to be drawn; median
and p95 over 60 keys. (Pilot's `pause()` is not used: it waits for the app to go idle, which a
streaming worker never lets it do.)
Quit: the app runs in a pseudo-terminal (as `shake` runs) while a scripted worker streams a long
answer; ctrl+q is typed, and the time until the process has exited is measured; median of 3.

Targets: first paint under 1 s, median key latency under 50 ms, quit during generation under 1 s.
`--quick`: one first paint, one quit and 10 keys (seconds: the check that it still runs,
tests/test_benchmarks.py). Prints one JSON object last, with the keys of `RESULT_KEYS`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from textual import events

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

SIZES = {"full": {"paints": 5, "quits": 3, "keys": 60}, "quick": {"paints": 1, "quits": 1, "keys": 10}}
RESULT_KEYS = ("first_paint_s", "heavy_modules_at_first_paint", "key_latency_median_ms", "key_latency_p95_ms",
               "chars_streamed_during_keys", "quit_during_generation_s", "targets")

CHILD = r"""
import sys, time, json
from pathlib import Path
from tui.app import ShakeApp

class FirstPaint(ShakeApp):
    def on_ready(self) -> None:
        heavy = [m for m in ("torch", "transformers") if m in sys.modules]
        Path(sys.argv[1]).write_text(json.dumps({"painted": time.time(), "heavy_modules": heavy}))
        self.exit()

FirstPaint(check_ollama=False).run(headless=True, size=(120, 40))
"""


def first_paint(tmp: Path, runs: int) -> tuple[float, list[str]]:
    env = {**os.environ, "SHAKE_CONFIG": str(tmp / "none.toml"), "SHAKE_DATA": str(tmp / "data")}
    times, heavy = [], []
    report = tmp / "first-paint.json"
    for _ in range(runs):
        report.unlink(missing_ok=True)
        started = time.time()
        out = subprocess.run([sys.executable, "-c", CHILD, str(report)], env=env, capture_output=True, text=True,
                             cwd=ROOT)
        if out.returncode != 0 or not report.exists():
            raise SystemExit(f"the app did not report its first paint (exit {out.returncode}): {out.stderr[-2000:]}")
        data = json.loads(report.read_text())
        times.append(data["painted"] - started)
        heavy = data["heavy_modules"]
    return statistics.median(times), heavy


async def key_latency(tmp: Path, keys: int) -> tuple[float, float, int]:
    os.environ["SHAKE_CONFIG"] = str(tmp / "c.toml")
    os.environ["SHAKE_DATA"] = str(tmp / "data2")
    (tmp / "c.toml").write_text('[teachers.a]\nbackend = "embedded"\n')
    script = tmp / "s.py"
    script.write_text('print("hello")\n')
    from engine.config import load_config
    from engine.teachers.pool import TeacherPool
    from helpers import ScriptedTeacher, worker_answer
    from tui.app import ShakeApp

    config = load_config()
    long_answer = worker_answer('print("hello")\n' * 400)
    teacher = ScriptedTeacher("a", {"worker": [long_answer]}, delay_s=0.005)
    app = ShakeApp(script, "repeat it", config=config, pool=TeacherPool(config, extra={"a": teacher}), check_ollama=False)
    latencies = []
    async with app.run_test(size=(120, 40)) as pilot:
        while not any(agent == "worker" for agent, _ in teacher.calls):
            await pilot.pause(0.01)
        box = app.session_screen.query_one("#feedback-input")
        box.focus()
        tokens_before = len(app.session_screen.query_one("#live").text)
        for i in range(keys):
            char = "abcdefghij"[i % 10]
            before = box.value
            started = time.perf_counter()
            app.post_message(events.Key(char, char))  # what the terminal driver does for a keystroke
            deadline = started + 5.0
            while box.value == before:
                if time.perf_counter() > deadline:
                    raise SystemExit(f"key {i} never reached the input")
                await asyncio.sleep(0.0005)
            await asyncio.sleep(1 / 60)  # the frame that shows it: Textual refreshes at up to 60 Hz
            latencies.append(time.perf_counter() - started)
        streamed = len(app.session_screen.query_one("#live").text) - tokens_before
        app.session_screen.cancel_event.set()
    latencies.sort()
    return statistics.median(latencies), latencies[max(0, int(len(latencies) * 0.95) - 1)], streamed


def quit_during_generation(tmp: Path, runs: int) -> float:
    from test_app_terminal import Terminal, streaming_app

    (tmp / "q.toml").write_text('[teachers.a]\nbackend = "embedded"\n[teachers.b]\nbackend = "embedded"\n'
                                '[agents]\nplanner = ["a"]\nlead = ["a"]\nworker = ["a", "b"]\nanalyzer = ["a"]\n')
    script = tmp / "q.py"
    script.write_text('print("hello")\n')
    env = {**os.environ, "TERM": "xterm-256color", "SHAKE_CONFIG": str(tmp / "q.toml")}
    times = []
    for i in range(runs):
        env["SHAKE_DATA"] = str(tmp / f"quit-data-{i}")
        streamed = tmp / f"streamed-to-the-end-{i}"  # the teacher writes it if its answer ran to the end
        term = Terminal(streaming_app(script, streamed), env)
        try:
            if not term.wait_for(b"worker:", timeout=60):
                raise SystemExit("quit benchmark: the worker never streamed")
            term.read_for(0.5)
            started = time.monotonic()
            term.type(b"\x11")
            if not term.exited_within(30):
                raise SystemExit("quit benchmark: the app did not exit within 30 s")
            times.append(time.monotonic() - started)
        finally:
            term.close()
        if streamed.exists():
            raise SystemExit("quit benchmark: the app waited for the worker's answer to end")
    return statistics.median(times)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one run of each: checks that the benchmark runs")
    size = SIZES["quick" if parser.parse_args(argv).quick else "full"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        paint, heavy = first_paint(tmp, size["paints"])
        quit_s = quit_during_generation(tmp, size["quits"])
        median, p95, streamed = asyncio.run(key_latency(tmp, size["keys"]))
    assert streamed > 0, "tokens must have streamed while the keys were typed"
    print(json.dumps({
        "first_paint_s": round(paint, 3),
        "heavy_modules_at_first_paint": heavy,
        "key_latency_median_ms": round(median * 1000, 1),
        "key_latency_p95_ms": round(p95 * 1000, 1),
        "chars_streamed_during_keys": streamed,
        "quit_during_generation_s": round(quit_s, 3),
        "targets": {"first_paint_s_max": 1.0, "key_latency_median_ms_max": 50, "quit_during_generation_s_max": 1.0},
    }))


if __name__ == "__main__":
    main()
