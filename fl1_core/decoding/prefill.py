"""Prefill once per prompt into a preallocated (static) KV cache shared by the prompt's samples, and the decode step.

Prefill runs the vision tower and the language model once over the P distinct prompts (left-padded, length L). Its
keys and values, last hidden state, attention mask and last positions are then repeated to the R = Σ_p n_p rows of
the decode (the n_p samples of prompt p are consecutive rows) and written into a ``transformers.StaticCache`` of S
slots, S = L + T rounded up to ``bucket``. Every decode step then has the same shapes: one input embedding per row,
the cache's own position counter (a tensor) advanced in place, the [R, S] attention mask whose not-yet-written slots
are hidden by the causal mask. That makes the step capturable as a CUDA graph (:func:`step_function`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from transformers import DynamicCache, StaticCache

from ..model import FutureL1Model

logger = logging.getLogger(__name__)

VISION_KEYS = ("pixel_values", "image_grid_thw", "pixel_values_videos", "video_grid_thw")
COMPILE_BUCKET = 128  # cache slots are rounded up to a multiple of this under compilation (fewer distinct shapes)


def vision_kwargs(inputs: dict) -> dict:
    """The vision tensors of processor ``inputs`` (those present)."""
    return {k: inputs[k] for k in VISION_KEYS if inputs.get(k) is not None}


def sample_counts(num_samples: int | Sequence[int], prompts: int) -> list[int]:
    """Rows per prompt: ``num_samples`` for every prompt, or one count per prompt (each >= 1)."""
    counts = [int(num_samples)] * prompts if isinstance(num_samples, int) else [int(n) for n in num_samples]
    if len(counts) != prompts or min(counts, default=1) < 1:
        raise ValueError(f"num_samples must be >= 1 per prompt for {prompts} prompts, got {num_samples!r}")
    return counts


@dataclass
class PrefilledRows:
    """The decode's starting state for R rows: the cache, the [R, S] attention mask (prompt mask then ones), the
    prompt's last 4-row position [4, R, 1], the prompt's last hidden state [R, H], and the prompt width L."""

    cache: StaticCache
    attention_mask: torch.Tensor
    last_position: torch.Tensor
    hidden: torch.Tensor
    prompt_width: int


def prefill_shared(
    model: FutureL1Model, inputs: dict, counts: Sequence[int], max_new_tokens: int, bucket: int = 1
) -> PrefilledRows:
    """One prefill over the distinct prompts of ``inputs``, expanded to ``sum(counts)`` rows (see module docstring)."""
    device = model.device
    input_ids = inputs["input_ids"].to(device)
    mask = inputs.get("attention_mask")
    mask = torch.ones_like(input_ids) if mask is None else mask.to(device)
    mm_types = inputs.get("mm_token_type_ids")
    mm_types = None if mm_types is None else mm_types.to(device)
    vision = {k: v.to(device) for k, v in vision_kwargs(inputs).items()}
    position_ids = model.position_ids(input_ids, mask, mm_types, vision.get("image_grid_thw"),
                                      vision.get("video_grid_thw"))
    text_config = model.base.config.get_text_config()
    prompt_cache = DynamicCache(config=text_config)
    out = model.base.model(input_ids=input_ids, attention_mask=mask, position_ids=position_ids,
                           past_key_values=prompt_cache, use_cache=True, mm_token_type_ids=mm_types, **vision)
    rows = torch.repeat_interleave(torch.arange(len(counts), device=device),
                                   torch.tensor(list(counts), device=device))
    width = input_ids.shape[1]
    slots = -(-(width + max_new_tokens) // bucket) * bucket
    cache = StaticCache(config=text_config, max_cache_len=slots)
    for index, layer in enumerate(prompt_cache.layers):
        cache.update(layer.keys.index_select(0, rows), layer.values.index_select(0, rows), index)
    del prompt_cache
    full_mask = torch.ones(len(rows), slots, dtype=mask.dtype, device=device)
    full_mask[:, :width] = mask.index_select(0, rows)
    return PrefilledRows(cache=cache, attention_mask=full_mask,
                         last_position=position_ids[:, :, -1:].index_select(1, rows),
                         hidden=out.last_hidden_state[:, -1].index_select(0, rows), prompt_width=width)


def decode_step(language_model: torch.nn.Module, embeds: torch.Tensor, position_ids: torch.Tensor,
                attention_mask: torch.Tensor, cache: StaticCache) -> torch.Tensor:
    """One step of the language model: input embeddings [R, H] at positions [4, R, 1] → final hidden states [R, H]."""
    out = language_model(inputs_embeds=embeds.unsqueeze(1), attention_mask=attention_mask, position_ids=position_ids,
                         past_key_values=cache, use_cache=True)
    return out.last_hidden_state[:, -1]


_compiled_step: Callable | None = None


def step_function(device: torch.device, compile_step: bool) -> Callable:
    """:func:`decode_step`, compiled with CUDA graphs (``torch.compile(mode="reduce-overhead")``) when
    ``compile_step`` and the model is on CUDA; plain eager otherwise (CPU, or compilation not asked for)."""
    global _compiled_step
    if not compile_step:
        return decode_step
    if device.type != "cuda":
        logger.info("decode step compilation is CUDA-only; running eager on %s", device)
        return decode_step
    if _compiled_step is None:
        _compiled_step = torch.compile(decode_step, mode="reduce-overhead", dynamic=False)
    compiled = _compiled_step

    def graphed_step(*args) -> torch.Tensor:
        torch.compiler.cudagraph_mark_step_begin()  # the previous replay's outputs are no longer read
        return compiled(*args).clone()

    return graphed_step
