r"""The DORPO loss: distillation on `chosen` plus λ times ORPO's odds-ratio term.

For a row with prompt x, chosen y⁺ (with the teacher's top-k log-probabilities) and rejected y⁻:

    loss = D(y⁺) + λ · OR(y⁺, y⁻)

**Distillation term D.** Over the chosen tokens t = 1..|y⁺|, each token contributes

    d_t = KL_t          where the teacher's top-k is aligned to this student token
    d_t = −log q(y_t)   elsewhere (hard label: NLL)

and D = mean_t d_t. A row without log-probabilities therefore falls back to the NLL of y⁺.

KL_t compares two distributions over k+1 buckets: the teacher's top-k token ids and one **tail**
bucket holding the mass outside them,

    log p_tail = log(1 − Σ_k exp(log p_k)) = log1mexp(logsumexp_k log p_k)

and the same buckets for the student, log q_k = log_softmax(z)[id_k] and
log q_tail = log1mexp(logsumexp_k log q_k).

**Temperature.** With T ≠ 1 both sides are tempered the same way, as bucket distributions:

    log p̃_b = log p_b / T − logsumexp_b' (log p_b' / T)        (b over the k+1 buckets)
    log q̃_b = log q_b / T − logsumexp_b' (log q_b' / T)

and the divergence D(p̃, q̃) is scaled by T² (Hinton et al.). The teacher's tail is only known as one
mass, so the student's tail must be tempered as one mass too: tempering the student's full
vocabulary (softmax(z / T)) and then summing its tail would compare Σ_{i∉k} q_i^{1/T} with
(Σ_{i∉k} p_i)^{1/T}, which differ even when q = p (a student equal to the teacher scored 47 at T=4).
Tempering is a bijection of the simplex, so D(p̃, q̃) = 0 exactly when the buckets agree: the
minimum is at the teacher for every T. Divergences:

    forward  KL(p‖q) = Σ_b p_b (log p_b − log q_b)            (default)
    reverse  KL(q‖p) = Σ_b q_b (log q_b − log p_b)
    jsd(β)   β·KL(p‖m) + (1−β)·KL(q‖m),  m = β p + (1−β) q

`renormalize=True` drops the tail bucket and renormalizes both sides over the top-k (Axolotl's KD).

**Odds-ratio term OR** (ORPO; numerics as TRL's `orpo_trainer.py`). With the *average* per-token
log-probability of a response, logp(y) = (1/|y|) Σ_t log q(y_t), clamped to ≤ −1e−6,

    log odds(y)  = logp(y) − log1mexp(logp(y))
    log_odds     = log odds(y⁺) − log odds(y⁻)
    OR           = −log σ(log_odds)

    log1mexp(x)  = log1p(−exp(x))   if x < −ln 2
                   log(−expm1(x))   otherwise          (stable log(1 − eˣ) for x < 0)

A row without y⁻ has no OR term (loss = D).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

LOGP_CLAMP = -1e-6
DIVERGENCES = ("forward", "reverse", "jsd")


def log1mexp(x: torch.Tensor) -> torch.Tensor:
    """log(1 − exp(x)) for x ≤ 0, stable at both ends (Mächler 2012)."""
    x = x.clamp(max=LOGP_CLAMP)
    return torch.where(x < -math.log(2.0), torch.log1p(-torch.exp(x)), torch.log(-torch.expm1(x)))


def odds_ratio(chosen_logps: torch.Tensor, rejected_logps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row OR loss and log odds ratio from averaged response log-probabilities."""
    chosen = chosen_logps.clamp(max=LOGP_CLAMP)
    rejected = rejected_logps.clamp(max=LOGP_CLAMP)
    log_odds = (chosen - rejected) - (log1mexp(chosen) - log1mexp(rejected))
    return -F.logsigmoid(log_odds), log_odds


def _buckets(logps_k: torch.Tensor, valid: torch.Tensor, renormalize: bool) -> torch.Tensor:
    """Top-k log-probs (−inf where not valid) → log-masses over k buckets (+ tail unless renormalized)."""
    logps_k = logps_k.masked_fill(~valid, float("-inf"))
    total = torch.logsumexp(logps_k, dim=-1, keepdim=True)
    if renormalize:
        return logps_k - total
    return torch.cat([logps_k, log1mexp(total)], dim=-1)


def _kl(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """Σ_b p_b (log p_b − log q_b), with 0·(anything) = 0 for empty buckets.

    The difference is masked before the product: in an empty bucket (a padded top-k slot) it is
    (−inf) − (−inf) = NaN, and a mask applied after the product drops the NaN from the value but not
    from the gradient (d(p·x)/dp = x), which made reverse-KL and JSD gradients NaN."""
    p = log_p.exp()
    diff = torch.where(p > 0, log_p - log_q, torch.zeros_like(p))
    return (p * diff).sum(-1)


def token_kd(
    student_logits: torch.Tensor,
    teacher_ids: torch.Tensor,
    teacher_logps: torch.Tensor,
    *,
    divergence: str = "forward",
    temperature: float = 1.0,
    renormalize: bool = False,
    jsd_beta: float = 0.5,
) -> torch.Tensor:
    """Per-token divergence between teacher top-k (+ tail) and the student. Shapes [N,V], [N,k], [N,k] → [N].

    Teacher ids < 0 mark padding (fewer than k alternatives).
    """
    if divergence not in DIVERGENCES:
        raise ValueError(f"divergence must be one of {DIVERGENCES}, got {divergence!r}")
    valid = teacher_ids >= 0
    # bf16/fp16 logits are upcast; float64 (gradcheck) stays float64
    logits = student_logits if student_logits.dtype == torch.float64 else student_logits.float()
    student_logps = torch.log_softmax(logits, dim=-1)
    s_k = student_logps.gather(-1, teacher_ids.clamp(min=0))
    log_q = _buckets(s_k, valid, renormalize)
    t_k = teacher_logps.to(student_logps.dtype)
    log_p = _buckets(t_k, valid, renormalize)
    if temperature != 1.0:  # temper the buckets on both sides alike (module docstring)
        log_p = torch.log_softmax(log_p / temperature, dim=-1)
        log_q = torch.log_softmax(log_q / temperature, dim=-1)
    if divergence == "forward":
        kd = _kl(log_p, log_q)
    elif divergence == "reverse":
        kd = _kl(log_q, log_p)
    else:
        beta = jsd_beta
        mixed = torch.stack([log_p + math.log(beta), log_q + math.log(1 - beta)])
        empty = torch.isneginf(mixed).all(0)  # a padded bucket on both sides: logsumexp's gradient is NaN there
        log_m = torch.logsumexp(mixed.masked_fill(empty, 0.0), dim=0).masked_fill(empty, float("-inf"))
        kd = beta * _kl(log_p, log_m) + (1 - beta) * _kl(log_q, log_m)
    return kd * temperature**2


@dataclass
class KDOptions:
    divergence: str = "forward"
    temperature: float = 1.0
    renormalize: bool = False
    jsd_beta: float = 0.5


def response_token_terms(
    hidden: torch.Tensor,
    lm_head: torch.nn.Module,
    labels: torch.Tensor,
    kd_ids: torch.Tensor,
    kd_logps: torch.Tensor,
    kd_mask: torch.Tensor,
    options: KDOptions,
    chunk_size: int = 256,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Label log-probs and KD terms for N response positions, `chunk_size` positions at a time.

    Only response positions reach the LM head, and each chunk's full-vocabulary logits are
    recomputed in the backward pass (activation checkpointing) instead of being kept: peak memory
    holds one chunk of [chunk_size, V] float32 logits, not the batch's.
    """

    def chunk_terms(h, y, ids, lps, mask):
        logits = lm_head(h).float()
        label_logp = torch.log_softmax(logits, dim=-1).gather(-1, y.unsqueeze(-1)).squeeze(-1)
        if ids.shape[1] == 0 or not bool(mask.any()):
            return label_logp, torch.zeros_like(label_logp)
        kd = token_kd(
            logits, ids, lps,
            divergence=options.divergence, temperature=options.temperature,
            renormalize=options.renormalize, jsd_beta=options.jsd_beta,
        )
        return label_logp, torch.where(mask, kd, torch.zeros_like(kd))

    label_parts, kd_parts = [], []
    for start in range(0, hidden.shape[0], chunk_size):
        sl = slice(start, start + chunk_size)
        args = (hidden[sl], labels[sl], kd_ids[sl], kd_logps[sl], kd_mask[sl])
        if torch.is_grad_enabled() and hidden.requires_grad:
            label_logp, kd = checkpoint(chunk_terms, *args, use_reentrant=False)
        else:
            label_logp, kd = chunk_terms(*args)
        label_parts.append(label_logp)
        kd_parts.append(kd)
    if not label_parts:
        empty = hidden.new_zeros(0)
        return empty, empty
    return torch.cat(label_parts), torch.cat(kd_parts)


def _segment_mean(values: torch.Tensor, segment: torch.Tensor, n: int, weight: torch.Tensor | None = None):
    w = torch.ones_like(values) if weight is None else weight.to(values.dtype)
    total = values.new_zeros(n).index_add(0, segment, values * w)
    count = values.new_zeros(n).index_add(0, segment, w)
    return total / count.clamp(min=1), count


@dataclass
class LossParts:
    loss: torch.Tensor  # the scalar to backpropagate
    distill: float  # mean D over rows
    kd: float  # mean KL over aligned tokens (nan when none)
    nll: float  # mean NLL of chosen over rows
    odds_ratio: float  # mean OR over rows with a rejected (nan when none)
    log_odds: float
    chosen_logps: float
    rejected_logps: float
    margin: float
    aligned_share: float  # share of chosen tokens with KD soft labels
    rows: int
    rows_with_rejected: int
    chosen_tokens: int

    def as_dict(self) -> dict[str, float]:
        return {k: (v.item() if isinstance(v, torch.Tensor) else v) for k, v in self.__dict__.items()}


def dorpo_loss(
    chosen_logp: torch.Tensor,
    chosen_row: torch.Tensor,
    chosen_kd: torch.Tensor,
    chosen_kd_mask: torch.Tensor,
    rejected_logp: torch.Tensor,
    rejected_row: torch.Tensor,
    n_rows: int,
    lam: float,
) -> LossParts:
    """Combine per-token terms into the DORPO loss (see the module docstring).

    chosen_logp, chosen_kd, chosen_kd_mask, chosen_row: per chosen token (its row index in the batch);
    rejected_logp, rejected_row: per rejected token. Rows with no rejected token have no OR term.
    """
    nan = float("nan")
    mask = chosen_kd_mask.to(chosen_logp.dtype)
    per_token = torch.where(chosen_kd_mask, chosen_kd, -chosen_logp)
    distill, _ = _segment_mean(per_token, chosen_row, n_rows)
    chosen_avg, _ = _segment_mean(chosen_logp, chosen_row, n_rows)
    loss_rows = distill
    or_value = log_odds_value = rejected_value = margin = nan
    has_rejected = torch.zeros(n_rows, dtype=torch.bool, device=chosen_logp.device)
    if rejected_logp.numel():
        rejected_avg, counts = _segment_mean(rejected_logp, rejected_row, n_rows)
        has_rejected = counts > 0
        or_rows, log_odds = odds_ratio(chosen_avg, rejected_avg)
        loss_rows = loss_rows + lam * torch.where(has_rejected, or_rows, torch.zeros_like(or_rows))
        if bool(has_rejected.any()):
            sel = has_rejected
            or_value = or_rows[sel].mean().item()
            log_odds_value = log_odds[sel].mean().item()
            rejected_value = rejected_avg[sel].mean().item()
            margin = (chosen_avg[sel] - rejected_avg[sel]).mean().item()
    aligned = int(chosen_kd_mask.sum())
    return LossParts(
        loss=loss_rows.mean(),
        distill=distill.mean().item(),
        kd=(chosen_kd * mask).sum().item() / aligned if aligned else nan,
        nll=(-chosen_avg).mean().item(),
        odds_ratio=or_value,
        log_odds=log_odds_value,
        chosen_logps=chosen_avg.mean().item(),
        rejected_logps=rejected_value,
        margin=margin,
        aligned_share=aligned / max(chosen_logp.numel(), 1),
        rows=n_rows,
        rows_with_rejected=int(has_rejected.sum()),
        chosen_tokens=int(chosen_logp.numel()),
    )
