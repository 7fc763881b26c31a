"""Parsing judge replies: TwiFF-Bench score pairs and the strict yes/no verdict (docs/PAPER.md#rewards, docs/PAPER.md#evaluation).

Score pairs. ``coerce_score_pair`` walks a parsed JSON value depth-first (dict values in insertion order, list items
in order) and returns the first two numbers as ints. Ints pass through; floats are rounded HALF-UP
(``floor(x + 0.5)``: 2.5 → 3, 4.6 → 5); numeric strings (``"3"``, ``"4.6"``) count as numbers; other strings and
``null`` are skipped; a boolean met before two numbers were found, or a non-finite float, makes the whole reply
invalid (``None``); fewer than two numbers → ``None``. One refinement over pure depth-first order: a top-level object
that has both ``cot_score`` and ``answer_score`` keys (the format the prompt asks for) is read by those keys, so
key order does not matter.

Yes/no. ``parse_yes_no`` is strict, never a substring test: the reply stripped and lower-cased must be exactly
``yes`` or ``no``, optionally followed by one period, or a JSON object ``{"answer": "yes"|"no"}`` (value matched the
same way). Anything else is unparseable (``None``).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

__all__ = [
    "coerce_score_pair",
    "clamp_score_pair",
    "parse_score_reply",
    "parse_yes_no",
    "round_half_up",
    "load_json_reply",
]

_NUMERIC = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")
_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL | re.IGNORECASE)


class _Invalid(Exception):
    pass


def round_half_up(x: float) -> int:
    """Round half away from minus infinity: ``floor(x + 0.5)``."""
    return int(math.floor(x + 0.5))


def _as_number(value: Any) -> int | None:
    if isinstance(value, bool):
        raise _Invalid
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _Invalid
        return round_half_up(value)
    if isinstance(value, str) and _NUMERIC.fullmatch(value.strip()):
        return round_half_up(float(value.strip())) if "." in value else int(value.strip())
    return None


def _walk(value: Any, found: list[int]) -> None:
    if len(found) >= 2:
        return
    if isinstance(value, dict):
        for v in value.values():
            _walk(v, found)
            if len(found) >= 2:
                return
    elif isinstance(value, (list, tuple)):
        for v in value:
            _walk(v, found)
            if len(found) >= 2:
                return
    else:
        num = _as_number(value)
        if num is not None:
            found.append(num)


def coerce_score_pair(obj: Any) -> tuple[int, int] | None:
    """The first two numbers of a parsed JSON value as ``(cot, answer)`` ints, or ``None`` (see module doc)."""
    try:
        if isinstance(obj, dict) and "cot_score" in obj and "answer_score" in obj:
            cot, ans = _as_number(obj["cot_score"]), _as_number(obj["answer_score"])
            return None if cot is None or ans is None else (cot, ans)
        found: list[int] = []
        _walk(obj, found)
    except _Invalid:
        return None
    return (found[0], found[1]) if len(found) >= 2 else None


def clamp_score_pair(pair: tuple[int, int], lo: int = 0, hi: int = 5) -> tuple[tuple[int, int], bool]:
    """Clamp both scores into ``[lo, hi]``; returns ``(pair, was_clamped)``."""
    cot, ans = (min(hi, max(lo, int(v))) for v in pair)
    return (cot, ans), (cot, ans) != (int(pair[0]), int(pair[1]))


def load_json_reply(text: str | None) -> Any:
    """Parse a JSON judge reply, tolerating a ```json fence or prose around one ``{…}``/``[…]`` block.

    Raises ``ValueError`` when nothing parses.
    """
    if text is None:
        raise ValueError("empty reply")
    candidates = [text.strip()]
    candidates += [m.group(1).strip() for m in _FENCE.finditer(text)]
    for open_, close in (("{", "}"), ("[", "]")):
        i, j = text.find(open_), text.rfind(close)
        if 0 <= i < j:
            candidates.append(text[i : j + 1])
    for cand in candidates:
        if not cand:
            continue
        try:
            return json.loads(cand)
        except (json.JSONDecodeError, ValueError):
            continue
    raise ValueError("reply is not JSON")


def parse_score_reply(text: str | None) -> tuple[int, int] | None:
    """A TwiFF-Bench judge reply → unclamped ``(cot, answer)`` or ``None`` if unparseable."""
    try:
        return coerce_score_pair(load_json_reply(text))
    except ValueError:
        return None


def _yes_no_word(text: str) -> bool | None:
    word = text.strip().lower()
    if word.endswith("."):
        word = word[:-1]
    return {"yes": True, "no": False}.get(word)


def parse_yes_no(text: str | None) -> bool | None:
    """Strict yes/no verdict: ``True``/``False``, or ``None`` when the reply is anything else."""
    if not isinstance(text, str):
        return None
    verdict = _yes_no_word(text)
    if verdict is not None:
        return verdict
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            obj = json.loads(stripped)
        except (json.JSONDecodeError, ValueError):
            return None
        if isinstance(obj, dict) and set(obj) == {"answer"} and isinstance(obj["answer"], str):
            return _yes_no_word(obj["answer"])
    return None
