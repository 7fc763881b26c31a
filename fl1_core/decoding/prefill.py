"""Prefill once per prompt into a preallocated (static) KV cache shared by the prompt's samples, and the decode step.

Prefill runs the vision tower and the language model once over the P distinct prompts (left-padded, length L). Its
keys and values, last hidden state, attention mask and last positions are then repeated to the R = Σ_p n_p rows of
the decode (the n_p samples of prompt p are consecutive rows) and written into a preallocated cache of S slots per
row (:class:`WindowedStaticCache`, built of ``transformers``' ``StaticLayer``), S = L + T rounded up to ``bucket``.
Keys and values are written in place (the position counter is a tensor); attention reads a window of the first W
slots, W = the written slots rounded up to ``bucket`` (capped at S), the not-yet-written ones hidden by the causal
mask. With ``bucket = 1`` (eager) attention reads exactly what was written, as a growing cache does, without its
copies; with a larger bucket every step inside one bucket has the same shapes, so the step is captured once per
bucket as a CUDA graph (:func:`step_function`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from transformers import Cache, DynamicCache, StaticLayer

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


class WindowedStaticLayer(StaticLayer):
    """A preallocated layer whose attention reads only its first ``window`` slots (a host-side int)."""

    def __init__(self, max_cache_len: int, fixed_shapes: bool):
        super().__init__(max_cache_len=max_cache_len)
        self.window = max_cache_len
        # transformers materialises the causal mask for compileable caches; an exact window needs none
        self.is_compileable = fixed_shapes

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        keys, values = super().update(key_states, value_states, *args, **kwargs)
        return keys[:, :, : self.window], values[:, :, : self.window]

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.window, 0


class WindowedStaticCache(Cache):
    """One :class:`WindowedStaticLayer` per decoder layer (full attention only, as in Qwen3-VL's language model)."""

    def __init__(self, text_config, max_cache_len: int, bucket: int):
        kinds = set(getattr(text_config, "layer_types", None) or ["full_attention"])
        if kinds != {"full_attention"}:
            raise ValueError(f"the static decode cache supports full attention only, got layer types {sorted(kinds)}")
        super().__init__(layers=[WindowedStaticLayer(max_cache_len, bucket > 1)
                                 for _ in range(text_config.num_hidden_layers)])
        self.max_cache_len, self.bucket = max_cache_len, bucket

    def set_window(self, written: int) -> int:
        """Attend over the first ``written`` slots rounded up to the bucket; returns that window W."""
        window = min(self.max_cache_len, -(-written // self.bucket) * self.bucket)
        for layer in self.layers:
            layer.window = window
        return window


@dataclass
class PrefilledRows:
    """The decode's starting state for R rows: the cache, the [R, S] attention mask (prompt mask then ones), the
    prompt's last 4-row position [4, R, 1], the prompt's last hidden state [R, H], the prompt width L, and whether
    any prompt is left-padded."""

    cache: WindowedStaticCache
    attention_mask: torch.Tensor
    last_position: torch.Tensor
    hidden: torch.Tensor
    prompt_width: int
    padded: bool

    def step_mask(self, window: int) -> torch.Tensor | None:
        """The attention mask of a step reading ``window`` slots: none when the window is exactly the written slots
        and no prompt is padded (every slot is visible), so attention takes its unmasked kernel."""
        if not self.padded and self.cache.bucket == 1:
            return None
        return self.attention_mask[:, :window]


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
    cache = WindowedStaticCache(text_config, slots, bucket)
    for index, layer in enumerate(prompt_cache.layers):
        cache.update(layer.keys.index_select(0, rows), layer.values.index_select(0, rows), index)
    del prompt_cache
    full_mask = torch.ones(len(rows), slots, dtype=mask.dtype, device=device)
    full_mask[:, :width] = mask.index_select(0, rows)
    return PrefilledRows(cache=cache, attention_mask=full_mask,
                         last_position=position_ids[:, :, -1:].index_select(1, rows),
                         hidden=out.last_hidden_state[:, -1].index_select(0, rows), prompt_width=width,
                         padded=not bool(mask.all()))


def decode_step(language_model: torch.nn.Module, embeds: torch.Tensor, position_ids: torch.Tensor,
                attention_mask: torch.Tensor, cache: WindowedStaticCache) -> torch.Tensor:
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
        # the attention window is an int that grows bucket by bucket: after its second value dynamo compiles one
        # graph with a symbolic window, and the CUDA graph trees record one replayable graph per window
        _compiled_step = torch.compile(decode_step, mode="reduce-overhead")
    compiled = _compiled_step

    def graphed_step(*args) -> torch.Tensor:
        torch.compiler.cudagraph_mark_step_begin()  # the previous replay's outputs are no longer read
        return compiled(*args).clone()

    return graphed_step
