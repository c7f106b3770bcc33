"""The experiment's sizes: the full profile, the proof profile (issue #22), the medium one and --quick.

A variant is a loss, a soft-label source and a data rule, spelled in its name:
`sft`, `orpo`, `kd`, `dorpo_<λ>` (the loss); `@context` (KD and DORPO: the soft labels of the cycle that
produced each chosen, `shake train --soft-labels context`, instead of the re-scoring under the row's
prompt); `+ref` (also the steps where no candidate passed and the reviewer wrote the task's reference as
the user's own fix; without it, `--model-chosen-only`: the teachers' answers alone, so that SFT on
references is never mistaken for distillation).

The full profile is every variant of issue #22 with 3 seeds on all 68 held-out tasks and 3 rounds of
verified best-of-N collection over the 100 train tasks: on this 2-core CPU that is days, not hours. The
proof profile is the same pipeline at the size one session affords (1 seed, the variants that answer
the issue's questions, 3 rounds); its figures say which, and README quotes them with their intervals.
With `--eval-helper` in a second process the evaluations use both cores.

The medium profile answers only "did my student get better?": the base student against the product's
default (DORPO, λ = 0.1) on 50 held-out tasks with 3 seeds, one round.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

LOSSES = ("sft", "orpo", "kd", "dorpo_0.05", "dorpo_0.1", "dorpo_0.5")
CONTEXT = "@context"  # soft labels of the cycle that produced the chosen (context distillation)
REFERENCES = "+ref"  # the reviewer's reference fixes join as user-written chosen
DEFAULT_STUDENT = "dorpo_0.1"  # the product's defaults (KD + λ = 0.1): the student that collects in later rounds
# issue #22's variants: every loss, each KD source, with and without the reference fixes
VARIANTS = tuple(f"{loss}{source}{refs}" for loss in LOSSES
                 for source in (("", CONTEXT) if loss == "kd" or loss.startswith("dorpo_") else ("",))
                 for refs in ("", REFERENCES))


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
    student: str = ""  # the base student, a `shake train --student` spec ("": the bundled SmolLM2-135M GGUF)
    teacher_candidates: int = 0  # the worker's candidates per cycle while collecting (0: the product's default)
    fit_tasks: int = 0  # train tasks of round 0 on which the base and each round's collecting student are evaluated
    raw_greedy: bool = False  # also measure the raw teacher's greedy pass@1 on each round's train tasks

    def __post_init__(self) -> None:
        # the round's default student (seed `seeds[0]`) collects the next round and measures cycles
        if self.round_seeds and (self.round_seeds[0] != self.seeds[0] or not set(self.round_seeds) <= set(self.seeds)):
            raise ValueError(f"round_seeds {self.round_seeds} must be seeds of {self.seeds} starting with {self.seeds[0]}")

    @property
    def collector(self) -> str:
        """The variant whose seed-0 student collects the next round (the first round variant)."""
        return self.round_variants[0]

    def seeds_of_round(self, k: int) -> tuple[int, ...]:
        """Round 0 compares the variants on every seed; later rounds may follow fewer (time)."""
        return self.seeds if k == 0 or not self.round_seeds else self.round_seeds

    def as_dict(self) -> dict:
        return asdict(self)


FULL = Profile(
    name="full", train_tasks_per_round=33, held_out=0, seeds=(0, 1, 2), rounds=3, variants=VARIANTS,
    round_variants=(DEFAULT_STUDENT, "sft"), max_reviews=1, train_steps=0, batch_size=2, lr=5e-4, lora_r=16,
    max_length=1024, eval_max_tokens=192, cycles_tasks=4, cycles_variants=(DEFAULT_STUDENT,), match_tasks=2,
    match_tokens=48, user_fix=True, eval_quant="q8_0", teacher_candidates=4, fit_tasks=33, raw_greedy=True,
)
PROOF = Profile(
    name="proof", train_tasks_per_round=24, held_out=0, seeds=(0,), rounds=3,
    variants=("sft", "kd", "kd@context", DEFAULT_STUDENT, f"{DEFAULT_STUDENT}@context", "sft+ref",
              f"{DEFAULT_STUDENT}+ref"),
    round_variants=(DEFAULT_STUDENT,), max_reviews=1, train_steps=0, batch_size=2, lr=5e-4, lora_r=16,
    max_length=1024, eval_max_tokens=192, cycles_tasks=0, cycles_variants=(), match_tasks=0, match_tokens=0,
    user_fix=True, eval_quant="q8_0", teacher_candidates=4, fit_tasks=24, raw_greedy=True,
)
QUICK = Profile(
    name="quick", train_tasks_per_round=3, held_out=3, seeds=(0,), rounds=2,
    variants=("sft+ref", "orpo+ref", "kd+ref", "kd@context+ref", f"{DEFAULT_STUDENT}+ref", "sft"),
    round_variants=(f"{DEFAULT_STUDENT}+ref",), max_reviews=2, train_steps=1, batch_size=2, lr=3e-4, lora_r=8,
    max_length=768, eval_max_tokens=96, cycles_tasks=1, cycles_variants=(f"{DEFAULT_STUDENT}+ref",), match_tasks=1,
    match_tokens=8, first_templates=("off_by_one", "wrong_operator"), user_fix=True,
    teacher_candidates=1,  # the pipeline's check: one candidate a cycle keeps the collection as short as it was
    fit_tasks=2, raw_greedy=True,
)
MEDIUM = Profile(
    name="medium", train_tasks_per_round=6, held_out=50, seeds=(0, 1, 2), rounds=1, variants=(f"{DEFAULT_STUDENT}+ref",),
    round_variants=(f"{DEFAULT_STUDENT}+ref",), max_reviews=1, train_steps=8, batch_size=2, lr=5e-4, lora_r=16,
    max_length=1024, eval_max_tokens=192, cycles_tasks=0, cycles_variants=(), match_tasks=0, match_tokens=0,
    user_fix=True, eval_quant="q8_0",
)
PROFILES = {"full": FULL, "proof": PROOF, "medium": MEDIUM, "quick": QUICK}


def parse_variant(variant: str) -> tuple[str, bool, bool]:
    """(loss, context soft labels, reference fixes included) of a variant's name; ValueError if unknown."""
    name, refs = (variant[: -len(REFERENCES)], True) if variant.endswith(REFERENCES) else (variant, False)
    loss, context = (name[: -len(CONTEXT)], True) if name.endswith(CONTEXT) else (name, False)
    known = loss in LOSSES or (loss.startswith("dorpo_") and _is_number(loss.removeprefix("dorpo_")))
    if not known or (context and loss in ("sft", "orpo")):
        raise ValueError(f"unknown variant {variant!r}; a variant is one of {', '.join(LOSSES)} (or dorpo_<λ>), "
                         f"then {CONTEXT} for KD and DORPO, then {REFERENCES}")
    return loss, context, refs


def _is_number(text: str) -> bool:
    try:
        return float(text) >= 0
    except ValueError:
        return False


def variant_settings(variant: str) -> dict:
    """TrainConfig fields of a variant. SFT: NLL on chosen. ORPO: TRL's loss (NLL + β·OR, β = 0.1),
    which is ours without log-probabilities. KD: the distillation term alone (λ = 0). DORPO: both."""
    loss, context, refs = parse_variant(variant)
    if loss == "sft":
        out = {"no_kd": True, "lam": 0.0}
    elif loss == "orpo":
        out = {"no_kd": True, "lam": 0.1}
    elif loss == "kd":
        out = {"no_kd": False, "lam": 0.0}
    else:
        out = {"no_kd": False, "lam": float(loss.removeprefix("dorpo_"))}
    return {**out, "soft_labels": "context" if context else "prompt", "model_chosen_only": not refs}


def soft_label_source(variant: str) -> str:
    """What a variant distils: "none" (hard labels), "prompt" (re-scored under the row's prompt) or "context"."""
    loss, context, _ = parse_variant(variant)
    return "none" if loss in ("sft", "orpo") else "context" if context else "prompt"


def with_overrides(profile: Profile, **values) -> Profile:
    return replace(profile, **{k: v for k, v in values.items() if v is not None})
