"""DAPO policy loss, k3 KL and masked reductions (docs/PAPER.md#dapo-loss, docs/PAPER.md#kl), against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from fl1_core.losses import aggregate_loss, dapo_policy_loss, kl_k3, masked_mean

# (A, ρ, expected ℓ, gradient dℓ/dlogp, active branch) with ε_low = 0.2, ε_high = 0.28, c = 3.
REGIMES = [
    (1.0, 1.1, -1.1, -1.1, None),  # A ≥ 0 inside the clip range: -Aρ
    (1.0, 1.5, -1.28, 0.0, "high"),  # A > 0, ρ > 1.28: clipped at 1+ε_high
    (1.0, 0.5, -0.5, -0.5, None),  # A > 0, ρ < 0.8: max(-0.5, -0.8) = -0.5 unclipped
    (2.0, 1.2, -2.4, -2.4, None),
    (0.0, 2.0, 0.0, 0.0, None),  # A = 0
    (-1.0, 0.5, 0.8, 0.0, "low"),  # A < 0, ρ < 0.8: max(0.5, 0.8) = 0.8 clipped
    (-1.0, 0.9, 0.9, 0.9, None),  # A < 0 inside
    (-1.0, 1.5, 1.5, 1.5, None),  # A < 0, ρ > 1.28: max(1.5, 1.28) = 1.5, below c
    (-1.0, 5.0, 3.0, 0.0, "dual"),  # A < 0, ρ > c: min(5, 3) = 3
    (-0.5, 4.0, 1.5, 0.0, "dual"),  # -A·c = 1.5
]


def _single(adv: float, ratio: float, **kw):
    old = torch.tensor([[-1.0]])
    logp = (old + math.log(ratio)).clone().requires_grad_(True)
    loss, metrics = dapo_policy_loss(logp, old, torch.tensor([[adv]]), torch.ones(1, 1), **kw)
    loss.backward()
    return loss, metrics, logp.grad


@pytest.mark.parametrize("adv,ratio,expected,grad,branch", REGIMES)
def test_per_token_loss_every_regime(adv, ratio, expected, grad, branch):
    loss, metrics, g = _single(adv, ratio)
    assert loss.item() == pytest.approx(expected, abs=1e-5)
    # dℓ/dlogp = dℓ/dρ · ρ; zero exactly where a clipped branch is active.
    assert g.item() == pytest.approx(grad, abs=1e-5)
    for name in ("high", "low", "dual"):
        assert metrics[f"clipfrac_{name}"].item() == (1.0 if branch == name else 0.0)
    assert metrics["clipfrac"].item() == (0.0 if branch is None else 1.0)
    assert metrics["ratio_mean"].item() == pytest.approx(ratio, rel=1e-5)
    assert metrics["approx_kl"].item() == pytest.approx(-math.log(ratio), abs=1e-5)


def test_dual_clip_disabled():
    loss, metrics, g = _single(-1.0, 5.0, dual_clip=None)
    assert loss.item() == pytest.approx(5.0, rel=1e-5)
    assert g.item() == pytest.approx(5.0, rel=1e-5)
    assert metrics["clipfrac_dual"].item() == 0.0


def test_custom_eps():
    loss, _, _ = _single(1.0, 1.5, eps_high=0.6)  # inside [0.8, 1.6] now
    assert loss.item() == pytest.approx(-1.5, rel=1e-5)
    with pytest.raises(ValueError):
        _single(1.0, 1.0, dual_clip=0.5)


def test_batch_gradients_zero_where_clipped_branch_active():
    advs = torch.tensor([[r[0] for r in REGIMES]])
    ratios = torch.tensor([[r[1] for r in REGIMES]])
    old = torch.full_like(ratios, -2.0)
    logp = (old + ratios.log()).clone().requires_grad_(True)
    loss, metrics = dapo_policy_loss(logp, old, advs, torch.ones_like(old))
    loss.backward()
    k = len(REGIMES)
    assert loss.item() == pytest.approx(sum(r[2] for r in REGIMES) / k, abs=1e-5)
    expected_grad = torch.tensor([[r[3] / k for r in REGIMES]])
    assert torch.allclose(logp.grad, expected_grad, atol=1e-6)
    clipped = torch.tensor([[r[4] is not None for r in REGIMES]])
    assert torch.all(logp.grad[clipped] == 0)
    assert metrics["clipfrac_dual"].item() == pytest.approx(2 / k)
    assert metrics["clipfrac_high"].item() == pytest.approx(1 / k)
    assert metrics["clipfrac_low"].item() == pytest.approx(1 / k)


def _agg_case():
    # ρ = 1 everywhere, so ℓ = -A per token.
    adv = torch.tensor([[1.0, 2.0, 9.0], [4.0, 9.0, 9.0], [7.0, 7.0, 7.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    logp = torch.zeros(3, 3)
    return logp, adv, mask


def test_token_aggregation_is_global_token_mean():
    logp, adv, mask = _agg_case()
    loss, metrics = dapo_policy_loss(logp, logp, adv, mask, agg="token")
    assert loss.item() == pytest.approx(-(1 + 2 + 4) / 3)
    assert metrics["num_tokens"].item() == 3


def test_seq_aggregation_is_mean_of_sequence_means_excluding_empty():
    logp, adv, mask = _agg_case()
    loss, _ = dapo_policy_loss(logp, logp, adv, mask, agg="seq")
    assert loss.item() == pytest.approx(-((1 + 2) / 2 + 4) / 2)  # third sequence has no tokens
    loss_n, _ = dapo_policy_loss(logp, logp, adv, mask, agg="seq", num_seqs=4)
    assert loss_n.item() == pytest.approx(-((1 + 2) / 2 + 4) / 4)
    with pytest.raises(ValueError):
        dapo_policy_loss(logp, logp, adv, mask, agg="mean")


def test_sequence_advantages_broadcast_like_per_token():
    torch.manual_seed(0)
    logp, old = torch.randn(4, 6) * 0.3, torch.randn(4, 6) * 0.3
    mask = (torch.rand(4, 6) > 0.3).float()
    adv_seq = torch.tensor([1.5, -0.7, 0.0, -2.0])
    for agg in ("token", "seq"):
        a, ma = dapo_policy_loss(logp, old, adv_seq, mask, agg=agg)
        b, mb = dapo_policy_loss(logp, old, adv_seq[:, None].expand(4, 6), mask, agg=agg)
        assert torch.allclose(a, b)
        assert all(torch.allclose(ma[k], mb[k]) for k in ma)
    with pytest.raises(ValueError):
        dapo_policy_loss(logp, old, torch.ones(3), mask)


def test_micro_batches_scaled_by_token_counts_sum_to_full_batch():
    torch.manual_seed(1)
    B, T = 6, 7
    logp_full = (torch.randn(B, T) * 0.4).requires_grad_(True)
    old = torch.randn(B, T) * 0.4
    adv = torch.randn(B)
    mask = (torch.rand(B, T) > 0.4).float()
    mask[2] = 0.0  # an empty sequence in one micro-batch
    full, _ = dapo_policy_loss(logp_full, old, adv, mask)
    (g_full,) = torch.autograd.grad(full, logp_full)

    logp = logp_full.detach().clone().requires_grad_(True)
    n_total = mask.sum()
    summed = torch.zeros(())
    scaled = torch.zeros(())
    for sl in (slice(0, 2), slice(2, 4), slice(4, 6)):
        part, _ = dapo_policy_loss(logp[sl], old[sl], adv[sl], mask[sl], num_tokens=n_total)
        summed = summed + part
        local, _ = dapo_policy_loss(logp[sl], old[sl], adv[sl], mask[sl])
        scaled = scaled + local * mask[sl].sum() / n_total
    assert summed.item() == pytest.approx(full.item(), abs=1e-6)
    assert scaled.item() == pytest.approx(full.item(), abs=1e-6)
    (g_sum,) = torch.autograd.grad(summed, logp)
    assert torch.allclose(g_sum, g_full, atol=1e-7)


def test_all_zero_mask_gives_zero_loss_without_nan():
    logp = torch.randn(2, 4, requires_grad=True)
    for agg in ("token", "seq"):
        loss, metrics = dapo_policy_loss(logp, logp.detach() + 0.5, torch.ones(2), torch.zeros(2, 4), agg=agg)
        assert loss.item() == 0.0
        (g,) = torch.autograd.grad(loss, logp)
        assert torch.all(g == 0)
        assert all(torch.isfinite(v).all() for v in metrics.values())
    loss, _ = dapo_policy_loss(logp, logp.detach(), torch.ones(2), torch.zeros(2, 4), num_tokens=0)
    assert loss.item() == 0.0


def test_kl_k3_values_and_clamps():
    logp = torch.tensor([-1.0, -2.0, 0.0, -50.0, 0.0], requires_grad=True)
    ref = torch.tensor([-1.0, -1.0, -1.0, 0.0, -30.0])
    k3 = kl_k3(logp, ref)
    x1, x2 = 1.0, -1.0
    assert k3[0].item() == 0.0
    assert k3[1].item() == pytest.approx(math.exp(x1) - x1 - 1, rel=1e-6)
    assert k3[2].item() == pytest.approx(math.exp(x2) - x2 - 1, rel=1e-6)
    assert k3[3].item() == 10.0  # x = 50 → clamp(20) → e^20 - 21 → clamp 10
    assert k3[4].item() == 10.0  # x = -30 → clamp(-20) → 19 → clamp 10
    k3.sum().backward()
    assert logp.grad[0].item() == 0.0
    assert torch.isfinite(logp.grad).all()
    assert logp.grad[3].item() == 0.0  # clamped: no gradient


def test_kl_k3_nonnegative_random():
    torch.manual_seed(2)
    a, b = torch.randn(1000) * 3, torch.randn(1000) * 3
    k3 = kl_k3(a, b)
    assert torch.all(k3 >= 0)
    assert torch.all(k3 <= 10)
    assert torch.all(kl_k3(a, a) == 0)


def test_masked_mean_and_aggregate():
    x = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    m = torch.tensor([[1, 0, 1], [0, 0, 0]], dtype=torch.bool)
    assert masked_mean(x, m).item() == pytest.approx(2.0)
    assert torch.allclose(masked_mean(x, m, dim=1), torch.tensor([2.0, 0.0]))
    assert torch.allclose(masked_mean(x, m, dim=0), torch.tensor([1.0, 0.0, 3.0]))
    assert masked_mean(x, torch.zeros_like(x)).item() == 0.0
    assert aggregate_loss(x, m, "token", num_tokens=4).item() == pytest.approx(1.0)


# ---------------------------------------------------------------------------------------- chunked token log-probs
def _full_logprobs(hidden, weight, targets, temperature, suppress):
    z = (hidden @ weight.T).float() / temperature
    if suppress:
        z[..., suppress] = float("-inf")
    logp = torch.log_softmax(z, -1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    p = torch.softmax(z, -1)
    ent = -(p * torch.where(p > 0, torch.log(p), torch.zeros_like(p))).sum(-1)
    return logp, ent


@pytest.mark.parametrize("chunk", [1, 5, 7, 64])
def test_chunked_logprobs_equal_the_full_computation_values_and_gradients(chunk):
    from fl1_core.losses import token_logprobs

    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(3, 9, 16, generator=g, requires_grad=True)
    weight = torch.randn(40, 16, generator=g, requires_grad=True)
    targets = torch.randint(0, 38, (3, 9), generator=g)  # ids 38, 39 suppressed, never targets
    logp, ent = token_logprobs(hidden, weight, targets, temperature=0.9, suppress_token_ids=[38, 39],
                               chunk_size=chunk, with_entropy=True)
    ref_logp, ref_ent = _full_logprobs(hidden, weight, targets, 0.9, [38, 39])
    torch.testing.assert_close(logp, ref_logp, atol=1e-5, rtol=0)
    torch.testing.assert_close(ent, ref_ent.detach(), atol=1e-5, rtol=0)
    assert not ent.requires_grad
    coef = torch.randn(3, 9, generator=g)
    gh, gw = torch.autograd.grad((logp * coef).sum(), (hidden, weight))
    rh, rw = torch.autograd.grad((ref_logp * coef).sum(), (hidden, weight))
    torch.testing.assert_close(gh, rh, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(gw, rw, atol=1e-5, rtol=1e-5)


def test_entropy_of_suppressed_tokens_is_zero_not_nan():
    from fl1_core.losses import token_logprobs

    # two live tokens of equal logit → H = log 2; three live → log 3
    weight = torch.eye(4)
    hidden = torch.tensor([[[0.0, 0.0, 0.0, 0.0], [5.0, 0.0, 5.0, 5.0]]])
    _, ent = token_logprobs(hidden, weight, torch.tensor([[0, 0]]), suppress_token_ids=[1], with_entropy=True)
    assert torch.isfinite(ent).all()
    torch.testing.assert_close(ent[0, 1], torch.tensor(math.log(3)), atol=1e-3, rtol=0)
    torch.testing.assert_close(ent[0, 0], torch.tensor(math.log(3)), atol=1e-6, rtol=0)


def test_chunked_logprobs_backward_under_autocast_with_fp32_master_weights():
    """bf16 hidden states, fp32 LM head (master weights) under autocast: backward (outside autocast) recomputes the
    logits in the forward's dtype instead of failing on mixed dtypes."""
    from fl1_core.losses import token_logprobs

    g = torch.Generator().manual_seed(1)
    hidden = torch.randn(2, 5, 8, generator=g).to(torch.bfloat16).requires_grad_(True)
    weight = torch.randn(12, 8, generator=g, requires_grad=True)
    targets = torch.randint(0, 12, (2, 5), generator=g)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logp, _ = token_logprobs(hidden, weight, targets, chunk_size=3)
    logp.sum().backward()
    assert hidden.grad.dtype == torch.bfloat16 and weight.grad.dtype == torch.float32
    ref = torch.log_softmax((hidden.detach().float() @ weight.detach().bfloat16().float().T), -1)
    torch.testing.assert_close(logp.detach(), ref.gather(-1, targets.unsqueeze(-1)).squeeze(-1), atol=0.05, rtol=0)
