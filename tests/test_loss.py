"""The DORPO loss against hand-computed values, TRL's ORPO numerics, and gradcheck."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from trainer.loss import KDOptions, dorpo_loss, log1mexp, odds_ratio, response_token_terms, token_kd


def test_log1mexp_is_stable_and_exact():
    x = torch.tensor([-50.0, -5.0, -0.7, -0.69, -1e-3, -1e-5], dtype=torch.float64)
    expected = torch.tensor([math.log(1 - math.exp(v)) for v in x.tolist()], dtype=torch.float64)
    torch.testing.assert_close(log1mexp(x), expected)
    assert torch.isfinite(log1mexp(torch.tensor([0.0]))).all()  # clamped, not -inf


def test_odds_ratio_by_hand():
    c, r = -0.5, -2.0
    log_odds = (c - math.log(1 - math.exp(c))) - (r - math.log(1 - math.exp(r)))
    loss, lo = odds_ratio(torch.tensor([c]), torch.tensor([r]))
    assert lo.item() == pytest.approx(log_odds)
    assert loss.item() == pytest.approx(-math.log(1 / (1 + math.exp(-log_odds))))


def test_odds_ratio_equals_trl_orpo():
    from trl.experimental.orpo.orpo_trainer import ORPOTrainer

    torch.manual_seed(0)
    chosen = -torch.rand(16) * 3 - 0.01
    rejected = -torch.rand(16) * 3 - 0.01
    fake = SimpleNamespace(beta=0.1, accelerator=SimpleNamespace(device="cpu"))
    trl_losses, _, _, _, trl_log_odds = ORPOTrainer.odds_ratio_loss(fake, chosen, rejected)
    ours, log_odds = odds_ratio(chosen, rejected)
    # TRL returns beta * log sigmoid(log_odds) and subtracts it; ORPO's total is nll + beta * OR
    torch.testing.assert_close(0.1 * ours, -trl_losses)
    torch.testing.assert_close(log_odds.mean(), trl_log_odds)


def kd_by_hand(logits, ids, t_logps, T=1.0):
    q = torch.softmax(torch.tensor(logits, dtype=torch.float64) / T, -1).tolist()
    p = [math.exp(v) for v in t_logps]
    p_buckets = p + [1 - sum(p)]
    q_buckets = [q[i] for i in ids] + [1 - sum(q[i] for i in ids)]
    return sum(pb * (math.log(pb) - math.log(qb)) for pb, qb in zip(p_buckets, q_buckets) if pb > 0)


def test_forward_kl_with_tail_bucket_by_hand():
    logits = [2.0, 1.0, 0.0, -1.0]
    ids, t = [0, 2], [math.log(0.6), math.log(0.3)]
    kd = token_kd(torch.tensor([logits]), torch.tensor([ids]), torch.tensor([t]))
    assert kd.item() == pytest.approx(kd_by_hand(logits, ids, t), rel=1e-5)


def test_renormalized_reverse_jsd_and_temperature():
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0]], dtype=torch.float64)
    ids = torch.tensor([[0, 2]])
    t = torch.tensor([[math.log(0.6), math.log(0.3)]], dtype=torch.float64)
    q = torch.softmax(logits, -1)[0]
    qk = torch.stack([q[0], q[2]]) / (q[0] + q[2])
    pk = torch.tensor([0.6, 0.3], dtype=torch.float64) / 0.9
    fwd = (pk * (pk.log() - qk.log())).sum()
    assert token_kd(logits, ids, t, renormalize=True).item() == pytest.approx(fwd.item())
    rev = (qk * (qk.log() - pk.log())).sum()
    assert token_kd(logits, ids, t, renormalize=True, divergence="reverse").item() == pytest.approx(rev.item())
    m = 0.5 * pk + 0.5 * qk
    jsd = 0.5 * (pk * (pk.log() - m.log())).sum() + 0.5 * (qk * (qk.log() - m.log())).sum()
    assert token_kd(logits, ids, t, renormalize=True, divergence="jsd").item() == pytest.approx(jsd.item())
    # temperature: both bucket distributions softened, scaled by T^2
    T = 2.0
    pT = torch.softmax(torch.log(pk) / T, -1)
    qT = torch.softmax(logits / T, -1)[0]
    qTk = torch.stack([qT[0], qT[2]]) / (qT[0] + qT[2])
    expected = T**2 * (pT * (pT.log() - qTk.log())).sum()
    got = token_kd(logits, ids, t, renormalize=True, temperature=T)
    assert got.item() == pytest.approx(expected.item())


def test_padding_in_top_k_is_ignored():
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0]])
    a = token_kd(logits, torch.tensor([[0, 2]]), torch.tensor([[math.log(0.6), math.log(0.3)]]))
    b = token_kd(logits, torch.tensor([[0, 2, -1]]), torch.tensor([[math.log(0.6), math.log(0.3), float("-inf")]]))
    torch.testing.assert_close(a, b)


def test_dorpo_rows_and_fallbacks_by_hand():
    # row 0: KD on both tokens + rejected; row 1: no logprobs (NLL) + rejected; row 2: KD, no rejected;
    # row 3: neither (NLL only)
    c_logp = torch.tensor([-0.2, -0.4, -1.0, -3.0, -0.5, -0.1, -2.0], dtype=torch.float64)
    c_row = torch.tensor([0, 0, 1, 1, 2, 2, 3])
    c_kd = torch.tensor([0.3, 0.1, 9.0, 9.0, 0.2, 0.6, 9.0], dtype=torch.float64)
    c_mask = torch.tensor([True, True, False, False, True, True, False])
    r_logp = torch.tensor([-1.5, -2.5, -4.0], dtype=torch.float64)
    r_row = torch.tensor([0, 0, 1])
    lam = 0.5
    parts = dorpo_loss(c_logp, c_row, c_kd, c_mask, r_logp, r_row, 4, lam)

    def orr(c, r):
        lo = (c - math.log(1 - math.exp(c))) - (r - math.log(1 - math.exp(r)))
        return -math.log(1 / (1 + math.exp(-lo))), lo

    or0, lo0 = orr(-0.3, -2.0)
    or1, lo1 = orr(-2.0, -4.0)
    rows = [0.2 + lam * or0, 2.0 + lam * or1, 0.4, 2.0]
    assert parts.loss.item() == pytest.approx(sum(rows) / 4)
    assert parts.odds_ratio == pytest.approx((or0 + or1) / 2)
    assert parts.log_odds == pytest.approx((lo0 + lo1) / 2)
    assert parts.kd == pytest.approx((0.3 + 0.1 + 0.2 + 0.6) / 4)
    assert parts.nll == pytest.approx((0.3 + 2.0 + 0.3 + 2.0) / 4)
    assert parts.margin == pytest.approx(((-0.3 + 2.0) + (-2.0 + 4.0)) / 2)
    assert parts.aligned_share == pytest.approx(4 / 7)
    assert parts.rows_with_rejected == 2


def test_no_rejected_anywhere_is_pure_distillation():
    parts = dorpo_loss(torch.tensor([-1.0]), torch.tensor([0]), torch.tensor([0.25]), torch.tensor([True]),
                       torch.zeros(0), torch.zeros(0, dtype=torch.long), 1, 1.0)
    assert parts.loss.item() == pytest.approx(0.25) and math.isnan(parts.odds_ratio)


def test_gradcheck_float64():
    torch.manual_seed(0)
    logits = torch.randn(3, 6, dtype=torch.float64, requires_grad=True)
    ids = torch.tensor([[0, 3], [1, 2], [5, -1]])
    t = torch.log_softmax(torch.randn(3, 6, dtype=torch.float64), -1).gather(-1, ids.clamp(min=0))
    t = t.masked_fill(ids < 0, float("-inf"))
    for div in ("forward", "reverse", "jsd"):
        assert torch.autograd.gradcheck(lambda z: token_kd(z, ids, t, divergence=div).sum(), (logits,))
    chosen = torch.tensor([-0.3, -1.2], dtype=torch.float64, requires_grad=True)
    rejected = torch.tensor([-0.9, -2.5], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda c, r: odds_ratio(c, r)[0].sum(), (chosen, rejected))


def test_chunked_terms_equal_unchunked_and_backprop():
    torch.manual_seed(0)
    head = torch.nn.Linear(8, 50, bias=False)
    hidden = torch.randn(10, 8, requires_grad=True)
    labels = torch.randint(0, 50, (10,))
    ids = torch.randint(0, 50, (10, 4))
    lps = torch.log_softmax(torch.randn(10, 50), -1).gather(-1, ids)
    mask = torch.tensor([True, False] * 5)
    a_lp, a_kd = response_token_terms(hidden, head, labels, ids, lps, mask, KDOptions(), chunk_size=3)
    b_lp, b_kd = response_token_terms(hidden, head, labels, ids, lps, mask, KDOptions(), chunk_size=100)
    torch.testing.assert_close(a_lp, b_lp)
    torch.testing.assert_close(a_kd, b_kd)
    (a_lp.sum() + a_kd.sum()).backward()
    g1 = hidden.grad.clone()
    hidden.grad = None
    (b_lp.sum() + b_kd.sum()).backward()
    torch.testing.assert_close(g1, hidden.grad)
    assert (a_kd[~mask] == 0).all()
