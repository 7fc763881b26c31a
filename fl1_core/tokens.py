"""Latent tokens, Qwen3-VL special tokens and the system prompts of Future-L1 (docs/PAPER.md#tokens).

The three latent tokens are added to the tokenizer as ordinary (non-special) added tokens, like the authors'
release, so decoded text keeps them when ``skip_special_tokens=True`` and spans can always be counted. Their ids are
stored on the model config (see :mod:`fl1_core.config`).
"""

from __future__ import annotations

import re

LATENT_TOKEN = "<|latent|>"
LATENT_START = "<|latent_start|>"
LATENT_END = "<|latent_end|>"
LATENT_TOKENS = (LATENT_START, LATENT_TOKEN, LATENT_END)

# Plain-text tags (not added tokens).
REASON_OPEN, REASON_CLOSE = "<reason>", "</reason>"
ANSWER_OPEN, ANSWER_CLOSE = "<answer>", "</answer>"

# Placeholder used in dataset text (TwiFF / Future-L1-50K) for an image.
IMAGE_PLACEHOLDER = "<image>"

IM_START, IM_END = "<|im_start|>", "<|im_end|>"
VISION_START, VISION_END = "<|vision_start|>", "<|vision_end|>"
IMAGE_PAD, VIDEO_PAD = "<|image_pad|>", "<|video_pad|>"
ENDOFTEXT = "<|endoftext|>"

# Every special token of the real Qwen3-VL tokenizer, in its id order (after the byte-level BPE vocabulary).
QWEN3VL_SPECIAL_TOKENS = (
    ENDOFTEXT,
    IM_START,
    IM_END,
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    VISION_START,
    VISION_END,
    "<|vision_pad|>",
    IMAGE_PAD,
    VIDEO_PAD,
)
# Added but not special in Qwen3-VL.
QWEN3VL_ADDED_TOKENS = (
    "<tool_call>",
    "</tool_call>",
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    "<|fim_pad|>",
    "<|repo_name|>",
    "<|file_sep|>",
    "<tool_response>",
    "</tool_response>",
    "<think>",
    "</think>",
)

SYSTEM_PROMPTS: dict[str, str | None] = {
    "interleaved": (
        "You are a helpful assistant that predicts what happens next in a video. You can think in two modes. "
        "Textual mode: write <reason> ... </reason> for logical analysis, planning and verbal thought. "
        "Visual mode: write <|latent_start|> ... <|latent_end|> for mental visualisation, imagination and "
        "simulation of future states. Alternate between the modes as needed, then give the final answer inside "
        "<answer> ... </answer>."
    ),
    "latent_only": (
        "You are a helpful assistant that predicts what happens next in a video. Imagine the future in visual "
        "mode, <|latent_start|> ... <|latent_end|>, then give the final answer inside <answer> ... </answer>."
    ),
    "plain": "You are a helpful assistant.",
    "none": None,
}

MCQ_INSTRUCTION = "Please provide only the single option letter within the <answer> </answer> tags."

_THOUGHT_PREFIX = re.compile(r"^\s*THOUGHT\s*\d+\s*:\s*", re.IGNORECASE)
_LATENT_SPAN = re.compile(re.escape(LATENT_START) + r"(.*?)" + re.escape(LATENT_END), re.DOTALL)


def system_prompt(variant: str) -> str | None:
    """The system prompt text of a variant: ``interleaved`` (default), ``latent_only``, ``plain`` or ``none``."""
    if variant not in SYSTEM_PROMPTS:
        raise ValueError(f"unknown system prompt variant {variant!r}; expected one of {sorted(SYSTEM_PROMPTS)}")
    return SYSTEM_PROMPTS[variant]


def strip_thought_prefix(text: str) -> str:
    """Remove a leading ``THOUGHT n:`` prefix (docs/PAPER.md#tokens) and surrounding whitespace."""
    return _THOUGHT_PREFIX.sub("", text).strip()


def split_trajectory(gpt_value: str) -> list[str]:
    """Split a TwiFF assistant trajectory ``THOUGHT 0: …<image>THOUGHT 1: …`` into its thoughts.

    There is one more thought than ``<image>`` markers when the trajectory ends in text (the usual case); each
    ``<image>`` marks a future frame between thought k and thought k+1. Prefixes are stripped.
    """
    return [strip_thought_prefix(part) for part in gpt_value.split(IMAGE_PLACEHOLDER)]


def count_latent_spans(text: str) -> list[int]:
    """Number of ``<|latent|>`` tokens in each closed ``<|latent_start|> … <|latent_end|>`` span of ``text``."""
    return [m.group(1).count(LATENT_TOKEN) for m in _LATENT_SPAN.finditer(text)]


def strip_latent_tokens(text: str) -> str:
    """Remove the three latent tokens from text (for answer extraction and judges)."""
    for tok in LATENT_TOKENS:
        text = text.replace(tok, "")
    return text
