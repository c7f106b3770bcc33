"""The experiment's sizes: the full profile, the medium one and --quick.

The full profile is what fits the 2-core CPU: the six variants × 3 seeds on round 0's rows and the
base, each evaluated on 50 held-out tasks (19 evaluations of the Q8_0 quantization of each export,
~2x faster than F32 here, dominate), then two more rounds of the default student on seed 0 only
(`round_seeds`), cycles to accept on 4 held-out tasks for the base and the default student (first
and last round), and the GGUF-vs-transformers check on 2 tasks. Its reviewer fixes the script
itself (`user_fix`), because the embedded SmolLM2 teacher solves ~2% of the tasks and would leave
almost nothing to train on; one review per task (`max_reviews=1`) keeps collection at ~2 min a task.
With `--eval-helper` in a second process the evaluations use both cores.

The medium profile answers only "did my student get better?": the base student against the product's
default (DORPO, λ = 0.1) on 50 held-out tasks with 3 seeds, one round; round 0 of the full profile
has the same sizes, so a full run can start from a medium run's work directory.
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
    user_fix: bool = False  # the reviewer accepts the reference as the user's own edit when its last review fails
    eval_quant: str = ""  # "" evaluates the F32 export; "q8_0": its llama.cpp Q8_0 quantization (base alike)
    round_seeds: tuple[int, ...] = ()  # seeds trained in rounds after the first (empty: all of `seeds`)

    def __post_init__(self) -> None:
        # the round's default student (seed `seeds[0]`) collects the next round and measures cycles
        if self.round_seeds and (self.round_seeds[0] != self.seeds[0] or not set(self.round_seeds) <= set(self.seeds)):
            raise ValueError(f"round_seeds {self.round_seeds} must be seeds of {self.seeds} starting with {self.seeds[0]}")

    def seeds_of_round(self, k: int) -> tuple[int, ...]:
        """Round 0 compares the variants on every seed; later rounds may follow fewer (time)."""
        return self.seeds if k == 0 or not self.round_seeds else self.round_seeds

    def as_dict(self) -> dict:
        return asdict(self)


FULL = Profile(
    name="full", train_tasks_per_round=6, held_out=50, seeds=(0, 1, 2), rounds=3, variants=VARIANTS,
    round_variants=(DEFAULT_STUDENT,), max_reviews=1, train_steps=8, batch_size=2, lr=5e-4, lora_r=16,
    max_length=1024, eval_max_tokens=192, cycles_tasks=4, cycles_variants=(DEFAULT_STUDENT,), match_tasks=2,
    match_tokens=48, user_fix=True, eval_quant="q8_0", round_seeds=(0,),
)
QUICK = Profile(
    name="quick", train_tasks_per_round=3, held_out=3, seeds=(0,), rounds=2, variants=VARIANTS,
    round_variants=(DEFAULT_STUDENT,), max_reviews=2, train_steps=1, batch_size=2, lr=3e-4, lora_r=8,
    max_length=768, eval_max_tokens=96, cycles_tasks=1, cycles_variants=(DEFAULT_STUDENT,), match_tasks=1,
    match_tokens=8, first_templates=("off_by_one", "wrong_operator"),
)
MEDIUM = Profile(
    name="medium", train_tasks_per_round=6, held_out=50, seeds=(0, 1, 2), rounds=1, variants=(DEFAULT_STUDENT,),
    round_variants=(DEFAULT_STUDENT,), max_reviews=1, train_steps=8, batch_size=2, lr=5e-4, lora_r=16,
    max_length=1024, eval_max_tokens=192, cycles_tasks=0, cycles_variants=(), match_tasks=0, match_tokens=0,
    user_fix=True, eval_quant="q8_0",
)
PROFILES = {"full": FULL, "medium": MEDIUM, "quick": QUICK}


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
