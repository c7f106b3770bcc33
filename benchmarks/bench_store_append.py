"""Time to append one row to the dataset when it holds 100 rows vs 10,000 rows.

Rows are realistic: a ~2 KB prompt (instruction + script), a ~2 KB rejected output, and a chosen
with a 400-token, top-20 log-probability blob; sessions hold 20 rows each. The append goes into a
session in progress, as in real use. Target: ratio under 2. Prints one JSON object as its last line.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.logprobs import TokenLogprob, TokenLogprobs, TopLogprob  # noqa: E402
from engine.store import DatasetStore  # noqa: E402

ROWS_PER_SESSION = 20
APPENDS = 40
SCRIPT = "def f(x):\n    return x * 2\n\n" * 60


def make_row(step: int) -> dict:
    return {
        "step_index": step,
        "step": "Add input validation",
        "cycle": 1,
        "prompt": {"messages": [{"role": "system", "content": "You are a programmer."},
                                {"role": "user", "content": "Instruction: validate.\n" + SCRIPT}],
                   "instruction": "validate", "script": SCRIPT},
        "rejected": {"kind": "error", "text": SCRIPT, "reasoning": "r", "script": SCRIPT, "error": "boom"},
        "chosen": None,
    }


def logprobs() -> TokenLogprobs:
    tops = [TopLogprob(i, b"tok", -1.0 - i * 0.1) for i in range(20)]
    return TokenLogprobs.from_tokens([TokenLogprob(5, b"tok", -0.5, tops) for _ in range(400)])


def fill(store: DatasetStore, n_rows: int) -> None:
    blob = store.put_logprobs(logprobs())
    chosen = {"text": SCRIPT, "script": SCRIPT, "reasoning": "r", "logprobs": {"blob": blob}}
    for start in range(0, n_rows, ROWS_PER_SESSION):
        sid = store.create_session({"status": "done"})
        store.commit(sid, new_rows=[make_row(i % 4) for i in range(min(ROWS_PER_SESSION, n_rows - start))])
        for step in range(4):
            store.commit(sid, chosen_for_step=(step, chosen))


def append_time(n_rows: int) -> float:
    with tempfile.TemporaryDirectory() as tmp, DatasetStore(Path(tmp)) as store:
        fill(store, n_rows)
        sid = store.create_session({"status": "working"})
        store.commit(sid, new_rows=[make_row(0) for _ in range(5)])  # a session in progress
        times = []
        for i in range(APPENDS):
            started = time.perf_counter()
            store.commit(sid, state={"status": "working", "i": i}, new_rows=[make_row(1)])
            times.append(time.perf_counter() - started)
        return statistics.median(times)


def main() -> None:
    small = append_time(100)
    large = append_time(10_000)
    print(json.dumps({
        "append_ms_at_100_rows": round(small * 1000, 3),
        "append_ms_at_10000_rows": round(large * 1000, 3),
        "ratio": round(large / small, 3),
        "target_ratio_max": 2.0,
    }))


if __name__ == "__main__":
    main()
