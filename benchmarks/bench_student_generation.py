"""Student generation (side-chain, student-first, eval, scoreboard) beside the embedded llama.cpp teacher.

The same model, SmolLM2-135M-Instruct with a rank-16 LoRA adapter on the trainer's default targets (a
run's adapter as `shake train` saves it; PEFT's initialization, B = 0, so the student answers like its
base at a trained adapter's cost per token), four ways, on the same worker prompt, greedy, with top-20
log-probabilities recorded per token as the engine asks for them:

    student        the engine's student backend (`backend = "student"`) as configured by default
                   (`serve = "auto"`): llama.cpp, the bundled Q4_1 GGUF + the adapter as a GGUF LoRA
    student auto   the same backend with `serve = "transformers"`: a KV cache, the adapter merged in
                   fp32, weights in the precision `auto` picks (bf16 on this CPU: AMX)
    student fp32   the same with `precision = "fp32"`
    embedded       llama.cpp in process (the bundled Q4_1 GGUF, the default teacher)

Interleaved rounds on a shared machine; tokens/s = generated tokens / wall time of the whole
generation (prompt included). `--quick`: a tiny random student (benchmarks/tiny_student.py) as a GGUF
with an adapter, 8 tokens, one round (seconds: the check that it still runs, tests/test_benchmarks.py;
its figures mean nothing). Prints one JSON object as its last line, with the keys of `RESULT_KEYS`:
`student_*` the default (llama.cpp) path, `student_transformers_*`, `student_fp32_*`, `student_precision`
and `student_auto_vs_fp32` the transformers path.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

MAX_TOKENS = 160
ROUNDS = 3
RESULT_KEYS = ("student_tokens_per_s", "student_serving", "student_transformers_tokens_per_s", "student_precision",
               "student_fp32_tokens_per_s", "embedded_tokens_per_s", "student_vs_embedded",
               "student_transformers_vs_embedded", "student_auto_vs_fp32", "ranges_tokens_per_s", "generated_tokens",
               "rounds")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workdir", type=Path, default=None,
                        help="keep the student's adapter here between runs (built if missing)")
    parser.add_argument("--rounds", type=int, default=None, help=f"interleaved rounds (default {ROUNDS}; --quick: 1)")
    parser.add_argument("--quick", action="store_true", help="a tiny random student, 8 tokens: checks that it runs")
    args = parser.parse_args()
    rounds = args.rounds or (1 if args.quick else ROUNDS)
    max_tokens = 8 if args.quick else MAX_TOKENS

    from bench_dorpo_vs_trl import script
    from benchmarks.tiny_student import lora_adapter, tiny_student_gguf
    from engine.agents import worker
    from engine.config import TeacherConfig
    from engine.teachers.base import SamplingParams
    from engine.teachers.embedded import EmbeddedTeacher
    from engine.teachers.student import StudentTeacher

    with tempfile.TemporaryDirectory() as scratch:
        workdir = args.workdir or Path(scratch)
        adapter = workdir / ("tiny-adapter" if args.quick else "adapter")
        if not adapter.exists():
            base = str(tiny_student_gguf(workdir / "tiny-gguf" / "tiny.gguf")) if args.quick else ""
            lora_adapter(base, adapter)
        student = str(adapter)
        teachers = {
            "student": StudentTeacher(TeacherConfig(name="s", backend="student", model=student)),
            "student_auto": StudentTeacher(TeacherConfig(name="a", backend="student", model=student,
                                                         serve="transformers")),
            "student_fp32": StudentTeacher(TeacherConfig(name="f", backend="student", model=student,
                                                         serve="transformers", precision="fp32")),
            "embedded": EmbeddedTeacher(TeacherConfig(name="e", top_logprobs=20)),
        }
        for teacher in teachers.values():
            teacher.health()
        serving = teachers["student"].serving.line()
        precision = str(teachers["student_auto"]._load()[0].dtype).replace("torch.", "")
        messages = worker.worker_messages("Add a --width argument and a header line; keep the table.", script(3))
        sampling = SamplingParams(temperature=0.0, max_tokens=max_tokens, top_logprobs=20)
        for teacher in teachers.values():  # warm-up: first-call costs are not generation speed
            teacher.generate(messages, SamplingParams(temperature=0.0, max_tokens=8, top_logprobs=20))
        speeds: dict[str, list[float]] = {name: [] for name in teachers}
        tokens: dict[str, int] = {}
        for r in range(rounds):
            names = list(teachers) if r % 2 == 0 else list(teachers)[::-1]
            for name in names:
                gen = teachers[name].generate(messages, sampling)
                speeds[name].append(len(gen.tokens) / gen.seconds)
                tokens[name] = len(gen.tokens)
    median = {name: statistics.median(v) for name, v in speeds.items()}
    print(json.dumps({
        "student_tokens_per_s": round(median["student"], 1),
        "student_serving": serving,
        "student_transformers_tokens_per_s": round(median["student_auto"], 1),
        "student_precision": precision,
        "student_fp32_tokens_per_s": round(median["student_fp32"], 1),
        "embedded_tokens_per_s": round(median["embedded"], 1),
        "student_vs_embedded": round(median["student"] / median["embedded"], 3),
        "student_transformers_vs_embedded": round(median["student_auto"] / median["embedded"], 3),
        "student_auto_vs_fp32": round(median["student_auto"] / median["student_fp32"], 3),
        "ranges_tokens_per_s": {k: [round(min(v), 1), round(max(v), 1)] for k, v in speeds.items()},
        "generated_tokens": tokens,
        "rounds": rounds,
    }))


if __name__ == "__main__":
    main()
