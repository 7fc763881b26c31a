"""Greedy interleaved decoding of many prompts in batches (evaluation, held-out measures, the SFT report)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..config import LatentConfig
from ..model import FutureL1Model
from .latent_loop import generate_with_latents


@dataclass
class GreedyOutput:
    """One prompt's greedy decode: its text (special tokens kept) and the latents per span."""

    text: str
    span_counts: list[int]


@torch.no_grad()
def greedy_decode(
    model: FutureL1Model,
    processor,
    prompts: list,
    *,
    system_prompt: str = "interleaved",
    max_new_tokens: int = 256,
    batch_size: int = 16,
    latent_config: LatentConfig | None = None,
    encode=None,
    progress: bool = False,
    desc: str = "greedy decode",
    generate=None,
) -> list[GreedyOutput]:
    """Greedy interleaved decoding of many prompts in batches: the one loop every evaluation uses.

    ``prompts`` are :class:`fl1_core.data.collator.PromptExample` s, turned into tensors by
    :func:`fl1_core.data.collator.build_prompt_inputs` (the one prompt-to-tensor path), or any objects when
    ``encode(batch) -> inputs`` is given (RL records in the rollout format). Inputs move to the model's device; the
    model is put in eval mode and restored. ``generate`` replaces :func:`generate_with_latents` (a caller's own
    reference to it, so tests can script responses). Returns one :class:`GreedyOutput` per prompt, in order.
    """
    from tqdm.auto import tqdm

    from ..data.collator import build_prompt_inputs
    from ..placement import to_device

    was_training = model.training
    model.eval()
    out: list[GreedyOutput] = []
    bar = tqdm(total=len(prompts), desc=desc, disable=not progress, leave=False)
    try:
        for start in range(0, len(prompts), batch_size):
            part = prompts[start : start + batch_size]
            inputs = encode(part) if encode is not None else build_prompt_inputs(processor, part, system_prompt)
            inputs = to_device(inputs, model.device)
            gen = (generate or generate_with_latents)(model, inputs, max_new_tokens=max_new_tokens,
                                                      latent_config=latent_config, do_sample=False,
                                                      tokenizer=processor.tokenizer)
            counts = getattr(gen, "span_counts", None) or [[] for _ in gen.texts]
            out.extend(GreedyOutput(t, list(c)) for t, c in zip(gen.texts, counts))
            bar.update(len(part))
    finally:
        bar.close()
        model.train(was_training)
    return out
