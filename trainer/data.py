"""From a frozen dataset snapshot to token batches.

Each row becomes an `Example`: the student's chat-templated prompt, the chosen response (+ EOS),
the rejected response (+ EOS) when the row has one, and the teacher's soft labels aligned to the
chosen tokens. `collate` packs a list of examples into one batch in which chosen and rejected
sequences go through the model together (ORPO's concatenated forward pass), and records, for every
response token, where its hidden state sits and which row it belongs to.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field

import numpy as np
import torch

from engine.store import Snapshot
from engine.store.schema import Row
from engine.teachers.base import ModelIdentity
from trainer.align import AlignedKD, StudentVocab, align
from trainer.config import TrainConfig
from trainer.errors import TrainError


@dataclass
class Example:
    row_id: str
    step_key: str  # "<session>:<step index>": the rows of one step share their prompt and chosen
    prompt_ids: list[int]
    chosen_ids: list[int]
    rejected_ids: list[int] | None
    kd: AlignedKD | None  # one entry per chosen token except the final EOS


@dataclass
class DataReport:
    rows: int = 0
    skipped_too_long: int = 0
    longest_skipped: int = 0
    with_logprobs: int = 0
    other_prompt: int = 0  # rows whose soft labels were computed under another prompt (NLL unless --kd-other-prompt)
    aligned_tokens: int = 0
    chosen_tokens_with_logprobs: int = 0
    modes: dict[str, int] = field(default_factory=dict)

    @property
    def aligned_share(self) -> float:
        return self.aligned_tokens / self.chosen_tokens_with_logprobs if self.chosen_tokens_with_logprobs else 0.0


def prompt_ids(tokenizer, messages: list[dict]) -> list[int]:
    out = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True)
    return list(out["input_ids"])


def response_ids(tokenizer, text: str) -> list[int]:
    return tokenizer.encode(text, add_special_tokens=False)


def build_examples(snapshot: Snapshot, tokenizer, cfg: TrainConfig) -> tuple[list[Example], DataReport]:
    if not snapshot.rows:
        raise TrainError(
            "the dataset has no complete rows (rows with an accepted `chosen`); run and accept a session first"
        )
    vocab = StudentVocab(tokenizer)
    eos = tokenizer.eos_token_id
    report = DataReport()
    examples: list[Example] = []
    for row in snapshot.rows:
        report.rows += 1
        p_ids = prompt_ids(tokenizer, row.prompt.chat())
        c_ids = response_ids(tokenizer, row.chosen.text)
        # With λ = 0 a rejected answer adds nothing to the gradient: leave it out of the forward pass.
        r_ids = response_ids(tokenizer, row.rejected.text) + [eos] if row.rejected and cfg.lam > 0 else None
        longest = len(p_ids) + max(len(c_ids) + 1, len(r_ids or []))
        if longest > cfg.max_length:
            report.skipped_too_long += 1
            report.longest_skipped = max(report.longest_skipped, longest)
            continue
        kd = None
        teacher = None if cfg.no_kd else snapshot.logprobs(row)
        if teacher is not None and not row.soft_labels_match_prompt:
            report.other_prompt += 1
            if not cfg.kd_other_prompt:
                teacher = None
        if teacher is not None and len(teacher):
            kd = align(teacher, c_ids, vocab)
            report.with_logprobs += 1
            report.aligned_tokens += int(kd.mask.sum())
            report.chosen_tokens_with_logprobs += len(c_ids)
            report.modes[kd.mode] = report.modes.get(kd.mode, 0) + 1
        examples.append(Example(row.row_id, step_key(row), p_ids, c_ids + [eos], r_ids, kd))
    if not examples:
        raise TrainError(
            f"all {report.rows} rows are longer than --max-length {cfg.max_length} "
            f"(the longest is {report.longest_skipped} tokens); raise --max-length"
        )
    if report.with_logprobs and report.aligned_tokens == 0:
        raise TrainError(
            "the teacher's log-probabilities could not be mapped onto the student's vocabulary for any row "
            "(no token matched by id or by bytes); use a student that shares the teacher's tokenizer, "
            "or train on hard labels with --no-kd"
        )
    return examples, report


def step_key(row: Row) -> str:
    """The step a row belongs to. Every row of a step (its worker rows and the planner's, lead's and
    analyzer's side-chain rows) lands on the same side of the split."""
    return f"{row.session_id}:{row.step_index}"


def split(examples: list[Example], eval_fraction: float, seed: int = 0) -> tuple[list[Example], list[Example]]:
    """Hold out whole steps, never single rows: the rows of one step share their prompt and chosen, so
    a split by row would measure held-out loss on text the student trained on.

    A step is held out when its seeded hash falls below `eval_fraction`: stable whatever the row order
    and whatever other steps exist. Two corrections for small datasets: with `eval_fraction > 0` and at
    least two steps, at least one step is held out (the one with the lowest hash) and at least one is
    trained on (the highest).
    """
    def bucket(key: str) -> float:
        return int(hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF

    keys = sorted({ex.step_key for ex in examples}, key=bucket)
    held_keys = {k for k in keys if bucket(k) < eval_fraction}
    if eval_fraction > 0 and len(keys) >= 2:
        held_keys.add(keys[0])
        held_keys.discard(keys[-1])
    held = [ex for ex in examples if ex.step_key in held_keys]
    train = [ex for ex in examples if ex.step_key not in held_keys]
    if not train:
        train, held = examples, []
    return train, held


@dataclass(frozen=True)
class HeldOutStep:
    """One held-out worker step: the prompt its rows share and the script the user accepted."""

    step_key: str
    messages: list[dict]  # the worker's first-cycle prompt
    instruction: str
    start_script: str  # the script the prompt showed
    chosen_text: str
    chosen_script: str
    chosen_teacher: ModelIdentity | None  # who wrote the accepted output (None: the user's own edit)
    rows: int  # worker rows of the step in the held-out set


def held_out_steps(rows: list[Row], held: list[Example]) -> list[HeldOutStep]:
    """The worker steps among the held-out examples, one per step (a step has a row per rejected
    answer, all with the same prompt and chosen). Planner, lead and analyzer rows are not steps a
    script can be generated for, so they are left out."""
    by_id = {row.row_id: row for row in rows}
    steps: dict[str, HeldOutStep] = {}
    counts: dict[str, int] = {}
    for ex in held:
        row = by_id[ex.row_id]
        if not row.is_worker:
            continue
        counts[ex.step_key] = counts.get(ex.step_key, 0) + 1
        if ex.step_key not in steps:
            steps[ex.step_key] = HeldOutStep(ex.step_key, row.prompt.chat(), row.prompt.instruction, row.prompt.script,
                                             row.chosen.text, row.chosen.script, row.chosen.teacher, 0)
    return [dataclasses.replace(step, rows=counts[key]) for key, step in steps.items()]


@dataclass
class Batch:
    input_ids: torch.Tensor  # [S, L]
    attention_mask: torch.Tensor  # [S, L]
    n_rows: int
    chosen_seq: torch.Tensor  # per chosen response token: sequence index
    chosen_pos: torch.Tensor  # position whose hidden state predicts it
    chosen_labels: torch.Tensor
    chosen_row: torch.Tensor
    kd_ids: torch.Tensor  # [Nc, k]
    kd_logps: torch.Tensor  # [Nc, k]
    kd_mask: torch.Tensor  # [Nc]
    rejected_seq: torch.Tensor
    rejected_pos: torch.Tensor
    rejected_labels: torch.Tensor
    rejected_row: torch.Tensor
    n_tokens: int

    def to(self, device: torch.device) -> Batch:
        return Batch(**{k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in self.__dict__.items()})


def collate(examples: list[Example], pad_id: int) -> Batch:
    sequences: list[list[int]] = []
    c_seq, c_pos, c_lab, c_row = [], [], [], []
    r_seq, r_pos, r_lab, r_row = [], [], [], []
    k = max((ex.kd.ids.shape[1] for ex in examples if ex.kd is not None), default=0)
    kd_ids_parts, kd_lp_parts, kd_mask_parts = [], [], []

    def add(prompt: list[int], response: list[int]) -> tuple[int, list[int], list[int]]:
        s = len(sequences)
        sequences.append(prompt + response)
        start = len(prompt) - 1
        return s, list(range(start, start + len(response))), response

    for row, ex in enumerate(examples):
        s, pos, labels = add(ex.prompt_ids, ex.chosen_ids)
        c_seq += [s] * len(pos)
        c_pos += pos
        c_lab += labels
        c_row += [row] * len(pos)
        n = len(ex.chosen_ids)
        ids = np.full((n, k), -1, dtype=np.int64)
        lps = np.full((n, k), -np.inf, dtype=np.float32)
        mask = np.zeros(n, dtype=bool)
        if ex.kd is not None and ex.kd.ids.shape[1]:
            kk = ex.kd.ids.shape[1]
            ids[: n - 1, :kk] = ex.kd.ids
            lps[: n - 1, :kk] = ex.kd.logps
            mask[: n - 1] = ex.kd.mask
        kd_ids_parts.append(ids)
        kd_lp_parts.append(lps)
        kd_mask_parts.append(mask)
    for row, ex in enumerate(examples):
        if ex.rejected_ids:
            s, pos, labels = add(ex.prompt_ids, ex.rejected_ids)
            r_seq += [s] * len(pos)
            r_pos += pos
            r_lab += labels
            r_row += [row] * len(pos)
    length = max(len(s) for s in sequences)
    input_ids = torch.full((len(sequences), length), pad_id, dtype=torch.long)
    attention = torch.zeros((len(sequences), length), dtype=torch.long)
    for i, seq in enumerate(sequences):
        input_ids[i, : len(seq)] = torch.tensor(seq)
        attention[i, : len(seq)] = 1
    long = lambda xs: torch.tensor(xs, dtype=torch.long)  # noqa: E731
    return Batch(
        input_ids=input_ids,
        attention_mask=attention,
        n_rows=len(examples),
        chosen_seq=long(c_seq), chosen_pos=long(c_pos), chosen_labels=long(c_lab), chosen_row=long(c_row),
        kd_ids=torch.from_numpy(np.concatenate(kd_ids_parts)),
        kd_logps=torch.from_numpy(np.concatenate(kd_lp_parts)),
        kd_mask=torch.from_numpy(np.concatenate(kd_mask_parts)),
        rejected_seq=long(r_seq), rejected_pos=long(r_pos), rejected_labels=long(r_lab), rejected_row=long(r_row),
        n_tokens=int(attention.sum()),
    )
