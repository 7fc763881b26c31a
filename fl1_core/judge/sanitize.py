"""Cleaning model outputs before a judge sees them, and splitting them into reasoning and answer."""

from __future__ import annotations

import re

from fl1_core.answers import ANSWER_SPAN
from fl1_core.tokens import (
    LATENT_END,
    LATENT_START,
    LATENT_TOKEN,
    QWEN3VL_ADDED_TOKENS,
    QWEN3VL_SPECIAL_TOKENS,
)

__all__ = ["VISUAL_MARKER", "sanitize_for_judge", "split_reasoning_answer"]

VISUAL_MARKER = "[visual imagination]"

# A closed latent span, or an unclosed one running to the end of the text (a truncated generation).
_LATENT_SPAN = re.compile(
    re.escape(LATENT_START) + r".*?(?:" + re.escape(LATENT_END) + r"|\Z)", re.DOTALL
)
_SPECIAL = re.compile(
    "|".join(re.escape(t) for t in (*QWEN3VL_SPECIAL_TOKENS, *QWEN3VL_ADDED_TOKENS, LATENT_TOKEN, LATENT_END))
    + r"|<\|[A-Za-z0-9_]+\|>"
)
_REPEATED_MARKER = re.compile(r"(?:" + re.escape(VISUAL_MARKER) + r"\s*){2,}")
_ANSWER_SPAN = ANSWER_SPAN
_ANSWER_OPEN = re.compile(r"<answer>", re.IGNORECASE)
_REASON_TAG = re.compile(r"</?reason>", re.IGNORECASE)


def _tidy(text: str) -> str:
    text = re.sub(r"[ \t]+", " ", text)
    text = re.sub(r" *\n *", "\n", text)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip()


def sanitize_for_judge(text: str) -> str:
    """Text a judge may see: latent spans become ``[visual imagination]``, stray latent and special tokens
    (``<|im_end|>``, ``<|endoftext|>``, vision tokens, …) are removed, whitespace is tidied and trimmed."""
    if not text:
        return ""
    text = _LATENT_SPAN.sub(f" {VISUAL_MARKER} ", text)
    text = _SPECIAL.sub(" ", text)
    text = _REPEATED_MARKER.sub(f"{VISUAL_MARKER} ", text)
    return _tidy(text)


def split_reasoning_answer(text: str) -> tuple[str, str]:
    """Split a model output into ``(reasoning, answer)``, both sanitised.

    The answer is the content of the LAST ``<answer>…</answer>`` span (tags case-insensitive); an unclosed final
    ``<answer>`` takes the rest of the text. The reasoning is everything else with ``<reason>`` tags removed and
    latent spans shown as ``[visual imagination]``. Without any answer tag the answer is ``""`` and the whole text is
    reasoning. Also splits a TwiFF-Bench reference (chain then ``<answer>…</answer>``).
    """
    clean = sanitize_for_judge(text or "")
    spans = list(_ANSWER_SPAN.finditer(clean))
    if spans:
        last = spans[-1]
        answer = last.group(1)
        reasoning = clean[: last.start()] + " " + clean[last.end():]
        # Earlier answer spans stay in the reasoning as text (without tags).
        reasoning = re.sub(r"</?answer>", " ", reasoning, flags=re.IGNORECASE)
    else:
        opens = list(_ANSWER_OPEN.finditer(clean))
        if opens:
            last_open = opens[-1]
            answer = clean[last_open.end():]
            reasoning = clean[: last_open.start()]
        else:
            answer, reasoning = "", clean
    reasoning = _REASON_TAG.sub("\n", reasoning)
    return _tidy(reasoning), _tidy(answer)
