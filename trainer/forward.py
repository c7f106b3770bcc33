"""The student's forward pass over a packed batch and the batch's DORPO loss.

One module for what training (trainer/recipe.py) and evaluation (trainer/evaluate.py) compute alike,
so that `shake eval` reports the loss exactly as the trainer optimized it; both import it and it
imports neither (the trainer's modules form a DAG, tests/test_import_layers.py).
"""

from __future__ import annotations

import torch

from trainer.config import TrainConfig
from trainer.data import Batch
from trainer.errors import TrainError
from trainer.loss import KDOptions, LossParts, dorpo_loss, response_token_terms
from trainer.student import compute_context, decoder_and_head


def response_hidden(model, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """One forward pass of the decoder body over the packed batch: the hidden states that predict
    each chosen and each rejected token."""
    body, _ = decoder_and_head(model)
    with compute_context(model):
        hidden = body(input_ids=batch.input_ids, attention_mask=attention_mask_for(model, batch.attention_mask),
                      position_ids=batch.position_ids).last_hidden_state
    return hidden[batch.chosen_seq, batch.chosen_pos], hidden[batch.rejected_seq, batch.rejected_pos]


def batch_loss(model, batch: Batch, cfg: TrainConfig) -> LossParts:
    """One forward pass over the batch, then the DORPO loss on response tokens (fp32, trainer/loss.py)."""
    _, head = decoder_and_head(model)
    h_chosen, h_rejected = response_hidden(model, batch)
    n_c = h_chosen.shape[0]
    k = batch.kd_ids.shape[1]
    device = h_chosen.device
    pad_ids = torch.full((h_rejected.shape[0], k), -1, dtype=torch.long, device=device)
    pad_lps = torch.full((h_rejected.shape[0], k), float("-inf"), device=device)
    label_logp, kd = response_token_terms(
        torch.cat([h_chosen, h_rejected]),
        head,
        torch.cat([batch.chosen_labels, batch.rejected_labels]),
        torch.cat([batch.kd_ids, pad_ids]),
        torch.cat([batch.kd_logps, pad_lps]),
        torch.cat([batch.kd_mask, torch.zeros(h_rejected.shape[0], dtype=torch.bool, device=device)]),
        KDOptions(cfg.kd_divergence, cfg.kd_temperature, cfg.kd_renormalize, cfg.jsd_beta),
        chunk_size=cfg.loss_chunk,
    )
    return dorpo_loss(
        label_logp[:n_c], batch.chosen_row, kd[:n_c], batch.kd_mask,
        label_logp[n_c:], batch.rejected_row, batch.n_rows, cfg.lam,
    )


def attention_mask_for(model, mask: torch.Tensor) -> torch.Tensor:
    """The batch's boolean 4-D mask as the student's attention implementation takes it."""
    implementation = getattr(model.config, "_attn_implementation", "sdpa")
    if implementation == "sdpa":
        return mask
    if implementation == "eager":  # additive: 0 where allowed, the dtype's minimum elsewhere
        dtype = model.get_input_embeddings().weight.dtype
        return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(~mask, torch.finfo(dtype).min)
    raise TrainError(f"the student's attention implementation {implementation!r} takes no custom mask; "
                     "load it with sdpa or eager attention")
