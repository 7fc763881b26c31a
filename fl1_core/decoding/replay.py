"""Teacher-forced replay of a latent decode (docs/PAPER.md#decoding): one pass over prompt + generated tokens, recorded latents put
back at the slots where decoding fed them, log-probs scored inside the model's forward."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..model import FutureL1Model
from .latent_loop import LatentGeneration
from .prefill import vision_kwargs


@dataclass
class ReplayOutput:
    """Teacher-forced re-scoring of generated tokens: per-step log-probs [B, T], final hidden states [B, T, H] at the
    positions that predicted each generated token, the valid-token mask; logits [B, T, V] only when asked
    (``return_logits``), entropy [B, T] only when asked (``with_entropy``)."""

    logprobs: torch.Tensor
    logits: torch.Tensor | None
    hidden_states: torch.Tensor
    mask: torch.Tensor
    entropy: torch.Tensor | None = None


def unwrap_model(model):
    """The :class:`FutureL1Model` inside a DDP / FSDP / torch.compile wrapper (the model itself otherwise)."""
    while hasattr(model, "module") and not isinstance(model, FutureL1Model):
        model = model.module
    return getattr(model, "_orig_mod", model)


def replay(
    model: FutureL1Model,
    inputs: dict,
    generation: LatentGeneration,
    *,
    temperature: float = 1.0,
    replay_latents: bool = True,
    suppress_token_ids: list[int] | None = None,
    return_logits: bool = False,
    with_entropy: bool = False,
    chunk_size: int = 1024,
) -> ReplayOutput:
    """Recompute log-probs of ``generation`` in ONE pass over prompt + generated tokens.

    With ``replay_latents`` the recorded latent vectors are put back as input embeddings at the positions where
    decoding fed them, so every position sees exactly the context it was sampled in (equal to decoding up to
    float error). Without it (the release's behaviour) latent positions see the static ``<|latent|>`` embedding.
    Gradients flow (call under ``torch.no_grad()`` for old/reference log-probs). ``suppress_token_ids`` must match
    the decoding call (default: the vision placeholders), so log-probs are over the distribution that was sampled.

    Log-probs (and ``with_entropy`` the per-token entropy, without gradient) come from
    :func:`fl1_core.losses.token_logprobs`, ``chunk_size`` positions at a time, so the fp32 ``[B, T, V]`` logits are
    never held (about 10 GB for Qwen3-VL-8B at B = 8, T = 2,000). ``return_logits`` also returns them (tests and
    diagnostics on small models only).
    """
    wrapper, model = model, unwrap_model(model)  # a DDP/FSDP wrapper must see the forward to reduce gradients
    device = model.device
    prompt_ids = inputs["input_ids"].to(device)
    prompt_mask = inputs.get("attention_mask")
    prompt_mask = torch.ones_like(prompt_ids) if prompt_mask is None else prompt_mask.to(device)
    new_ids = generation.sequences.to(device)
    new_mask = generation.valid_mask.to(device)
    n_new = new_ids.shape[1]
    mm_types = inputs.get("mm_token_type_ids")
    vision = {k: v.to(device) for k, v in vision_kwargs(inputs).items()}

    prompt_pos = model.position_ids(
        prompt_ids,
        prompt_mask,
        None if mm_types is None else mm_types.to(device),
        vision.get("image_grid_thw"),
        vision.get("video_grid_thw"),
    )
    steps = torch.arange(1, n_new + 1, device=device).view(1, 1, -1)
    position_ids = torch.cat([prompt_pos, prompt_pos[:, :, -1:] + steps], dim=2)
    ids = torch.cat([prompt_ids, new_ids], dim=1)
    attention_mask = torch.cat([prompt_mask, new_mask.to(prompt_mask.dtype)], dim=1)

    slots, vectors = None, None
    if replay_latents and any(v.numel() for v in generation.latents):
        slots = torch.cat([torch.zeros_like(prompt_mask, dtype=torch.bool), generation.latent_mask.to(device)], dim=1)
        vectors = torch.cat([v for v in generation.latents if v.numel()], dim=0).to(device)
    if suppress_token_ids is None:
        suppress_token_ids = [model.config.image_token_id, model.config.video_token_id]
    out = wrapper(input_ids=ids, attention_mask=attention_mask, position_ids=position_ids, latent_slots=slots,
                  latent_vectors=vectors, score_targets=new_ids,
                  score=dict(temperature=temperature, suppress_token_ids=suppress_token_ids, chunk_size=chunk_size,
                             with_entropy=with_entropy), **vision)
    hidden, logprobs, entropy = out.hidden_states, out.token_logprobs, out.entropy
    head = model.base.lm_head
    logits = None
    if return_logits:
        logits = head(hidden).float()
        if suppress_token_ids:
            logits = logits.index_fill(-1, torch.tensor(suppress_token_ids, device=logits.device), float("-inf"))
    return ReplayOutput(logprobs=logprobs * new_mask, logits=logits, hidden_states=hidden, mask=new_mask,
                        entropy=entropy)
