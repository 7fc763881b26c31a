"""Frozen reference: the latent decode loop as it was before the static-cache loop replaced it.

A dynamic KV cache grown by concatenation, a host sync every step (``finished.all()``), prefill per row (a group of
n samples of one prompt prefills the prompt n times) and peft's per-call embedding copy. Kept unchanged, outside the
library, only for ``tests/test_static_decode.py`` (equality of tokens and latents) and
``benchmarks/static_decode.py`` (side-by-side ratios). Do not use it anywhere else.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers import DynamicCache

from fl1_core.config import LatentConfig
from fl1_core.decoding import LatentGeneration
from fl1_core.model import FutureL1Model

VISION_KEYS = ("pixel_values", "image_grid_thw", "pixel_values_videos", "video_grid_thw")


def sample_next_token(
    logits: torch.Tensor,
    *,
    do_sample: bool,
    temperature: float,
    top_p: float,
    generator: torch.Generator | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pick the next token per row; return (token [B], log-softmax(logits / temperature) [B, V]).

    Greedy: argmax. Sampling: temperature, then nucleus filtering keeping the smallest prefix of the sorted
    distribution whose mass reaches ``top_p`` (at least one token), then a multinomial draw.
    """
    logits = logits.float()
    logprobs = F.log_softmax(logits / (temperature if do_sample else 1.0), dim=-1)
    if not do_sample:
        return logits.argmax(dim=-1), logprobs
    probs = logprobs.exp()
    if top_p < 1.0:
        sorted_p, order = probs.sort(dim=-1, descending=True)
        before = sorted_p.cumsum(dim=-1) - sorted_p  # mass strictly before each token
        sorted_p = sorted_p.masked_fill(before >= top_p, 0.0)
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_p)
    token = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
    return token, logprobs


def _vision_kwargs(inputs: dict) -> dict:
    return {k: inputs[k] for k in VISION_KEYS if inputs.get(k) is not None}


def _eos_ids(model: FutureL1Model, eos_token_id) -> torch.Tensor:
    eos = eos_token_id if eos_token_id is not None else model.base.generation_config.eos_token_id
    eos = [eos] if isinstance(eos, int) else list(eos or [])
    return torch.tensor(eos, dtype=torch.long, device=model.device)


@torch.no_grad()
def reference_generate_with_latents(
    model: FutureL1Model,
    inputs: dict,
    *,
    max_new_tokens: int,
    latent_config: LatentConfig | None = None,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_p: float = 1.0,
    seed: int | None = None,
    eos_token_id: int | list[int] | None = None,
    return_logits: bool = False,
    tokenizer=None,
    suppress_token_ids: list[int] | None = None,
    latent_intervention=None,
) -> LatentGeneration:
    """Batched interleaved latent decoding (docs/PAPER.md#decoding) from processor ``inputs`` (left-padded prompts).

    ``latent_intervention(fed [B, H], index [B]) -> [B, H]`` replaces the vectors fed at latent slots (``index`` =
    how many latents each row was fed before this one): the audit's causal ablations. ``latents`` records what was
    actually fed.

    ``latent_config`` defaults to ``model.latent_config`` (budget: fixed → exactly ``max_latent_token``; loose →
    ``loose_cap`` or ``round(max_latent_token × loose_multiplier)``). ``seed`` makes sampling reproducible.
    ``suppress_token_ids`` can never be sampled; by default the vision placeholders ``<|image_pad|>`` and
    ``<|video_pad|>`` (a model that emitted one would make a teacher-forced replay read it as a vision slot).
    """
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    if do_sample and temperature <= 0:
        raise ValueError(f"temperature must be > 0 when sampling, got {temperature}")
    cfg = latent_config or model.latent_config
    latent_id, start_id, end_id = cfg.require_token_ids()
    budget, loose = cfg.decode_budget, cfg.budget_mode == "loose"
    device = model.device
    input_ids = inputs["input_ids"].to(device)
    attention_mask = inputs.get("attention_mask")
    attention_mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask.to(device)
    mm_types = inputs.get("mm_token_type_ids")
    vision = {k: v.to(device) for k, v in _vision_kwargs(inputs).items()}
    eos = _eos_ids(model, eos_token_id)
    pad_id = model.base.generation_config.pad_token_id
    pad_id = int(eos[0]) if pad_id is None else int(pad_id)
    if suppress_token_ids is None:
        suppress_token_ids = [model.config.image_token_id, model.config.video_token_id]
    suppressed = torch.tensor(suppress_token_ids, dtype=torch.long, device=device)
    generator = None
    if seed is not None:
        generator = torch.Generator(device=device).manual_seed(seed)

    batch = input_ids.shape[0]
    position_ids = model.position_ids(
        input_ids,
        attention_mask,
        None if mm_types is None else mm_types.to(device),
        vision.get("image_grid_thw"),
        vision.get("video_grid_thw"),
    )
    cache = DynamicCache(config=model.base.config.get_text_config())
    out = model.base.model(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids,
        past_key_values=cache,
        use_cache=True,
        mm_token_type_ids=None if mm_types is None else mm_types.to(device),
        **vision,
    )
    hidden = out.last_hidden_state[:, -1]
    next_pos = position_ids[:, :, -1:]
    embed = model.input_embeddings()

    in_latent = torch.zeros(batch, dtype=torch.bool, device=device)
    budget_left = torch.zeros(batch, dtype=torch.long, device=device)
    finished = torch.zeros(batch, dtype=torch.bool, device=device)
    lengths = torch.zeros(batch, dtype=torch.long, device=device)
    fed_count = torch.zeros(batch, dtype=torch.long, device=device)
    rec_tokens, rec_latent, rec_forced, rec_logp, rec_vec, rec_logits = [], [], [], [], [], []

    for step in range(max_new_tokens):
        logits = model.base.lm_head(hidden)
        if suppressed.numel():
            logits = logits.index_fill(-1, suppressed, float("-inf"))
        token, logprobs = sample_next_token(
            logits, do_sample=do_sample, temperature=temperature, top_p=top_p, generator=generator
        )
        forced_start = torch.zeros_like(finished)
        if step == 0 and cfg.force_initial_latent:
            forced_start = token != start_id
            token = torch.full_like(token, start_id)

        sampled_end = token == end_id
        spent = budget_left <= 0
        exit_now = in_latent & (spent | (sampled_end & loose))
        forced_end = exit_now & ~(sampled_end & loose)
        emit_latent = in_latent & ~exit_now
        emitted = torch.where(emit_latent, torch.full_like(token, latent_id), token)
        emitted = torch.where(exit_now, torch.full_like(token, end_id), emitted)
        emitted = torch.where(finished, torch.full_like(token, pad_id), emitted)
        active = ~finished
        emit_latent &= active

        entering = active & ~in_latent & (emitted == start_id)
        in_latent = (in_latent & ~exit_now) | entering
        budget_left = torch.where(entering, torch.full_like(budget_left, budget), budget_left - emit_latent.long())

        fed_latent = model.latent_feed(hidden)
        if latent_intervention is not None:
            fed_latent = latent_intervention(fed_latent, fed_count).to(fed_latent.dtype)
        fed_count += emit_latent.long()
        next_embeds = torch.where(emit_latent.unsqueeze(-1), fed_latent.to(hidden.dtype), embed(emitted))

        rec_tokens.append(emitted)
        rec_latent.append(emit_latent)
        rec_forced.append(active & (emit_latent | forced_end | forced_start))
        rec_logp.append(logprobs.gather(-1, emitted.unsqueeze(-1)).squeeze(-1))
        rec_vec.append(fed_latent.float())
        if return_logits:
            rec_logits.append(logits.float())
        lengths += active.long()
        finished |= active & torch.isin(emitted, eos)
        if bool(finished.all()) or step == max_new_tokens - 1:
            break

        attention_mask = torch.cat([attention_mask, attention_mask.new_ones(batch, 1)], dim=1)
        next_pos = next_pos + 1
        out = model.base.model(
            inputs_embeds=next_embeds.unsqueeze(1),
            attention_mask=attention_mask,
            position_ids=next_pos,
            past_key_values=cache,
            use_cache=True,
        )
        hidden = out.last_hidden_state[:, -1]

    sequences = torch.stack(rec_tokens, dim=1)
    latent_mask = torch.stack(rec_latent, dim=1)
    vectors = torch.stack(rec_vec, dim=1)
    latents = [vectors[i][latent_mask[i]] for i in range(batch)]
    tok = tokenizer or getattr(model, "processor", None)
    tok = getattr(tok, "tokenizer", tok)
    texts = [
        tok.decode(sequences[i, : int(lengths[i])].tolist(), skip_special_tokens=False) if tok is not None else ""
        for i in range(batch)
    ]
    span_counts = [span_counts_of(sequences[i, : int(lengths[i])].tolist(), start_id, latent_id, end_id) for i in range(batch)]
    return LatentGeneration(
        sequences=sequences,
        lengths=lengths,
        texts=texts,
        latents=latents,
        latent_mask=latent_mask,
        span_counts=span_counts,
        forced_mask=torch.stack(rec_forced, dim=1),
        logprobs=torch.stack(rec_logp, dim=1),
        step_logits=torch.stack(rec_logits, dim=1) if return_logits else None,
    )


def span_counts_of(ids: list[int], start_id: int, latent_id: int, end_id: int) -> list[int]:
    """Latents per span of a generated token sequence, a trailing span left open included."""
    counts, current = [], None
    for t in ids:
        if t == start_id:
            current = 0
        elif t == latent_id and current is not None:
            current += 1
        elif t == end_id and current is not None:
            counts.append(current)
            current = None
    return counts + [current] if current is not None else counts
