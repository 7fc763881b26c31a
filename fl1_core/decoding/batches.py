"""Decoding a list of prompts batch by batch: evaluation, held-out scoring, the audit, the SFT report and the base's
measures all decode through :func:`decode_batches`, which encodes each batch with the one prompt path
(:func:`fl1_core.data.prompt_inputs.build_prompt_inputs`) and decodes it with the one decode loop
(:func:`~fl1_core.decoding.latent_loop.generate_with_latents`)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..config import LatentConfig
from ..data.collator import PromptExample
from ..data.prompt_inputs import build_prompt_inputs
from ..model import FutureL1Model
from ..placement import to_device
from .latent_loop import LatentGeneration, generate_with_latents


@dataclass
class DecodedBatch:
    """One batch: the positions of its prompts in the list, its inputs (on the model's device), what the loop
    returned (row ``b`` is prompt ``rows[b]``) and how long encoding and decoding took (seconds)."""

    rows: list[int]
    inputs: dict[str, torch.Tensor]
    generation: LatentGeneration
    encode_s: float
    decode_s: float


def decode_batches(
    model: FutureL1Model,
    processor: Any,
    items: Sequence[Any],
    *,
    prompt_of: Callable[[Any], PromptExample] | None = None,
    batch_size: int = 16,
    system_prompt: str = "interleaved",
    question_max_pixels: int | None = None,
    assistant_prefix: str | Callable[[Any], str] = "",
    max_new_tokens: int = 256,
    latent_config: LatentConfig | None = None,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_p: float = 1.0,
    seed_of: Callable[[list[int]], int | None] | None = None,
    intervention_of: Callable[[list[int]], Callable | None] | None = None,
    progress: bool = False,
    desc: str = "decode",
) -> Iterator[DecodedBatch]:
    """Decode ``items`` in batches of ``batch_size`` (in order), yielding one :class:`DecodedBatch` each.

    ``items`` are :class:`~fl1_core.data.collator.PromptExample` s, or anything ``prompt_of`` turns into one (called
    per batch, so frames are loaded only for the batch being decoded; e.g. :func:`fl1_core.data.examples.rl_prompt`
    for RL records).

    Greedy by default; ``do_sample`` with ``temperature`` / ``top_p`` samples, seeded per batch by
    ``seed_of(rows)``. ``intervention_of(rows)`` gives the batch's ``latent_intervention`` (the audit's ablations).
    ``assistant_prefix`` starts every response (see :func:`fl1_core.data.prompt_inputs.encode_prompt`), or, as a
    callable, gives each item's own (called on the item, before ``prompt_of``). The model is
    in eval mode while batches are decoded and is put back as it was when the iteration ends.
    """
    from tqdm.auto import tqdm

    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    tokenizer = getattr(processor, "tokenizer", processor)
    was_training = model.training
    model.eval()
    bar = tqdm(total=len(items), desc=desc, disable=not progress, leave=False)
    try:
        for start in range(0, len(items), batch_size):
            rows = list(range(start, min(start + batch_size, len(items))))
            t0 = time.perf_counter()
            prompts = [prompt_of(items[r]) if prompt_of is not None else items[r] for r in rows]
            prefix = ([assistant_prefix(items[r]) for r in rows] if callable(assistant_prefix)
                      else assistant_prefix)
            inputs = build_prompt_inputs(processor, prompts, system_prompt, question_max_pixels,
                                         assistant_prefix=prefix)
            inputs = to_device(inputs, model.device)
            t1 = time.perf_counter()
            generation = generate_with_latents(
                model, inputs, max_new_tokens=max_new_tokens, latent_config=latent_config, do_sample=do_sample,
                temperature=temperature, top_p=top_p, seed=seed_of(rows) if seed_of is not None else None,
                tokenizer=tokenizer, latent_intervention=intervention_of(rows) if intervention_of else None)
            t2 = time.perf_counter()
            yield DecodedBatch(rows, inputs, generation, encode_s=t1 - t0, decode_s=t2 - t1)
            bar.update(len(rows))
    finally:
        bar.close()
        model.train(was_training)


def decoded_texts(batches: Iterator[DecodedBatch]) -> list[str]:
    """Every response's text, in item order."""
    return [text for batch in batches for text in batch.generation.texts]


__all__ = ["DecodedBatch", "decode_batches", "decoded_texts"]
