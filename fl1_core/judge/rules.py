"""Exact, model-free judge rules used by the local judge server on the synthetic world.

Normalisation: lower-case, every non-alphanumeric character becomes a space, whitespace collapsed, trimmed;
``THOUGHT n:`` prefixes, ``[reference image k]`` and ``[visual imagination]`` markers are removed first.

- CoT score = ``round_half_up(5 × matched / total)`` where the reference reasoning is split into event sentences
  (on newlines and after ``.``/``!``/``?``), and a sentence is matched when its normalised form occurs in the
  normalised model reasoning on word boundaries. A reference without sentences scores 0.
- Answer score: when the ground truth is an option letter (``B``, ``(b)``, ``B.``), 5 iff the strict option-letter
  reading of the model answer is that letter, else 0. Otherwise 5 iff the normalised model answer equals or contains
  (on word boundaries) the normalised ground truth and chains no more events than it (events are joined by "then":
  "A, then B, then C" does not match "A"); else ``min(4, round_half_up(5 × F1))`` of the token multisets.
  The cap: F1 ignores word order, so "the yellow ball hits the purple box" has F1 1 against "the purple box hits the
  yellow ball", and "… on the floor at the right" 0.9 against "… at the left"; such answers are partly right at
  best, never a match. An empty ground truth scores 0.
- Yes/no verdict: "yes" iff the answer score would be 5.
"""

from __future__ import annotations

import re
from collections import Counter

from fl1_core.answers import normalize, read_option_letter, reference_letter
from fl1_core.judge.parsing import round_half_up
from fl1_core.judge.sanitize import VISUAL_MARKER

__all__ = ["normalize_text", "event_sentences", "rule_cot_score", "rule_answer_score", "rule_yes_no", "rule_scores"]

_THOUGHT = re.compile(r"\bTHOUGHT\s*\d+\s*:", re.IGNORECASE)
_REF_IMAGE = re.compile(r"\[reference image \d+\]|<rimage>|<image>", re.IGNORECASE)
_SENTENCE_SPLIT = re.compile(r"\n+|(?<=[.!?])\s+")


def _clean(text: str) -> str:
    text = _THOUGHT.sub(" ", text or "")
    text = _REF_IMAGE.sub(" ", text)
    return text.replace(VISUAL_MARKER, " ")


def normalize_text(text: str) -> str:
    """Lower-case, punctuation → spaces, whitespace collapsed (:func:`fl1_core.answers.normalize`), after dropping
    THOUGHT markers, reference-image markers and the visual-imagination marker."""
    return normalize(_clean(text))


def event_sentences(reference: str) -> list[str]:
    """The normalised, non-empty event sentences of a reference reasoning chain."""
    parts = _SENTENCE_SPLIT.split(_clean(reference))
    return [n for n in (normalize_text(p) for p in parts) if n]


def _contains(haystack: str, needle: str) -> bool:
    return f" {needle} " in f" {haystack} "


def rule_cot_score(reference_reasoning: str, model_reasoning: str) -> int:
    """CoT score 0–5: share of reference event sentences present in the model reasoning."""
    sentences = event_sentences(reference_reasoning)
    if not sentences:
        return 0
    reasoning = normalize_text(model_reasoning)
    matched = sum(_contains(reasoning, s) for s in sentences)
    return round_half_up(5 * matched / len(sentences))


def _events(normalized: str) -> int:
    """Events chained in a normalised answer: one more than its standalone words "then"."""
    return normalized.split().count("then") + 1


def _f1(pred: list[str], gold: list[str]) -> float:
    common = sum((Counter(pred) & Counter(gold)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(gold)
    return 2 * precision * recall / (precision + recall)


def rule_answer_score(ground_truth: str, model_answer: str) -> int:
    """Answer score 0–5 (letter match, containment without extra chained events, else token F1 × 5
    capped at 4)."""
    letter = reference_letter(ground_truth)
    if letter:
        return 5 if read_option_letter(_clean(model_answer)) == letter else 0
    gold = normalize_text(ground_truth)
    if not gold:
        return 0
    pred = normalize_text(model_answer)
    if pred == gold or (_contains(pred, gold) and _events(pred) <= _events(gold)):
        return 5
    return min(4, round_half_up(5 * _f1(pred.split(), gold.split())))


def rule_yes_no(ground_truth: str, model_answer: str) -> bool:
    """The yes/no verdict: True iff the answers match (answer score 5)."""
    return rule_answer_score(ground_truth, model_answer) == 5


def rule_scores(reference_reasoning: str, ground_truth: str, model_reasoning: str, model_answer: str) -> tuple[int, int]:
    """``(cot_score, answer_score)`` by the rules above."""
    return rule_cot_score(reference_reasoning, model_reasoning), rule_answer_score(ground_truth, model_answer)
