"""Caps on generation prompts: a pixel cap per question frame and a prompt-length filter that names what it rejects.

Defaults for real data (Qwen3-VL: patch 16, merge 2, so one merged visual token per 32 × 32 pixels):

- :data:`QUESTION_MAX_PIXELS` = 128 · 32 · 32 pixels per question frame (≤ 128 visual tokens; a 720p frame becomes
  480 × 256, 120 tokens). The release feeds question frames near-native (≤ 16384 · 32 · 32 pixels): a 720p frame is
  ~900 tokens and 22.6 MB of fp32 pixel rows, so an RL prompt of 7 pool frames would be ~6.3k tokens before the
  2048 new tokens. At the cap a frame costs ``128 · 4 · 1536 · 4 B`` = 3.1 MB of pixel rows, and the ≤ 7 question
  frames of an 8-frame pool take ≤ 896 tokens;
- :data:`MAX_PROMPT_TOKENS` = 1024: those ≤ 896 vision tokens plus the system prompt and question. An RL row is then
  ≤ 1024 + 2048 = 3072 tokens, the context ``fl1 plan`` sizes the rollout KV cache with.

A prompt's length is computed without decoding a frame: ``len(tokenize(chat text)) + Σ_images (tokens_i − 1)``,
``tokens_i = patches(h_i, w_i | cap) / merge²`` from the image processor's own resize rule (each image placeholder
in the chat text expands to ``tokens_i`` ``<|image_pad|>`` tokens).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

logger = logging.getLogger(__name__)

QUESTION_MAX_PIXELS = 128 * 32 * 32
MAX_PROMPT_TOKENS = 1024


def image_tokens(processor: Any, height: int, width: int, max_pixels: int | None) -> int:
    """Merged visual tokens of one ``height × width`` question image under the cap (the processor's resize rule)."""
    from .collator import question_images_kwargs

    ip = processor.image_processor
    size = question_images_kwargs(processor, max_pixels).get("size", ip.size)
    patches = ip.get_number_of_image_patches(height, width, {"min_pixels": size["shortest_edge"],
                                                             "max_pixels": size["longest_edge"]})
    return int(patches) // ip.merge_size ** 2


def prompt_length(processor: Any, text: str, image_sizes: Sequence[tuple[int, int]], max_pixels: int | None) -> int:
    """Tokens of a chat ``text`` with one image placeholder per entry of ``image_sizes`` ((height, width) each),
    as the processor would produce them: ``len(tokenize(text)) + Σ (tokens_i − 1)``."""
    n_text = len(processor.tokenizer(text, add_special_tokens=False)["input_ids"])
    return n_text + sum(image_tokens(processor, h, w, max_pixels) - 1 for h, w in image_sizes)


def rl_prompt_length(processor: Any, record: Any, system_prompt: str, max_pixels: int | None,
                     frame_size: tuple[int, int] | None = None) -> int:
    """Prompt tokens of an RL record (its pool frames as images, then the question), from the video's frame size
    alone (no frame is decoded; ``frame_size`` (height, width) when already known)."""
    from .. import tokens as T
    from .collator import render_prompt
    from .frames import read_video_info

    if frame_size is None:
        info = read_video_info(record.video)
        frame_size = (info.height, info.width)
    text = render_prompt(processor, T.system_prompt(system_prompt), len(record.image), False, record.prompt_text)
    return prompt_length(processor, text, [frame_size] * len(record.image), max_pixels)


def filter_rl_prompts(records: Sequence[Any], processor: Any, *, system_prompt: str, max_pixels: int | None,
                      max_tokens: int | None) -> tuple[list[Any], list[Any]]:
    """(kept, rejects): RL records whose prompt is at most ``max_tokens`` tokens, and a
    :class:`~fl1_core.data.records.Reject` naming each over-long one (field ``image``: its frames and question give
    N tokens). ``max_tokens`` None keeps everything. Order of the kept records is preserved. Costs one video-header
    read per distinct video and one tokenisation per record; no frame is decoded."""
    from tqdm.auto import tqdm

    from .frames import read_video_info
    from .records import Reject

    if max_tokens is None:
        return list(records), []
    kept, rejects = [], []
    sizes: dict[str, tuple[int, int]] = {}  # one header read per video
    for rec in tqdm(records, desc="prompt lengths", unit="rec", disable=len(records) < 2000):
        if rec.video not in sizes:
            info = read_video_info(rec.video)
            sizes[rec.video] = (info.height, info.width)
        n = rl_prompt_length(processor, rec, system_prompt, max_pixels, sizes[rec.video])
        if n > max_tokens:
            rejects.append(Reject(rec.id, "image", f"prompt of {n} tokens ({len(rec.image)} question frames at "
                                                   f"max_pixels={max_pixels}) exceeds max_prompt_tokens={max_tokens}"))
        else:
            kept.append(rec)
    if rejects:
        shown = ", ".join(r.record_id for r in rejects[:5]) + (" …" if len(rejects) > 5 else "")
        logger.warning("%d of %d RL prompt(s) longer than %d tokens rejected: %s", len(rejects), len(records),
                       max_tokens, shown)
    return kept, rejects


__all__ = ["MAX_PROMPT_TOKENS", "QUESTION_MAX_PIXELS", "filter_rl_prompts", "image_tokens", "prompt_length",
           "rl_prompt_length"]
