"""The DORPO loss against hand-computed values, TRL's ORPO numerics, and gradcheck."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

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
    """Forward KL over top-k + tail buckets, both sides' buckets tempered alike, times T²."""
    q = torch.softmax(torch.tensor(logits, dtype=torch.float64), -1).tolist()
    p = [math.exp(v) for v in t_logps]

    def temper(buckets):
        powered = [b ** (1 / T) for b in buckets]
        return [b / sum(powered) for b in powered]

    p_buckets = temper(p + [1 - sum(p)])
    q_buckets = temper([q[i] for i in ids] + [1 - sum(q[i] for i in ids)])
    return T**2 * sum(pb * (math.log(pb) - math.log(qb)) for pb, qb in zip(p_buckets, q_buckets) if pb > 0)


def test_forward_kl_with_tail_bucket_by_hand():
    logits = [2.0, 1.0, 0.0, -1.0]
    ids, t = [0, 2], [math.log(0.6), math.log(0.3)]
    kd = token_kd(torch.tensor([logits]), torch.tensor([ids]), torch.tensor([t]))
    assert kd.item() == pytest.approx(kd_by_hand(logits, ids, t), rel=1e-5)
    for T in (0.5, 2.0, 4.0):
        kd = token_kd(torch.tensor([logits]), torch.tensor([ids]), torch.tensor([t]), temperature=T)
        assert kd.item() == pytest.approx(kd_by_hand(logits, ids, t, T), rel=1e-5), T


def _teacher_world(seed: int, vocab: int = 50, k: int = 5, dtype=torch.float64):
    """A full next-token distribution over `vocab` ids and its top-k as a teacher would report it."""
    gen = torch.Generator().manual_seed(seed)
    logits = (torch.randn(1, vocab, generator=gen) * 2).to(dtype)
    top = torch.log_softmax(logits, -1).topk(k, -1)
    return logits, top.indices, top.values


# float32 log-softmax rounds at ~1e-7 relative; T² = 16 at T=4 scales that up
KD_AT_TEACHER_TOL = {torch.float64: 1e-12, torch.float32: 1e-5}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("renormalize", [False, True])
@pytest.mark.parametrize("divergence", ["forward", "reverse", "jsd"])
@pytest.mark.parametrize("T", [0.5, 1.0, 2.0, 4.0])
def test_student_equal_to_teacher_has_zero_kd_at_every_temperature(T, divergence, renormalize, dtype):
    # issue #10 item 5: the student's tail used to be tempered over the vocabulary and the teacher's as
    # one bucket, so a student equal to the teacher scored 1.1 at T=2 and 11.7 at T=4 here
    logits, ids, t = _teacher_world(0, dtype=dtype)
    kd = token_kd(logits, ids, t, divergence=divergence, temperature=T, renormalize=renormalize)
    assert abs(kd.item()) <= KD_AT_TEACHER_TOL[dtype], kd.item()


@settings(max_examples=150, deadline=None)
@given(
    top=st.lists(st.floats(0.02, 1.0), min_size=1, max_size=6),
    tail=st.floats(1e-3, 1.0),
    tail_split=st.lists(st.floats(0.01, 1.0), min_size=1, max_size=8),
    extra_pad=st.integers(0, 2),
    shift=st.floats(-5.0, 5.0),
    bump=st.sampled_from([-2.0, -0.5, 0.5, 2.0]),
    which=st.integers(0, 5),
    T=st.sampled_from([0.5, 1.0, 2.0, 4.0]),
    divergence=st.sampled_from(["forward", "reverse", "jsd"]),
    renormalize=st.booleans(),
)
def test_kd_is_zero_at_the_teacher_and_positive_elsewhere(top, tail, tail_split, extra_pad, shift, bump, which, T,
                                                           divergence, renormalize):
    """Any teacher top-k + tail: the student that spreads the tail anyhow over the other ids scores 0;
    moving one top-k id's logit moves its bucket mass and scores > 0."""
    assume(not renormalize or len(top) >= 2)  # one renormalized bucket is always 1: nothing to compare
    total = sum(top) + tail
    k = len(top)
    probs = [w / total for w in top] + [tail / total * s / sum(tail_split) for s in tail_split]
    logits = torch.tensor([probs], dtype=torch.float64).log() + shift
    ids = torch.tensor([list(range(k)) + [-1] * extra_pad])
    t = torch.tensor([[math.log(w / total) for w in top] + [float("-inf")] * extra_pad], dtype=torch.float64)
    options = dict(divergence=divergence, temperature=T, renormalize=renormalize)
    assert abs(token_kd(logits, ids, t, **options).item()) <= KD_AT_TEACHER_TOL[torch.float64]
    moved = logits.clone()
    moved[0, which % k] += bump
    assert token_kd(moved, ids, t, **options).item() > 1e-10


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


@pytest.mark.parametrize("divergence", ["forward", "reverse", "jsd"])
@pytest.mark.parametrize("renormalize", [False, True])
def test_padding_in_top_k_gives_the_gradient_without_it(divergence, renormalize):
    """A padded slot (id −1, log-prob −inf) is an empty bucket on both sides: (−inf) − (−inf) there
    once made the gradient NaN for the reverse and JSD divergences (the product with the zero mass
    was dropped by `where`, its NaN derivative was not), and one such row made every weight NaN.
    (Found on the issue-24 branch; the fix is taken alone.)"""
    torch.manual_seed(3)
    logits = torch.randn(1, 6, dtype=torch.float64)
    teacher = torch.tensor([[math.log(0.5), math.log(0.2)]], dtype=torch.float64)
    grads = []
    for ids, lps in ((torch.tensor([[0, 2]]), teacher),
                     (torch.tensor([[0, 2, -1]]), torch.cat([teacher, torch.tensor([[float("-inf")]])], -1))):
        z = logits.clone().requires_grad_()
        token_kd(z, ids, lps, divergence=divergence, temperature=2.0, renormalize=renormalize).sum().backward()
        grads.append(z.grad)
    assert torch.isfinite(grads[1]).all()
    torch.testing.assert_close(grads[1], grads[0])
