"""Time to append one row to the dataset when it holds 100 rows vs 10,000 rows.

Rows are realistic: a ~2 KB prompt (instruction + script), a ~2 KB rejected output, and a chosen
with a 400-token, top-20 log-probability blob; sessions hold 20 rows each. The append goes into a
session in progress, as in real use. Target: ratio under 2. `--quick` runs the same at 20 vs 200
rows with 5 appends (seconds: the check that the benchmark still runs, tests/test_benchmarks.py).
Prints one JSON object as its last line, with the keys of `RESULT_KEYS`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.logprobs import TokenLogprob, TokenLogprobs, TopLogprob  # noqa: E402
from engine.store import DatasetStore  # noqa: E402
from engine.store.schema import (ChatMessage, Chosen, LogprobRecord, LogprobSource, Prompt, Rejected,  # noqa: E402
                                 RejectedKind, Row, SessionState, SessionStatus)
from engine.teachers.base import ModelIdentity  # noqa: E402

ROWS_PER_SESSION = 20
SIZES = {"full": (100, 10_000, 40), "quick": (20, 200, 5)}  # (small, large, appends timed)
RESULT_KEYS = ("rows_small", "rows_large", "append_ms_small", "append_ms_large", "ratio", "target_ratio_max")
SCRIPT = "def f(x):\n    return x * 2\n\n" * 60
TEACHER = ModelIdentity("smollm2", "embedded", "model.gguf")


def make_row(step: int) -> Row:
    prompt = Prompt((ChatMessage("system", "You are a programmer."), ChatMessage("user", "Instruction: validate.\n" + SCRIPT)),
                    "validate", SCRIPT)
    return Row(step_index=step, step="Add input validation", cycle=1, prompt=prompt,
               rejected=Rejected(text=SCRIPT, reasoning="r", script=SCRIPT, teacher=TEACHER, cycle=1, created_at="t",
                                 kind=RejectedKind.ERROR, error="boom"))


def state(status: SessionStatus) -> SessionState:
    return SessionState(script_path="/bench.py", request="validate", original_script=SCRIPT, current_script=SCRIPT,
                        status=status)


def logprobs() -> TokenLogprobs:
    tops = [TopLogprob(i, b"tok", -1.0 - i * 0.1) for i in range(20)]
    return TokenLogprobs.from_tokens([TokenLogprob(5, b"tok", -0.5, tops) for _ in range(400)])


def fill(store: DatasetStore, n_rows: int) -> None:
    scored = logprobs()
    record = LogprobRecord(blob=store.put_logprobs(scored), n_tokens=len(scored), k=scored.k, has_ids=scored.has_ids,
                           source=LogprobSource.GENERATION, scorer=TEACHER, prompt_sha=make_row(0).prompt.sha)
    chosen = Chosen(text=SCRIPT, script=SCRIPT, reasoning="r", teacher=TEACHER, cycle=1, created_at="t", logprobs=record)
    for start in range(0, n_rows, ROWS_PER_SESSION):
        sid = store.create_session(state(SessionStatus.DONE))
        store.commit(sid, new_rows=[make_row(i % 4) for i in range(min(ROWS_PER_SESSION, n_rows - start))])
        for step in range(4):
            store.commit(sid, chosen_for_step=(step, chosen))


def append_time(n_rows: int, appends: int) -> float:
    with tempfile.TemporaryDirectory() as tmp, DatasetStore(Path(tmp)) as store:
        fill(store, n_rows)
        working = state(SessionStatus.WORKING)
        sid = store.create_session(working)
        store.commit(sid, new_rows=[make_row(0) for _ in range(5)])  # a session in progress
        times = []
        for i in range(appends):
            started = time.perf_counter()
            store.commit(sid, state=working, new_rows=[make_row(1)])
            times.append(time.perf_counter() - started)
        return statistics.median(times)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks that the benchmark runs")
    args = parser.parse_args(argv)
    n_small, n_large, appends = SIZES["quick" if args.quick else "full"]
    small = append_time(n_small, appends)
    large = append_time(n_large, appends)
    print(json.dumps({
        "rows_small": n_small,
        "rows_large": n_large,
        "append_ms_small": round(small * 1000, 3),
        "append_ms_large": round(large * 1000, 3),
        "ratio": round(large / small, 3),
        "target_ratio_max": 2.0,
    }))


if __name__ == "__main__":
    main()
