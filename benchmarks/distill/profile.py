"""The experiment's sizes: the full profile and --quick.

The full profile is sized for about 90 minutes on an idle 2-core CPU, estimated from per-item costs
(SmolLM2 at ~95 tok/s as Q4_1 and ~55 tok/s as the F32 student GGUF, ~190 training tok/s): 19
student evaluations of 50 tasks dominate. It was not timed end to end on an idle machine.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

VARIANTS = ("sft", "orpo", "kd", "dorpo_0.05", "dorpo_0.1", "dorpo_0.5")
DEFAULT_STUDENT = "dorpo_0.1"  # the product's defaults (KD + λ = 0.1): the student that collects in later rounds


@dataclass(frozen=True)
class Profile:
    name: str
    train_tasks_per_round: int  # each round collects on its own slice of the train tasks
    held_out: int  # held-out tasks evaluated (0: all)
    seeds: tuple[int, ...]
    rounds: int
    variants: tuple[str, ...]  # trained on round 0's data
    round_variants: tuple[str, ...]  # continued through the later rounds
    max_reviews: int  # reviewer answers per task before it gives up
    train_steps: int  # optimizer steps per run (batch_size rows each)
    batch_size: int
    lr: float
    lora_r: int
    max_length: int
    eval_max_tokens: int
    cycles_tasks: int  # held-out tasks for "cycles to accept" (student as the worker, in sessions)
    cycles_variants: tuple[str, ...]  # round-0 students (seed 0) measured that way; later rounds: round_variants
    match_tasks: int  # held-out tasks on which GGUF and transformers answers are compared
    match_tokens: int
    first_templates: tuple[str, ...] = ()  # train templates collected first (--quick: one the teacher can solve)

    def as_dict(self) -> dict:
        return asdict(self)


FULL = Profile(
    name="full", train_tasks_per_round=16, held_out=50, seeds=(0, 1, 2), rounds=3, variants=VARIANTS,
    round_variants=(DEFAULT_STUDENT,), max_reviews=3, train_steps=8, batch_size=2, lr=5e-4, lora_r=16,
    max_length=1024, eval_max_tokens=320, cycles_tasks=6, cycles_variants=VARIANTS, match_tasks=2, match_tokens=48,
)
QUICK = Profile(
    name="quick", train_tasks_per_round=3, held_out=3, seeds=(0,), rounds=2, variants=VARIANTS,
    round_variants=(DEFAULT_STUDENT,), max_reviews=2, train_steps=1, batch_size=2, lr=3e-4, lora_r=8,
    max_length=768, eval_max_tokens=96, cycles_tasks=1, cycles_variants=(DEFAULT_STUDENT,), match_tasks=1,
    match_tokens=8, first_templates=("off_by_one", "wrong_operator"),
)
PROFILES = {"full": FULL, "quick": QUICK}


def variant_settings(variant: str) -> dict:
    """TrainConfig fields of a variant. SFT: NLL on chosen. ORPO: TRL's loss (NLL + β·OR, β = 0.1),
    which is ours without log-probabilities. KD: the distillation term alone (λ = 0). DORPO: both."""
    if variant == "sft":
        return {"no_kd": True, "lam": 0.0}
    if variant == "orpo":
        return {"no_kd": True, "lam": 0.1}
    if variant == "kd":
        return {"no_kd": False, "lam": 0.0}
    if variant.startswith("dorpo_"):
        return {"no_kd": False, "lam": float(variant.removeprefix("dorpo_"))}
    raise ValueError(f"unknown variant {variant!r}; the variants are {', '.join(VARIANTS)}")


def with_overrides(profile: Profile, **values) -> Profile:
    return replace(profile, **{k: v for k, v in values.items() if v is not None})
