"""Option-letter extraction from model outputs for FutureBench (SPEC §7).

Two modes:

``faithful`` reproduces the release: the first uppercase ``A``–``D`` character inside the FIRST ``<answer>…</answer>``
span (case-sensitive tags), ``""`` when there is no span or no such character. This is a known defect: the text
``<answer>Answer: B</answer>`` scores as ``A`` (the ``A`` of "Answer").

``strict`` is the corrected reader: latent tokens are stripped, tags are case-insensitive, the LAST answer span is
read and only a *standalone* option letter counts, never a letter inside a word. Candidates are ranked:

1. explicit marks: the whole span is one letter (``b``, ``(d)``, ``C.``), a parenthesised letter ``(d)``, or a
   letter directly followed by ``.``, ``:`` or ``)`` (``C. the ball``, ``c) …``);
2. bare standalone letters: uppercase ``A``–``D`` and lowercase ``b``–``d`` (``Answer: B``, ``the answer is c``);
3. never: an unmarked lowercase ``a`` followed by more text, which is read as the English article (``a ball`` → "").

The first candidate of the best class wins. The result is uppercase, or ``""``.
"""

from __future__ import annotations

import re

from fl1_core.tokens import strip_latent_tokens

__all__ = ["extract_answer_letter", "read_option_letter", "EXTRACTION_MODES"]

EXTRACTION_MODES = ("faithful", "strict")

_FAITHFUL_SPAN = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_FAITHFUL_LETTER = re.compile(r"[A-D]")
_STRICT_SPAN = re.compile(r"<answer>(.*?)</answer>", re.DOTALL | re.IGNORECASE)

# A letter not touching another letter/digit on either side.
_WHOLE = re.compile(r"\(?\s*([A-Da-d])\s*\)?\s*[.:)]?")
_PAREN = re.compile(r"(?<![A-Za-z0-9])\(\s*([A-Da-d])\s*\)")
_MARKED = re.compile(r"(?<![A-Za-z0-9(])([A-Da-d])[.:)](?![A-Za-z0-9])")
_BARE = re.compile(r"(?<![A-Za-z0-9'’-])([A-D]|[b-d])(?![A-Za-z0-9'’-])")


def read_option_letter(span: str) -> str:
    """Read a standalone option letter from answer text with the strict rules above ("" when none)."""
    text = span.strip()
    if not text:
        return ""
    whole = _WHOLE.fullmatch(text)
    if whole:
        return whole.group(1).upper()
    marked = [m for m in (*_PAREN.finditer(text), *_MARKED.finditer(text))]
    if marked:
        return min(marked, key=lambda m: m.start()).group(1).upper()
    bare = _BARE.search(text)
    return bare.group(1).upper() if bare else ""


def extract_answer_letter(text: str, mode: str = "faithful") -> str:
    """The option letter a model answered (``mode`` = ``faithful`` (release) or ``strict``); ``""`` if none."""
    if text is None:
        return ""
    if mode == "faithful":
        span = _FAITHFUL_SPAN.search(text)
        if span is None:
            return ""
        letter = _FAITHFUL_LETTER.search(span.group(1))
        return letter.group(0) if letter else ""
    if mode == "strict":
        spans = _STRICT_SPAN.findall(strip_latent_tokens(text))
        if not spans:
            return ""
        return read_option_letter(spans[-1])
    raise ValueError(f"unknown extraction mode {mode!r}; expected one of {EXTRACTION_MODES}")
