"""A stand-in for Axolotl's KD data path, written from its source (Axolotl itself needs Python 3.12).

Read at axolotl-ai-cloud/axolotl 067b021 (v0.18.0-9), `src/axolotl/integrations/kd/`:
- `chat_template.py`: the dataset type `axolotl.integrations.kd.chat_template` resolves to `load =
  KDStrategyLoaderV2()`, i.e. `ChatTemplateStrategyWithKDv2`. Its `_prepare_kd_fields` moves the record's
  `target_token_ids` onto the tokenized sample and `transform_logprobs` reads `sample["target_token_ids"]`
  (a record without them fails with KeyError). `logprobs` are float lists; the width used is
  `top_k = min(max_top_k, min_top_k)` of the commonest widths, every position is cut to it; the lists sit
  on the last `len(logprobs)` positions (`input_padding_len = len(input_ids) - len(logprobs)`); each
  position is exp'ed, normalised, (re-tempered) and log'ed back; `target_mask` is 1 where `labels` train.
- `collator.py`: widths padded to the batch's largest with -1e9 and mask 0.
- `topk_logprob/forward_kl.py`: the loss gathers the student's log-probabilities at `target_token_ids`
  and sums `exp(t) * (t - s)` over the masked entries.
This re-implements those steps (numpy, not their code) to check what shake writes against them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class KDSample:
    input_ids: list[int]
    labels: list[int]
    target_logprobs: np.ndarray  # [seq, top_k]
    target_token_ids: np.ndarray  # [seq, top_k]
    target_mask: np.ndarray  # [seq, top_k]


def load_v2(record: dict, tokenizer) -> KDSample:
    """One record as `ChatTemplateStrategyWithKDv2` turns it into a training sample."""
    messages = record["messages"]
    input_ids = list(tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True)["input_ids"])
    head = len(tokenizer.apply_chat_template(messages[:-1], add_generation_prompt=True, tokenize=True,
                                             return_dict=True)["input_ids"])
    labels = [-100] * head + input_ids[head:]  # roles_to_train = assistant, its end-of-turn included
    logprobs = record["logprobs"]
    target_ids = record["target_token_ids"]  # the KeyError the legacy layout met
    widths = [len(row) for row in logprobs if row]
    commonest = max(set(widths), key=widths.count)
    top_k = min(commonest, min(set(widths), key=widths.count))
    if top_k == 0:
        raise ValueError("No non-zero top-k logprobs found.")
    padding = len(input_ids) - len(logprobs)
    assert padding >= 0, "more positions of logprobs than tokens"
    lp = np.full((len(input_ids), top_k), -np.inf)
    ids = np.tile(np.arange(top_k), (len(input_ids), 1))
    mask = np.zeros((len(input_ids), top_k), dtype=int)
    for pos in range(padding, len(input_ids)):
        mask[pos] = int(labels[pos] != -100)
    for j, (row, row_ids) in enumerate(zip(logprobs, target_ids)):
        row = np.asarray(row[:top_k], dtype=np.float32)
        probs = np.exp(row)
        if probs.sum() > 1e-9:
            probs = probs / probs.sum()
        with np.errstate(divide="ignore"):
            lp[padding + j] = np.log(probs / probs.sum())  # a zero probability becomes -inf here, as in torch
        assert len(row_ids) == top_k, f"position {j}: {len(row_ids)} ids for {top_k} log-probabilities"
        ids[padding + j] = row_ids
    return KDSample(input_ids, labels, lp, ids, mask)


def forward_kl(sample: KDSample, student_logprobs: np.ndarray) -> float:
    """`topk_logprob/forward_kl.py`'s loss for one sample (student log-probabilities [seq, vocab])."""
    valid = sample.target_mask.astype(bool)
    s = np.take_along_axis(student_logprobs, sample.target_token_ids, axis=-1)[valid]
    t = sample.target_logprobs[valid]
    return float((np.exp(t) * (t - s)).sum() / max(valid.sum(), 1))
