"""Embedded generation with top-k log-probabilities vs without: same prompt, same tokens.

Target: capture costs at most 1.15x the time without. For reference it also times llama-cpp-python's
own logprobs path (`logits_all=True` + `create_chat_completion(logprobs=True)`), which this backend
avoids. Prints one JSON object as its last line.
"""

from __future__ import annotations

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

REPEATS = 5
MESSAGES = worker.worker_messages(
    "Rewrite the script so that it prints the numbers 1 to 100 with a for loop, adds a docstring and a main() function.",
    'print("hello")\n',
)


def median_time(fn) -> tuple[float, object]:
    times, result = [], None
    for _ in range(REPEATS):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def main() -> None:
    top = default_of(TeacherConfig, "top_logprobs")
    teacher = EmbeddedTeacher(TeacherConfig(name="smollm2", top_logprobs=top))
    sampling = SamplingParams(temperature=0.0, max_tokens=256, top_logprobs=top)
    teacher.generate(MESSAGES, sampling)  # warm-up
    t_with, gen_with = median_time(lambda: teacher.generate(MESSAGES, sampling, capture_logprobs=True))
    t_without, gen_without = median_time(lambda: teacher.generate(MESSAGES, sampling, capture_logprobs=False))
    assert gen_with.text == gen_without.text, "capture must not change the tokens"
    n_tokens = len(gen_with.tokens)

    from llama_cpp import Llama

    llm = Llama(model_path=str(default_gguf_path()), n_ctx=2048, logits_all=True, verbose=False)
    run = lambda: llm.create_chat_completion(MESSAGES, temperature=0.0, max_tokens=256, logprobs=True, top_logprobs=top)  # noqa: E731
    run()
    t_builtin, reply = median_time(run)
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
