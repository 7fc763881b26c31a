"""Reading and checking answers: one home for the ``<answer>`` span, normalisation, option letters and the
correctness rule used by RL rewards, curation, the SFT format report and evaluation.

- :data:`ANSWER_SPAN` is the one ``<answer>…</answer>`` pattern (tags case-insensitive).
- :func:`answer_span`: the LAST closed span of a text (latent tokens stripped), ``None`` when there is none.
- :func:`normalize`: lower-case, every run of non-alphanumerics → one space, trimmed.
- :func:`is_correct`: MCQ → the strict option letter equals the reference letter; free-form → the normalised span
  equals the normalised reference (``rule="exact"``), or also contains it on word boundaries (``rule="contains"``,
  an explicit option). No span → wrong. :func:`rule_correct` is the exact rule against a record.

Option-letter extraction (FutureBench, docs/PAPER.md#evaluation) has two modes:

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

The *concluded event* (:func:`concluded_option`) reads the prediction apart from the letter: the option whose text
the final thought states ("So, <event>, which is option X."). It separates predicting the event from binding it to a
letter, the step a small model fails first.
"""

from __future__ import annotations

import re

from fl1_core.tokens import strip_latent_tokens

__all__ = ["ANSWER_RULES", "ANSWER_SPAN", "EXTRACTION_MODES", "answer_span", "concluded_letter", "concluded_option",
           "extract_answer_letter", "final_thought", "is_correct", "normalize", "option_lines", "read_option_letter",
           "reference_letter", "rule_correct"]

EXTRACTION_MODES = ("faithful", "strict")

_ANSWER_PATTERN = r"<answer>(.*?)</answer>"  # the one answer-span pattern
_FAITHFUL_SPAN = re.compile(_ANSWER_PATTERN, re.DOTALL)  # the release: case-sensitive tags, FIRST span
_FAITHFUL_LETTER = re.compile(r"[A-D]")
ANSWER_SPAN = re.compile(_ANSWER_PATTERN, re.DOTALL | re.IGNORECASE)
_STRICT_SPAN = ANSWER_SPAN
ANSWER_RULES = ("exact", "contains")
_NON_ALNUM = re.compile(r"[^0-9a-z]+")
_OPTION_LINE = re.compile(r"^[ \t]*\(?([A-D])[.)][ \t]+(.+?)[ \t]*$", re.MULTILINE)
_REASON = re.compile(r"<reason>(.*?)(?:</reason>|$)", re.DOTALL | re.IGNORECASE)

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


def answer_span(text: str | None) -> str | None:
    """The content of the LAST closed ``<answer>…</answer>`` span (latent tokens stripped, whitespace trimmed);
    ``None`` when the text has none."""
    spans = ANSWER_SPAN.findall(strip_latent_tokens(text or ""))
    return spans[-1].strip() if spans else None


def normalize(text: str | None) -> str:
    """Lower-case; every run of non-alphanumerics → one space; trimmed (``"The light, turns on."`` →
    ``"the light turns on"``)."""
    return _NON_ALNUM.sub(" ", (text or "").lower()).strip()


def reference_letter(reference: str | None) -> str | None:
    """The option letter of a multiple-choice reference (``"B"``, ``"(c)"``, ``"D."``), upper-case; None if the
    reference is not a single letter."""
    m = _WHOLE.fullmatch((reference or "").strip())
    return m.group(1).upper() if m else None


def is_correct(text: str | None, reference: str, *, mcq: bool, rule: str = "exact") -> bool:
    """The one correctness rule (see the module docstring): strict option letter for MCQ; for free-form the
    normalised answer span equals the normalised reference, or with ``rule="contains"`` contains it on word
    boundaries."""
    if rule not in ANSWER_RULES:
        raise ValueError(f"unknown answer rule {rule!r}; expected one of {ANSWER_RULES}")
    if mcq:
        ref = reference_letter(reference)
        return ref is not None and extract_answer_letter(text or "", mode="strict") == ref
    span = answer_span(text)
    if span is None:
        return False
    pred, gold = normalize(span), normalize(reference)
    if not pred or not gold:
        return False
    return pred == gold or (rule == "contains" and f" {gold} " in f" {pred} ")


def option_lines(question: str) -> dict[str, str]:
    """The ``A. text`` / ``(B) text`` / ``C) text`` option lines of a question, letter → text (a later line of
    the same letter wins)."""
    return {m.group(1): m.group(2) for m in _OPTION_LINE.finditer(question or "")}


def final_thought(text: str | None) -> str:
    """The response's final thought: its last ``<reason>`` span before the answer, latent tokens stripped (without
    reason tags, the text before the answer)."""
    body = strip_latent_tokens(text or "")
    cut = body.lower().rfind("<answer>")
    body = body[:cut] if cut >= 0 else body
    spans = _REASON.findall(body)
    return spans[-1] if spans else body


def concluded_option(text: str | None, options: dict[str, str]) -> str:
    """The letter of the option that the response's final thought states, ``""`` if none or ambiguous.

    The final thought is the last ``<reason>`` span before the answer (latent tokens stripped; without reason tags,
    the text before the answer). An option matches when its normalised text occurs in the normalised thought on word
    boundaries; a match contained in a longer matching option is dropped ("X" inside "X, then Y"); exactly one
    match left → its letter.
    """
    thought = f" {normalize(final_thought(text))} "
    said = {k: normalize(v) for k, v in options.items()}
    found = {k: v for k, v in said.items() if v and f" {v} " in thought}
    kept = [k for k, v in found.items() if not any(v != w and v in w for w in found.values())]
    return kept[0] if len(kept) == 1 else ""


def rule_correct(text: str | None, record) -> bool:
    """The exact rule check of one response against its record (an RL record: ``answer``, ``is_multiple_choice``):
    :func:`is_correct` with ``rule="exact"``."""
    return is_correct(text, record.answer, mcq=record.is_multiple_choice, rule="exact")


def concluded_letter(text: str | None, record) -> str:
    """The option letter whose text the response's final thought states (:func:`concluded_option` over the option
    lines of ``record.question_text``); "" when none or several do, and always for free-form records."""
    return concluded_option(text, option_lines(record.question_text))
