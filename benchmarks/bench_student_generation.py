"""Student generation (side-chain, student-first, eval) beside the embedded llama.cpp teacher.

The same model, SmolLM2-135M-Instruct, three ways, on the same worker prompt, greedy, with top-20
log-probabilities recorded per token as the engine asks for them:

    student auto   the engine's student backend (`backend = "student"`), transformers with a KV cache,
                   weights in the precision `auto` picks (bf16 on this CPU: AMX)
    student fp32   the same backend with `precision = "fp32"`
    embedded       llama.cpp in process (the bundled Q4_1 GGUF, the default teacher)

The student loads a merged Hugging Face directory (a trained run's adapter is merged into it in fp32
at load time, so a run and its merge generate at the same speed). Interleaved rounds on a shared
machine; tokens/s = generated tokens / wall time of the whole generation (prompt included).
Prints one JSON object as its last line.
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workdir", type=Path, default=None,
                        help="reuse the converted student of bench_dorpo_vs_trl.py --workdir (built if missing)")
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    args = parser.parse_args()

    from bench_dorpo_vs_trl import export_student, script
    from engine.agents import worker
    from engine.config import TeacherConfig
    from engine.teachers.base import SamplingParams
    from engine.teachers.embedded import EmbeddedTeacher
    from engine.teachers.student import StudentTeacher

    with tempfile.TemporaryDirectory() as scratch:
        workdir = args.workdir or Path(scratch)
        if not (workdir / "student").exists():
            export_student(workdir / "student")
        teachers = {
            "student_auto": StudentTeacher(TeacherConfig(name="s", backend="student", model=str(workdir / "student"))),
            "student_fp32": StudentTeacher(TeacherConfig(name="f", backend="student", model=str(workdir / "student"),
                                                         precision="fp32")),
            "embedded": EmbeddedTeacher(TeacherConfig(name="e", top_logprobs=20)),
        }
        for teacher in teachers.values():
            teacher.health()
        precision = str(teachers["student_auto"]._load()[0].dtype).replace("torch.", "")
        messages = worker.worker_messages("Add a --width argument and a header line; keep the table.", script(3))
        sampling = SamplingParams(temperature=0.0, max_tokens=MAX_TOKENS, top_logprobs=20)
        for teacher in teachers.values():  # warm-up: first-call costs are not generation speed
            teacher.generate(messages, SamplingParams(temperature=0.0, max_tokens=8, top_logprobs=20))
        speeds: dict[str, list[float]] = {name: [] for name in teachers}
        tokens: dict[str, int] = {}
        for r in range(args.rounds):
            names = list(teachers) if r % 2 == 0 else list(teachers)[::-1]
            for name in names:
                gen = teachers[name].generate(messages, sampling)
                speeds[name].append(len(gen.tokens) / gen.seconds)
                tokens[name] = len(gen.tokens)
    median = {name: statistics.median(v) for name, v in speeds.items()}
    print(json.dumps({
        "student_tokens_per_s": round(median["student_auto"], 1),
        "student_precision": precision,
        "student_fp32_tokens_per_s": round(median["student_fp32"], 1),
        "embedded_tokens_per_s": round(median["embedded"], 1),
        "student_vs_embedded": round(median["student_auto"] / median["embedded"], 3),
        "student_auto_vs_fp32": round(median["student_auto"] / median["student_fp32"], 3),
        "ranges_tokens_per_s": {k: [round(min(v), 1), round(max(v), 1)] for k, v in speeds.items()},
        "generated_tokens": tokens,
        "rounds": args.rounds,
    }))


if __name__ == "__main__":
    main()
