"""Losses of LA-DAPO as pure functions of tensors (docs/PAPER.md#la-dapo).

Everything here is a pure function: tensors in, tensors out, no state. The conventions follow verl's
``core_algos``: every function states its formula in the docstring, masks are float/bool tensors of the same shape
as the per-token quantity, and aggregation is explicit.

Shapes: ``B`` sequences (responses), ``T`` response tokens. ``mask[b, t] = 1`` marks a token that takes part in the
loss (a sampled response token; padding, prompt and forced tokens are 0).

Every objective of the method is here: the latent SFT loss (docs/PAPER.md#latent-sft: :func:`causal_ce_loss`,
:func:`latent_alignment_loss`, :func:`latent_sft_loss`), the DAPO policy loss and k3 KL (docs/PAPER.md#dapo-loss, docs/PAPER.md#kl), their sum
:func:`policy_objective` (what the RL trainer calls), the per-token :func:`token_entropy`, and chunked token
log-probs (:func:`token_logprobs`).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

__all__ = [
    "causal_ce_loss",
    "init_kl_loss",
    "latent_alignment_loss",
    "latent_sft_loss",
    "policy_objective",
    "token_entropy",
    "masked_mean",
    "aggregate_loss",
    "kl_k3",
    "dapo_policy_loss",
    "token_logprobs",
]

LossAgg = Literal["token", "seq"]

_LOG_RATIO_CLAMP = 20.0
_K3_MAX = 10.0


def _as_float_mask(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return mask.to(dtype=like.dtype, device=like.device)


def _safe_div(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """``num / den`` where ``den != 0``, else ``0`` (no NaN, gradient of ``num`` kept at 0 there)."""
    safe_den = torch.where(den != 0, den, torch.ones_like(den))
    return torch.where(den != 0, num / safe_den, torch.zeros_like(num))


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int | tuple[int, ...] | None = None) -> torch.Tensor:
    """Masked mean  Σ x·m / Σ m  over ``dim`` (all elements when ``dim`` is None).

    Where Σ m = 0 the result is 0 (not NaN). ``mask`` may be bool or float (weights) and broadcasts against ``x``.
    """
    m = _as_float_mask(mask, x)
    m = torch.broadcast_to(m, torch.broadcast_shapes(m.shape, x.shape))
    num = (x * m).sum() if dim is None else (x * m).sum(dim=dim)
    den = m.sum() if dim is None else m.sum(dim=dim)
    return _safe_div(num, den)


def aggregate_loss(
    loss_mat: torch.Tensor,
    mask: torch.Tensor,
    agg: LossAgg = "token",
    num_tokens: float | torch.Tensor | None = None,
    num_seqs: float | torch.Tensor | None = None,
) -> torch.Tensor:
    """Reduce a per-token loss ``loss_mat`` [B, T] to a scalar.

    - ``agg="token"``: one global token mean  L = Σ_{b,t} ℓ_{bt} m_{bt} / N,  with N = Σ m (local) or ``num_tokens``
      when given (e.g. the token count of the whole step across micro-batches and data-parallel processes; then the
      micro-batch losses add up to the full-batch loss).
    - ``agg="seq"``: mean over sequences of per-sequence token means,
      L = (1/S) Σ_{b: Σ_t m_bt > 0} (Σ_t ℓ_bt m_bt / Σ_t m_bt),  S = number of non-empty sequences (local) or
      ``num_seqs`` when given. Sequences without tokens are excluded.

    A zero denominator gives 0 (no NaN).
    """
    m = _as_float_mask(mask, loss_mat)
    if agg == "token":
        total = (loss_mat * m).sum()
        den = (
            m.sum()
            if num_tokens is None
            else torch.as_tensor(num_tokens, dtype=loss_mat.dtype, device=loss_mat.device)
        )
        return _safe_div(total, den)
    if agg == "seq":
        tok_per_seq = m.sum(dim=-1)
        seq_means = _safe_div((loss_mat * m).sum(dim=-1), tok_per_seq)
        den = (
            (tok_per_seq > 0).to(loss_mat.dtype).sum()
            if num_seqs is None
            else torch.as_tensor(num_seqs, dtype=loss_mat.dtype, device=loss_mat.device)
        )
        return _safe_div(seq_means.sum(), den)
    raise ValueError(f"agg must be 'token' or 'seq', got {agg!r}")


def kl_k3(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Per-token k3 ("low_var_kl") estimate of KL(π_θ ‖ π_ref) from samples of π_θ.

    x  = clamp(log π_ref − log π_θ, −20, 20)
    k3 = clamp(eˣ − x − 1, −10, 10)

    k3 ≥ 0 everywhere (eˣ ≥ 1 + x), = 0 iff the log-probs are equal; the gradient flows through ``logp`` (and
    ``ref_logp`` if it requires grad; detach a frozen reference). Returns the same shape as the inputs.
    """
    x = torch.clamp(ref_logp - logp, -_LOG_RATIO_CLAMP, _LOG_RATIO_CLAMP)
    return torch.clamp(torch.exp(x) - x - 1.0, -_K3_MAX, _K3_MAX)


def dapo_policy_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    eps_low: float = 0.2,
    eps_high: float = 0.28,
    dual_clip: float | None = 3.0,
    agg: LossAgg = "token",
    num_tokens: float | torch.Tensor | None = None,
    *,
    num_seqs: float | torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """DAPO clipped policy-gradient loss with clip-higher and dual clip (docs/PAPER.md#dapo-loss).

    Per token, with Δ = log π_θ − log π_old (clamped to ±20 before exponentiating), ρ = e^Δ and advantage A:

        ℓ_clip = max(−A·ρ, −A·clip(ρ, 1 − ε_low, 1 + ε_high))
        ℓ      = ℓ_clip                    if A ≥ 0
        ℓ      = min(ℓ_clip, −A·c)         if A < 0   (dual clip, c = ``dual_clip``; ``None`` disables it)

    The loss is :func:`aggregate_loss` of ℓ over ``mask`` (``agg="token"``: one global token mean, divided by
    ``num_tokens`` when given; ``agg="seq"``: mean of per-sequence token means, divided by ``num_seqs`` when given).
    An all-zero mask gives a loss of 0 with zero gradients.

    Gradients: ℓ has zero gradient w.r.t. ``logp`` where a clipped branch is active — clip-high (A > 0, ρ > 1+ε_high),
    clip-low (A < 0, ρ < 1−ε_low) and dual clip (A < 0, ρ > c). ``old_logp`` and ``advantages`` are detached.

    Args:
        logp: [B, T] log-probs of the sampled tokens under the current policy (requires grad).
        old_logp: [B, T] log-probs under the rollout policy.
        advantages: [B, T] per token, or [B] per sequence (broadcast over T).
        mask: [B, T] 1 for tokens in the loss.

    Returns:
        ``(loss, metrics)``. ``metrics`` are detached 0-d tensors, means over masked tokens of this call (local mask,
        not ``num_tokens``): ``clipfrac_high`` / ``clipfrac_low`` / ``clipfrac_dual`` (fraction of tokens where that
        branch is the active one, as above), ``clipfrac`` (any of them), ``approx_kl`` = mean(−Δ) — the k1 estimate of
        KL(π_old ‖ π_θ) on tokens sampled from π_old —, ``approx_kl_k3`` = mean(e^Δ − 1 − Δ) (k3 of the same KL),
        ``ratio_mean``, ``ratio_max``, ``ratio_min`` (0 when no tokens), ``num_tokens`` (local Σ mask).
    """
    if logp.shape != old_logp.shape or logp.shape != mask.shape:
        raise ValueError(
            f"logp, old_logp and mask must have the same shape, got {tuple(logp.shape)}, {tuple(old_logp.shape)}, "
            f"{tuple(mask.shape)}"
        )
    if eps_low < 0 or eps_high < 0:
        raise ValueError(f"eps_low and eps_high must be >= 0, got {eps_low}, {eps_high}")
    if dual_clip is not None and dual_clip <= 1.0:
        raise ValueError(f"dual_clip must be > 1 (or None to disable), got {dual_clip}")
    adv = advantages.detach().to(dtype=logp.dtype, device=logp.device)
    if adv.dim() == logp.dim() - 1 and adv.shape == logp.shape[:-1]:
        adv = adv.unsqueeze(-1)
    elif adv.shape != logp.shape:
        raise ValueError(f"advantages must be [B] or [B, T] matching logp {tuple(logp.shape)}, got {tuple(adv.shape)}")
    adv = torch.broadcast_to(adv, logp.shape)

    log_ratio = torch.clamp(logp - old_logp.detach(), -_LOG_RATIO_CLAMP, _LOG_RATIO_CLAMP)
    ratio = torch.exp(log_ratio)
    pg_unclipped = -adv * ratio
    pg_clipped = -adv * torch.clamp(ratio, 1.0 - eps_low, 1.0 + eps_high)
    pg_clip = torch.maximum(pg_unclipped, pg_clipped)
    negative = adv < 0
    if dual_clip is not None:
        pg_dual = torch.minimum(pg_clip, -adv * dual_clip)
        per_token = torch.where(negative, pg_dual, pg_clip)
    else:
        per_token = pg_clip

    loss = aggregate_loss(per_token, mask, agg=agg, num_tokens=num_tokens, num_seqs=num_seqs)

    with torch.no_grad():
        m = _as_float_mask(mask, logp).detach()
        r = ratio.detach()
        is_high = (adv > 0) & (r > 1.0 + eps_high)
        is_low = negative & (r < 1.0 - eps_low)
        is_dual = negative & (r > dual_clip) if dual_clip is not None else torch.zeros_like(is_high)
        lr = log_ratio.detach()
        sel = m > 0
        any_tok = sel.any()
        zero = torch.zeros((), dtype=logp.dtype, device=logp.device)
        metrics = {
            "clipfrac_high": masked_mean(is_high.to(logp.dtype), m),
            "clipfrac_low": masked_mean(is_low.to(logp.dtype), m),
            "clipfrac_dual": masked_mean(is_dual.to(logp.dtype), m),
            "clipfrac": masked_mean((is_high | is_low | is_dual).to(logp.dtype), m),
            "approx_kl": masked_mean(-lr, m),
            "approx_kl_k3": masked_mean(torch.expm1(lr) - lr, m),
            "ratio_mean": masked_mean(r, m),
            "ratio_max": torch.where(any_tok, r.masked_fill(~sel, -torch.inf).max(), zero),
            "ratio_min": torch.where(any_tok, r.masked_fill(~sel, torch.inf).min(), zero),
            "num_tokens": m.sum(),
        }
    return loss, metrics


# ------------------------------------------------------------------------------------------- token log-probs, chunked
def _compute_dtype(hidden: torch.Tensor, weight: torch.Tensor) -> torch.dtype:
    """The matmul dtype of the LM head: autocast's when it is on (bf16 over fp32 master weights), else the common
    dtype. Fixed at forward time so the backward's recomputation matches (backward runs outside autocast)."""
    if torch.is_autocast_enabled(hidden.device.type):
        return torch.get_autocast_dtype(hidden.device.type)
    return torch.promote_types(hidden.dtype, weight.dtype)


def _chunk_logits(hidden: torch.Tensor, weight: torch.Tensor, temperature: float,
                  suppress: torch.Tensor | None, dtype: torch.dtype | None = None) -> torch.Tensor:
    dtype = dtype or torch.promote_types(hidden.dtype, weight.dtype)
    z = (hidden.to(dtype) @ weight.to(dtype).T).float() / temperature
    if suppress is not None:
        z = z.index_fill(-1, suppress, float("-inf"))
    return z


class _ChunkedLogProbs(torch.autograd.Function):
    """log π(y) of rows of ``hidden`` under the LM head ``weight``, forward and backward chunk by chunk. One autograd
    node (so a DDP hook on ``weight`` fires once); saves only ``hidden``, ``weight``, targets and logsumexp.

    Backward, with g = ∂L/∂log π(y_t):  ∂L/∂z_t = g_t (onehot(y_t) − π_t) / τ,  ∂L/∂h_t = ∂L/∂z_t · W,
    ∂L/∂W = Σ_t (∂L/∂z_t)ᵀ h_t.
    """

    @staticmethod
    def forward(ctx, hidden, weight, targets, temperature, suppress, chunk):
        logp = torch.empty(hidden.shape[0], dtype=torch.float32, device=hidden.device)
        lse = torch.empty_like(logp)
        ctx.dtype = dtype = _compute_dtype(hidden, weight)
        for s in range(0, hidden.shape[0], chunk):
            z = _chunk_logits(hidden[s : s + chunk], weight, temperature, suppress, dtype)
            lse[s : s + chunk] = torch.logsumexp(z, dim=-1)
            logp[s : s + chunk] = z.gather(-1, targets[s : s + chunk, None]).squeeze(-1) - lse[s : s + chunk]
        ctx.save_for_backward(hidden, weight, targets, lse)
        ctx.temperature, ctx.suppress, ctx.chunk = temperature, suppress, chunk
        return logp

    @staticmethod
    def backward(ctx, grad):
        hidden, weight, targets, lse = ctx.saved_tensors
        need_h, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        grad_h = torch.zeros_like(hidden, dtype=torch.float32) if need_h else None
        grad_w = torch.zeros_like(weight, dtype=torch.float32) if need_w else None
        for s in range(0, hidden.shape[0], ctx.chunk):
            h, g = hidden[s : s + ctx.chunk], grad[s : s + ctx.chunk].float()
            z = _chunk_logits(h, weight, ctx.temperature, ctx.suppress, ctx.dtype)
            dz = -torch.exp(z - lse[s : s + ctx.chunk, None]) * g[:, None]
            dz.scatter_add_(-1, targets[s : s + ctx.chunk, None], g[:, None])
            dz /= ctx.temperature
            if need_h:
                grad_h[s : s + ctx.chunk] = dz @ weight.float()
            if need_w:
                grad_w += dz.T @ h.float()
        return (None if grad_h is None else grad_h.to(hidden.dtype),
                None if grad_w is None else grad_w.to(weight.dtype), None, None, None, None)


def token_logprobs(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    *,
    temperature: float = 1.0,
    suppress_token_ids: list[int] | None = None,
    chunk_size: int = 1024,
    with_entropy: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Log-probs of ``targets`` under ``softmax(h W^T / τ)`` (and, without gradient, the entropy), computed
    ``chunk_size`` positions at a time so the fp32 ``[B, T, V]`` logits are never held, in forward or backward:

        log π(y_t) = z_{t, y_t} − logsumexp_v z_{t, v},   z_t = h_t W^T / τ   (suppressed ids: z = −∞)
        H_t        = −Σ_v π_v log π_v

    ``hidden`` [B, T, d], ``weight`` [V, d] (the LM head), ``targets`` [B, T]. Equal to the full computation up to
    float summation order (values and gradients).
    """
    b, t, d = hidden.shape
    chunk = max(1, int(chunk_size))
    flat_h, flat_y = hidden.reshape(b * t, d), targets.reshape(b * t)
    suppress = (torch.tensor(suppress_token_ids, device=hidden.device, dtype=torch.long)
                if suppress_token_ids else None)
    logp = _ChunkedLogProbs.apply(flat_h, weight, flat_y, float(temperature), suppress, chunk).view(b, t)
    entropy = None
    if with_entropy:
        ents = []
        with torch.no_grad():
            for s in range(0, b * t, chunk):
                z = _chunk_logits(flat_h[s : s + chunk], weight, float(temperature), suppress,
                                  _compute_dtype(flat_h, weight))
                ents.append(torch.special.entr(torch.softmax(z, dim=-1)).sum(-1))
        entropy = (torch.cat(ents) if ents else flat_h.new_zeros(0, dtype=torch.float32)).view(b, t)
    return logp, entropy


# ------------------------------------------------------------------------------ latent SFT (docs/PAPER.md#latent-sft)
def causal_ce_loss(logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Next-token cross-entropy over positions with ``labels[t+1] != -100`` (fp32), weighted by ``weights[t+1]``
    when given (e.g. the option letters of :attr:`fl1_core.sft.SFTConfig.letter_weight`):

        CE = Σ_{t ∈ S} w_{t+1} · (−log softmax(z_t)[x_{t+1}]) / Σ_{t ∈ S} w_{t+1},   S = {t : labels[t+1] ≠ −100}

    (w ≡ 1 is the plain mean.)
    """

    shift_logits = logits[:, :-1].float()
    shift_labels = labels[:, 1:]
    if not bool((shift_labels != -100).any()):
        return shift_logits.sum() * 0.0
    flat_logits, flat_labels = shift_logits.reshape(-1, shift_logits.shape[-1]), shift_labels.reshape(-1)
    if weights is None:
        return F.cross_entropy(flat_logits, flat_labels, ignore_index=-100)
    per_token = F.cross_entropy(flat_logits, flat_labels, ignore_index=-100, reduction="none")
    w = weights[:, 1:].reshape(-1).float() * (flat_labels != -100).float()
    return (per_token * w).sum() / w.sum().clamp_min(1e-12)


def init_kl_loss(logits: torch.Tensor, init_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """KL from the initial model's next-token distribution to the trained one's, averaged over the CE positions
    (fp32; ``init_logits`` are detached):

        KL = (1/|S|) Σ_{t ∈ S} Σ_v π_init(v | t) · (log π_init(v | t) − log π_θ(v | t)),   S = {t : labels[t+1] ≠ −100}

    The forward direction is distillation from the initial model: every token it finds likely keeps mass.
    """

    mask = labels[:, 1:] != -100
    if not bool(mask.any()):
        return logits.sum() * 0.0
    logp = F.log_softmax(logits[:, :-1][mask].float(), dim=-1)
    init_logp = F.log_softmax(init_logits[:, :-1][mask].detach().float(), dim=-1)
    return F.kl_div(logp, init_logp, log_target=True, reduction="batchmean")


def latent_alignment_loss(pred: torch.Tensor, target: torch.Tensor, kind: str = "mse") -> torch.Tensor:
    """Alignment of the projected hidden state before each latent slot with the (detached) latent input there
    (the shift of docs/PAPER.md#latent-sft: ``pred`` = project(h_t), ``target`` = e_{t+1}), rows [N, H]:

        mse: (1/(N·H)) Σ ‖pred − target‖²        sim: (1/N) Σ (1 − cos(pred, target))
    """

    if pred.shape[0] == 0:
        return pred.new_zeros((), dtype=torch.float32)
    if kind == "mse":
        return F.mse_loss(pred.float(), target.float().detach())
    if kind == "sim":
        return (1.0 - F.cosine_similarity(pred.float(), target.float().detach(), dim=-1)).mean()
    raise ValueError(f"latent loss must be 'mse' or 'sim', got {kind!r}")


def latent_sft_loss(ce: torch.Tensor, latent: torch.Tensor, latent_lambda: float) -> torch.Tensor:
    """The latent SFT objective: ``L = CE + λ · L_latent``."""
    return ce + latent_lambda * latent


# ------------------------------------------------------------------------------------------ RL (docs/PAPER.md#la-dapo)
def token_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Per-position entropy ``H = −Σ_v p_v log p_v``, ``p = softmax(z)``, of logits ``[..., V]``; suppressed tokens
    (``z = −∞``, ``p = 0``) add 0, not NaN."""
    return torch.special.entr(torch.softmax(logits.float(), dim=-1)).sum(-1)


def policy_objective(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    ref_logp: torch.Tensor | None = None,
    kl_beta: float = 0.0,
    eps_low: float = 0.2,
    eps_high: float = 0.28,
    dual_clip: float | None = 3.0,
    agg: LossAgg = "token",
    num_tokens: float | None = None,
    num_seqs: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """The RL loss the trainer minimises:

        loss = agg(ℓ_DAPO(ρ, A)) + β · agg(k3(log π_ref − log π_θ))     (β = ``kl_beta``; no KL term without
                                                                           ``ref_logp`` or with β = 0)

    Returns ``(loss, policy_loss, kl_loss, kl_per_token, dapo_metrics)``.
    """
    pg, metrics = dapo_policy_loss(logp, old_logp, advantages, mask, eps_low=eps_low, eps_high=eps_high,
                                   dual_clip=dual_clip, agg=agg, num_tokens=num_tokens, num_seqs=num_seqs)
    kl_tok = torch.zeros_like(logp)
    kl = logp.new_zeros(())
    if ref_logp is not None and kl_beta != 0.0:
        kl_tok = kl_k3(logp, ref_logp)
        kl = aggregate_loss(kl_tok, mask, agg=agg, num_tokens=num_tokens, num_seqs=num_seqs)
    return pg + kl_beta * kl, pg, kl, kl_tok, metrics
