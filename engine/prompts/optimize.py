"""`shake prompts optimize`: DSPy's demonstration search, run on our own teachers.

What DSPy does (read in its source, `dspy/teleprompt/bootstrap.py` and `random_search.py`):
`BootstrapFewShot` runs the program on training examples and keeps, as demonstrations, the traces
of the runs its metric accepts (up to `max_bootstrapped_demos`), topped up with labelled examples
(`LabeledFewShot`). `BootstrapFewShotWithRandomSearch` builds candidate programs (zero-shot,
labelled demos only, the unshuffled bootstrap, then bootstraps of random size from shuffled
training sets, one per seed), scores each on a validation set and keeps the best. `MIPROv2` adds
instructions proposed by a model and a Bayesian search over (instructions, demo set) pairs scored
on minibatches. DSPy calls models through LiteLLM, which does not return our per-token
log-probabilities, so the idea is built here on our teachers instead. Left out: proposed
instructions (a 135M teacher does not write better instructions than its prompt). Kept from
MIPROv2: minibatches, i.e. every candidate is scored on the first part of the validation steps and
only the better half is scored on the rest.

Demonstration sources:
- the task suite's train split: the traces of the steps the teacher passed (bootstrapped), and the
  tasks' reference solutions as labelled worker demos (the request, the script, the reference);
- the user's dataset (`engine.store`): every accepted step's first instruction and script with the
  accepted answer (worker), and every labelled feedback line (analyzer).
Validation uses held-out steps of the same source, split by step. For the analyzer the metric is
accuracy on held-out labelled feedback with the configured scoring; for the lead and the worker,
the pass rate of `engine.prompts.trial`. The winner is saved as a prompt version per agent
(`engine.prompts.saved`) unless the zero-shot prompt wins, and `[prompts]` can pin it.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from typing import Callable

from engine.agents import analyzer
from engine.agents.call import generate, sampling_for
from engine.agents.parsing import LABELS
from engine.agents.shapes import LABEL_WORDS
from engine.config import Config
from engine.prompts import builtin
from engine.prompts.book import AgentPrompt, Demo, PromptBook
from engine.prompts.trial import StepOutcome, TrialStep, TrialTeachers, run_step, summarize
from engine.teachers.base import answer_form

Progress = Callable[[str], None]


@dataclass(frozen=True)
class OptimizeSettings:
    max_demos: int = 3  # per agent and candidate (DSPy's max_bootstrapped_demos)
    candidates: int = 4  # random candidate sets besides zero-shot, labelled-only and unshuffled
    cycles: int = 2  # per step, while bootstrapping and validating
    seed: int = 0


@dataclass
class Candidate:
    name: str
    demos: dict[str, tuple[Demo, ...]]  # agent -> demos
    score: float = 0.0
    scored_on: int = 0
    details: dict = field(default_factory=dict)


@dataclass
class SearchResult:
    best: Candidate
    candidates: list[Candidate]
    pool_sizes: dict[str, int]

    def report(self) -> dict:
        return {"best": self.best.name, "pool": self.pool_sizes,
                "candidates": [{"name": c.name, "score": round(c.score, 4), "scored_on": c.scored_on,
                                "demos": {a: len(d) for a, d in c.demos.items()}, **c.details} for c in self.candidates]}


def book_with(base: PromptBook, demos: dict[str, tuple[Demo, ...]]) -> PromptBook:
    return PromptBook({agent: base[agent].with_demos(d) for agent, d in demos.items()})


def candidate_sets(pools: dict[str, list[Demo]], labelled: dict[str, list[Demo]], settings: OptimizeSettings
                   ) -> list[Candidate]:
    """DSPy's random-search candidates: zero-shot, labelled only, unshuffled bootstrap, then seeded shuffles."""
    agents = sorted(set(pools) | set(labelled))
    out = [Candidate("zero-shot", {agent: () for agent in agents})]
    if any(labelled.values()):
        out.append(Candidate("labelled", {a: tuple(labelled.get(a, [])[: settings.max_demos]) for a in agents}))
    if any(pools.values()):
        out.append(Candidate("bootstrap", {a: tuple((pools.get(a, []) + labelled.get(a, []))[: settings.max_demos])
                                           for a in agents}))
    for seed in range(settings.candidates):
        rng = random.Random(settings.seed * 1000 + seed)
        size = rng.randint(1, settings.max_demos)
        demos = {}
        for agent in agents:
            mixed = list(pools.get(agent, [])) + list(labelled.get(agent, []))
            rng.shuffle(mixed)
            demos[agent] = tuple(mixed[:size])
        if any(demos.values()):
            out.append(Candidate(f"random-{seed}", demos))
    unique, seen = [], set()
    for candidate in out:  # two seeds can draw the same set: score it once
        key = json.dumps({a: [d.as_dict() for d in ds] for a, ds in sorted(candidate.demos.items())}, sort_keys=True)
        if key not in seen:
            seen.add(key)
            unique.append(candidate)
    return unique


def successive_halving(candidates: list[Candidate], score: Callable[[Candidate, slice], tuple[float, int, dict]],
                       n_items: int, progress: Progress) -> Candidate:
    """Score all on the first part, the better half (and zero-shot) on the rest; best total wins,
    ties to fewer demonstrations (shorter prompts)."""
    first = max(1, n_items // 2)
    for candidate in candidates:
        total, n, details = score(candidate, slice(0, first))
        candidate.score, candidate.scored_on, candidate.details = total, n, details
        progress(f"  {candidate.name}: {total:g}/{n} on the first {first}")
    if n_items > first:
        ranked = sorted(candidates, key=lambda c: -c.score / max(c.scored_on, 1))
        keep = ranked[: max(1, (len(ranked) + 1) // 2)]
        if candidates[0] not in keep:
            keep.append(candidates[0])
        for candidate in keep:
            total, n, details = score(candidate, slice(first, n_items))
            candidate.score += total
            candidate.scored_on += n
            candidate.details = {k: candidate.details.get(k, 0) + v for k, v in details.items()}
            progress(f"  {candidate.name}: {candidate.score:g}/{candidate.scored_on} on all {n_items}")
    full = [c for c in candidates if c.scored_on == max(c.scored_on for c in candidates)]
    return max(full, key=lambda c: (c.score, -sum(len(d) for d in c.demos.values())))


# -- the lead and the worker, on steps ---------------------------------------------------------
def bootstrap_steps(steps: list[TrialStep], book: PromptBook, teachers: TrialTeachers, config: Config,
                    settings: OptimizeSettings, progress: Progress) -> dict[str, list[Demo]]:
    """Run the zero-shot prompts on the training steps; the passing ones' traces become demonstrations."""
    pools: dict[str, list[Demo]] = {"lead": [], "worker": []}
    for step in steps:
        outcome = run_step(step, book, teachers, config, cycles=settings.cycles, seed=settings.seed)
        for agent, (user, fields) in outcome.traces.items():
            pools[agent].append(Demo(user, fields))
        progress(f"  bootstrap {step.id}: {'passed' if outcome.passed else 'failed'}")
    return pools


def optimize_steps(train: list[TrialStep], validation: list[TrialStep], book: PromptBook, teachers: TrialTeachers,
                   config: Config, settings: OptimizeSettings, *, labelled: dict[str, list[Demo]] | None = None,
                   progress: Progress = lambda line: None) -> SearchResult:
    progress(f"bootstrapping on {len(train)} training steps")
    pools = bootstrap_steps(train, book, teachers, config, settings, progress)
    labelled = labelled or {}
    candidates = candidate_sets(pools, labelled, settings)
    progress(f"{len(candidates)} candidate sets, scored on {len(validation)} held-out steps")

    def score(candidate: Candidate, part: slice) -> tuple[float, int, dict]:
        trial_book = book_with(book, candidate.demos)
        outcomes: list[StepOutcome] = [run_step(step, trial_book, teachers, config, cycles=settings.cycles,
                                                seed=settings.seed) for step in validation[part]]
        summary = summarize(outcomes)
        return float(summary.passed), summary.steps, {"malformed": summary.malformed, "worker_answers": summary.worker_answers}

    best = successive_halving(candidates, score, len(validation), progress)
    sizes = {agent: len(pool) for agent, pool in pools.items()} | {f"labelled_{a}": len(d) for a, d in labelled.items()}
    return SearchResult(best, candidates, sizes)


def labelled_task_demos(tasks) -> dict[str, list[Demo]]:
    """LabeledFewShot for the worker: each task's request and script, answered by its reference solution."""
    demos = []
    for task in tasks:
        fields = {"reasoning": f"The request is: {task.request.strip()} I change only what it asks.",
                  "script": task.reference}
        demos.append(Demo(builtin.worker_user(task.request, task.request, None, task.script), fields))
    return {"worker": demos}


# -- the analyzer, on labelled feedback --------------------------------------------------------
@dataclass(frozen=True)
class LabelledFeedback:
    feedback: str
    label: str  # redo | further_edit | accepted
    step: str = ""


def analyzer_demo(item: LabelledFeedback, reasoning: str) -> Demo:
    return Demo(builtin.analyzer_user(item.feedback, item.step),
                {"reasoning": reasoning, "label": LABEL_WORDS[item.label], "feedback": item.feedback})


def optimize_analyzer(train: list[LabelledFeedback], validation: list[LabelledFeedback], book: PromptBook,
                      teacher, config: Config, settings: OptimizeSettings, *,
                      progress: Progress = lambda line: None) -> SearchResult:
    """Bootstrap reasoning demonstrations from the training lines the analyzer labels right, then keep
    the set with the best accuracy on the held-out lines."""
    base = book["analyzer"]
    sampling = sampling_for(config.sampling["analyzer"], seed=settings.seed, top_logprobs=0)
    form = answer_form(teacher)
    pool: list[Demo] = []
    for item in train:
        call = book.analyzer(item.feedback, item.step)
        gen = generate(teacher, call, sampling)
        answer = analyzer.parse_classification(gen, item.feedback)
        if answer.source == "analyzer" and answer.label == item.label and answer.reasoning:
            pool.append(analyzer_demo(item, answer.reasoning))
    by_label = {label: [d for d in pool if d.fields["label"] == LABEL_WORDS[label]] for label in LABELS}
    progress(f"bootstrapped {len(pool)} analyzer demonstrations from {len(train)} lines "
             f"({', '.join(f'{k}: {len(v)}' for k, v in by_label.items())})")
    candidates = candidate_sets({"analyzer": _balanced(by_label, random.Random(settings.seed))}, {}, settings)

    def score(candidate: Candidate, part: slice) -> tuple[float, int, dict]:
        prompt: AgentPrompt = base.with_demos(candidate.demos["analyzer"])
        trial_book = PromptBook({"analyzer": prompt})
        right = unsure = 0
        for item in validation[part]:
            call = trial_book.analyzer(item.feedback, item.step)
            gen = generate(teacher, call, sampling)
            result = analyzer.classify(gen, item.feedback, teacher=teacher, call=call, settings=config.analyzer,
                                       form=form)
            right += result.label == item.label  # the label applied: an unsure line gets Further edit
            unsure += result.source in ("unsure", "default")
        return float(right), len(validation[part]), {"unsure": unsure}

    best = successive_halving(candidates, score, len(validation), progress)
    return SearchResult(best, candidates, {"analyzer": len(pool)})


def _balanced(by_label: dict[str, list[Demo]], rng: random.Random) -> list[Demo]:
    """Round-robin over the labels, so that a short prefix of the pool has every label."""
    lists = {label: rng.sample(demos, len(demos)) for label, demos in by_label.items()}
    out = []
    while any(lists.values()):
        for label in LABELS:
            if lists[label]:
                out.append(lists[label].pop())
    return out
