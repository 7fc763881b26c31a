"""Generation prompts to model inputs: the one path from prompts to the padded tensors every decode starts from.

Two steps, both always taken:

1. :func:`encode_prompt` — one prompt through the chat template and the Qwen3-VL processor
   (:func:`fl1_core.data.collator.encode_texts`), unpadded: a :class:`PromptTensors`;
2. :func:`pad_prompts` — prompts left-padded into one batch (row ``i`` ends at the last column, so a decode appends
   to the right end of every row; the vision tensors of the prompts are concatenated in row order).

:func:`build_prompt_inputs` is the two steps for a list of prompts: what evaluation, held-out scoring, the audit and
curation decode from. RL rollouts keep step 1's result per record in their prompt cache and run step 2 on every
batch of rollouts and replays. Either way a prompt becomes the same tensors.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from .. import tokens as T
from .collator import PromptExample, encode_texts, render_prompt

TEXT_KEYS = ("input_ids", "attention_mask", "mm_token_type_ids")


@dataclass
class PromptTensors:
    """One encoded prompt, unpadded: ``input_ids`` [L], ``mm_token_type_ids`` [L] (None when the processor gives
    none), and its vision tensors (``pixel_values``, ``image_grid_thw``, ``pixel_values_videos``, ``video_grid_thw``:
    rows of this prompt only). ``record`` is what the prompt was built from (an RL record: rewards read it)."""

    record: Any
    input_ids: torch.Tensor
    mm_token_type_ids: torch.Tensor | None = None
    vision: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        """Bytes of every tensor (ids, multimodal types, pixel rows, grids)."""
        tensors = [self.input_ids, self.mm_token_type_ids, *self.vision.values()]
        return sum(t.numel() * t.element_size() for t in tensors if t is not None)


def pad_id_of(processor: Any) -> int:
    """The padding id of a processor's tokenizer (its EOS when it has no pad token)."""
    tok = getattr(processor, "tokenizer", processor)
    return tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id


def encode_prompt(
    processor: Any,
    example: PromptExample,
    system_prompt: str = "interleaved",
    question_max_pixels: int | None = None,
    *,
    assistant_prefix: str = "",
    record: Any = None,
) -> PromptTensors:
    """Step 1: the chat text of ``example`` (system prompt, question frames or video, question, assistant header)
    through the processor, question images capped at ``question_max_pixels`` (None: the processor's own cap).

    ``assistant_prefix`` is written for the model as the start of its response: its tokens (tokenised on their own,
    no special tokens) follow the assistant header as text tokens.
    """
    text = render_prompt(processor, T.system_prompt(system_prompt), len(example.question_images),
                         example.question_video is not None, example.question)
    inputs = encode_texts(processor, [text], [example], question_max_pixels)
    ids, mm = inputs["input_ids"][0], inputs.get("mm_token_type_ids")
    mm = None if mm is None else mm[0]
    if assistant_prefix:
        tok = getattr(processor, "tokenizer", processor)
        prefix = torch.tensor(tok(assistant_prefix, add_special_tokens=False)["input_ids"], dtype=ids.dtype)
        ids = torch.cat([ids, prefix])
        mm = None if mm is None else torch.cat([mm, torch.zeros_like(prefix, dtype=mm.dtype)])
    vision = {k: v for k, v in inputs.items() if k not in TEXT_KEYS}
    return PromptTensors(record=record, input_ids=ids, mm_token_type_ids=mm, vision=vision)


def pad_prompts(prompts: Sequence[PromptTensors], pad_id: int) -> dict[str, torch.Tensor]:
    """Step 2: left-padded generation inputs of ``prompts`` (a prompt may repeat; its vision rows repeat too).

    ``input_ids`` [B, W] (``pad_id`` before each prompt), ``attention_mask`` [B, W] (0 on padding),
    ``mm_token_type_ids`` [B, W] when any prompt has them (0 on padding), and every vision tensor concatenated over
    the prompts in row order.
    """
    if not prompts:
        raise ValueError("pad_prompts needs at least one prompt")
    width = max(int(p.input_ids.shape[0]) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    mm = torch.zeros((len(prompts), width), dtype=torch.long)
    for i, p in enumerate(prompts):
        n = int(p.input_ids.shape[0])
        ids[i, width - n :] = p.input_ids
        mask[i, width - n :] = 1
        if p.mm_token_type_ids is not None:
            mm[i, width - n :] = p.mm_token_type_ids
    out: dict[str, torch.Tensor] = {"input_ids": ids, "attention_mask": mask}
    if any(p.mm_token_type_ids is not None for p in prompts):
        out["mm_token_type_ids"] = mm
    keys = dict.fromkeys(k for p in prompts for k in p.vision)  # first-seen order
    for key in keys:
        out[key] = torch.cat([p.vision[key] for p in prompts if key in p.vision], dim=0)
    return out


def build_prompt_inputs(
    processor: Any,
    examples: Sequence[PromptExample],
    system_prompt: str = "interleaved",
    question_max_pixels: int | None = None,
    *,
    assistant_prefix: str | Sequence[str] = "",
) -> dict[str, torch.Tensor]:
    """Left-padded generation inputs (``input_ids``, ``attention_mask``, ``mm_token_type_ids``, vision tensors) of
    ``examples``: :func:`encode_prompt` on each, then :func:`pad_prompts`; ``assistant_prefix`` is one prefix for
    every example or one per example."""
    prefixes = [assistant_prefix] * len(examples) if isinstance(assistant_prefix, str) else list(assistant_prefix)
    if len(prefixes) != len(examples):
        raise ValueError(f"{len(prefixes)} assistant prefixes for {len(examples)} examples")
    encoded = [encode_prompt(processor, ex, system_prompt, question_max_pixels, assistant_prefix=prefix)
               for ex, prefix in zip(examples, prefixes)]
    return pad_prompts(encoded, pad_id_of(processor))


__all__ = ["PromptTensors", "build_prompt_inputs", "encode_prompt", "pad_id_of", "pad_prompts"]
