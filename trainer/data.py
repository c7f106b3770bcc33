"""From a frozen dataset snapshot to token batches.

Each row becomes an `Example`: the student's chat-templated prompt, the chosen response (+ EOS),
the rejected response (+ EOS) when the row has one, and the teacher's soft labels aligned to the
chosen tokens. `collate` packs a list of examples into one batch in which chosen and rejected
go through the model together (ORPO's concatenated forward pass, with each prompt computed once for
both responses), and records, for every response token, where its hidden state sits and which row it
belongs to.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field

import numpy as np
import torch

from engine.store import Snapshot
from engine.store.schema import Origin, Row
from engine.teachers.base import ModelIdentity
from engine.align import AlignedKD, StudentVocab, align
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
    context_labels: int = 0  # rows trained on their chosen's context soft labels (--soft-labels context)
    user_chosen_left_out: int = 0  # rows whose chosen the user wrote, left out (--model-chosen-only)
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
        if cfg.model_chosen_only and row.chosen.origin != Origin.MODEL:
            report.user_chosen_left_out += 1
            continue
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
        context = (None if cfg.no_kd or cfg.soft_labels != "context" or row.chosen.context_logprobs is None
                   else snapshot.logprobs(row, context=True))
        if context is not None:  # asked for by name: another prompt's labels on purpose
            teacher = context
            report.context_labels += 1
        elif teacher is not None and not row.soft_labels_match_prompt:
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
    if not report.rows:
        raise TrainError(f"all {report.user_chosen_left_out} complete rows have a chosen the user wrote, which "
                         "--model-chosen-only leaves out: nothing is left to train on")
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
    """One packed sequence per row: prompt, chosen, rejected (see `collate`)."""

    input_ids: torch.Tensor  # [B, L]
    attention_mask: torch.Tensor  # [B, 1, L, L] bool: True where a query position may attend a key position
    position_ids: torch.Tensor  # [B, L]: the rejected response restarts right after the prompt
    n_rows: int
    chosen_seq: torch.Tensor  # per chosen response token: its row's sequence index
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
    n_tokens: int  # prompt+chosen plus prompt+rejected tokens: what a trainer without sharing processes
    n_positions: int  # positions the model actually runs (each prompt once)

    def to(self, device: torch.device) -> Batch:
        return Batch(**{k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in self.__dict__.items()})


def collate(examples: list[Example], pad_id: int) -> Batch:
    """Pack each row into one sequence, prompt + chosen + rejected, with the prompt computed once.

    ORPO's concatenated forward pass runs prompt+chosen and prompt+rejected as two sequences, so
    every prompt goes through the model twice. Here the rejected response follows the chosen one in
    the same sequence; the attention mask keeps it from seeing the chosen response (it attends to
    the prompt and to itself, causally) and its position ids restart where the prompt ends, so each
    hidden state is exactly what the separate sequence would give:

        tokens     p0 .. pP-1 | c0 .. cC-1 | r0 .. rR-1
        positions  0  .. P-1  | P  .. P+C-1 | P  .. P+R-1
        attends    causal     | p, causal c | p, causal r

    The first token of both responses is predicted from the last prompt position. Padding positions
    attend to themselves only (a fully masked row would give NaN in the attention softmax).
    """
    sequences: list[list[int]] = []
    positions: list[list[int]] = []
    layout: list[tuple[int, int, int]] = []  # (P, C, R) per row
    c_seq, c_pos, c_lab, c_row = [], [], [], []
    r_seq, r_pos, r_lab, r_row = [], [], [], []
    k = max((ex.kd.ids.shape[1] for ex in examples if ex.kd is not None), default=0)
    kd_ids_parts, kd_lp_parts, kd_mask_parts = [], [], []
    n_tokens = 0
    for row, ex in enumerate(examples):
        p, c, r = ex.prompt_ids, ex.chosen_ids, ex.rejected_ids or []
        sequences.append(p + c + r)
        positions.append(list(range(len(p) + len(c))) + list(range(len(p), len(p) + len(r))))
        layout.append((len(p), len(c), len(r)))
        n_tokens += len(p) + len(c) + (len(p) + len(r) if r else 0)
        c_seq += [row] * len(c)
        c_pos += range(len(p) - 1, len(p) - 1 + len(c))
        c_lab += c
        c_row += [row] * len(c)
        if r:
            r_seq += [row] * len(r)
            r_pos += [len(p) - 1] + list(range(len(p) + len(c), len(p) + len(c) + len(r) - 1))
            r_lab += r
            r_row += [row] * len(r)
        n = len(c)
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
    length = max(len(s) for s in sequences)
    input_ids = torch.full((len(sequences), length), pad_id, dtype=torch.long)
    position_ids = torch.zeros((len(sequences), length), dtype=torch.long)
    attention = torch.zeros((len(sequences), 1, length, length), dtype=torch.bool)
    causal = torch.ones((length, length), dtype=torch.bool).tril()
    for i, (seq, pos, (p, c, r)) in enumerate(zip(sequences, positions, layout)):
        n = len(seq)
        input_ids[i, :n] = torch.tensor(seq)
        position_ids[i, :n] = torch.tensor(pos)
        position_ids[i, n:] = torch.arange(n, length)
        attention[i, 0, :n, :n] = causal[:n, :n]
        attention[i, 0, p + c : n, p : p + c] = False  # the rejected response never sees the chosen one
        attention[i, 0, range(n, length), range(n, length)] = True  # padding: itself only
    long = lambda xs: torch.tensor(xs, dtype=torch.long)  # noqa: E731
    return Batch(
        input_ids=input_ids,
        attention_mask=attention,
        position_ids=position_ids,
        n_rows=len(examples),
        chosen_seq=long(c_seq), chosen_pos=long(c_pos), chosen_labels=long(c_lab), chosen_row=long(c_row),
        kd_ids=torch.from_numpy(np.concatenate(kd_ids_parts)),
        kd_logps=torch.from_numpy(np.concatenate(kd_lp_parts)),
        kd_mask=torch.from_numpy(np.concatenate(kd_mask_parts)),
        rejected_seq=long(r_seq), rejected_pos=long(r_pos), rejected_labels=long(r_lab), rejected_row=long(r_row),
        n_tokens=n_tokens,
        n_positions=sum(len(s) for s in sequences),
    )
