"""Embedded generation with top-k log-probabilities vs without: same prompt, same tokens.

Target: capture costs at most 1.15x the time without. For reference it also times llama-cpp-python's
own logprobs path (`logits_all=True` + `create_chat_completion(logprobs=True)`), which this backend
avoids. `--quick`: one timing of 16 tokens each (seconds: the check that it still runs,
tests/test_benchmarks.py). Prints one JSON object as its last line, with the keys of `RESULT_KEYS`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.agents import worker  # noqa: E402
from engine.config import TeacherConfig, default_of  # noqa: E402
from engine.teachers.base import SamplingParams  # noqa: E402
from engine.teachers.embedded import EmbeddedTeacher, default_gguf_path  # noqa: E402

PROFILES = {"full": (5, 256), "quick": (1, 16)}  # (timings per path, tokens per answer)
RESULT_KEYS = ("tokens", "seconds_with_logprobs", "seconds_without_logprobs", "capture_ratio",
               "tokens_per_s_with_logprobs", "llama_cpp_logits_all_tokens_per_s", "target_capture_ratio_max")
MESSAGES = worker.worker_messages(
    "Rewrite the script so that it prints the numbers 1 to 100 with a for loop, adds a docstring and a main() function.",
    'print("hello")\n',
)


def median_time(fn, repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one short timing: checks that the benchmark runs")
    repeats, max_tokens = PROFILES["quick" if parser.parse_args(argv).quick else "full"]
    top = default_of(TeacherConfig, "top_logprobs")
    teacher = EmbeddedTeacher(TeacherConfig(name="smollm2", top_logprobs=top))
    sampling = SamplingParams(temperature=0.0, max_tokens=max_tokens, top_logprobs=top)
    teacher.generate(MESSAGES, sampling)  # warm-up
    t_with, gen_with = median_time(lambda: teacher.generate(MESSAGES, sampling, capture_logprobs=True), repeats)
    t_without, gen_without = median_time(lambda: teacher.generate(MESSAGES, sampling, capture_logprobs=False), repeats)
    assert gen_with.text == gen_without.text, "capture must not change the tokens"
    n_tokens = len(gen_with.tokens)

    from llama_cpp import Llama

    llm = Llama(model_path=str(default_gguf_path()), n_ctx=2048, logits_all=True, verbose=False)
    run = lambda: llm.create_chat_completion(MESSAGES, temperature=0.0, max_tokens=max_tokens, logprobs=True,  # noqa: E731
                                             top_logprobs=top)
    run()
    t_builtin, reply = median_time(run, repeats)
    builtin_tokens = reply["usage"]["completion_tokens"]
    result = {
        "tokens": n_tokens,
        "seconds_with_logprobs": round(t_with, 4),
        "seconds_without_logprobs": round(t_without, 4),
        "capture_ratio": round(t_with / t_without, 3),
        "tokens_per_s_with_logprobs": round(n_tokens / t_with, 1),
        "llama_cpp_logits_all_tokens_per_s": round(builtin_tokens / t_builtin, 1),
        "target_capture_ratio_max": 1.15,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
