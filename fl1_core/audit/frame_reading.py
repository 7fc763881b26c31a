"""Where a frame-needing answer breaks: reading the imagined frame, or carrying the reading to the conclusion.

A frame-needing chain (:mod:`fl1_core.data.world.frame_questions`) ends with one thought: the layout reading of the
frame at the last span ("From left to right: the red ball on the floor at the left, the blue box …"), then the
conclusion ("So, the red ball is on the floor at the left, which is option B.", or without the option in a
free-form chain). The primary score (the concluded option) needs both steps, so per response this module reads:

- **reading right**: the reading puts the asked object where the gold answer says (``P(read)``);
- **follows the reading**: the conclusion states the place that the reading gave the asked object (``P(follow)``);
- **concluded right**: the conclusion states the gold place.

If the conclusion always followed the reading, concluded right = reading right. So ``reading right`` is what a
decode's latents deliver to the text, and ``P(follow)`` is how much of it reaches the answer. On the changed items
(the asked object has moved since the last observed frame), **read present** and **concluded present** count the
responses that place it where it was at that frame (``meta.present_answer``): an imagination that copies the present.
The shares come with Wilson 95 % intervals.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..answers import final_thought
from ..data.world.frame_questions import PLACE_PATTERN, READING_OPEN
from ..intervals import wilson_interval

_ANSWER_TEXT = re.compile(rf"^the (.+?) is ({PLACE_PATTERN})$")


@dataclass(frozen=True)
class FrameReading:
    """One response's reading of the asked object (``None``: no reading, or it does not place the object) and its
    concluded place (``None``: no conclusion about the object), against the gold place."""

    gold: str
    read: str | None
    concluded: str | None

    @property
    def reading_right(self) -> bool:
        return self.read == self.gold

    @property
    def follows(self) -> bool | None:
        """Whether the conclusion states the reading's place; ``None`` when either is missing."""
        if self.read is None or self.concluded is None:
            return None
        return self.read == self.concluded

    @property
    def concluded_right(self) -> bool:
        return self.concluded == self.gold


def asked_object(answer_text: str) -> tuple[str, str]:
    """('orange ball', 'on the floor in the middle') from the gold answer 'the orange ball is on the floor in the
    middle'; raises on another form (not a frame-needing answer)."""
    m = _ANSWER_TEXT.match(answer_text.strip())
    if m is None:
        raise ValueError(f"not a frame-needing answer (the <object> is <place>): {answer_text!r}")
    return m.group(1), m.group(2)


def read_frame(text: str, answer_text: str) -> FrameReading:
    """The asked object's place in the response's layout reading and in its conclusion (module docstring)."""
    name, gold = asked_object(answer_text)
    thought = final_thought(text).strip()
    start = thought.find(READING_OPEN)
    read = None
    if start >= 0:
        reading = thought[start:].split(" So, ", 1)[0]
        m = re.search(rf"(?:: |, )the {re.escape(name)} ({PLACE_PATTERN})", reading)
        read = m.group(1) if m else None
    m = re.search(rf"So, the {re.escape(name)} is ({PLACE_PATTERN})(?:,|\.|$)", thought)
    return FrameReading(gold=gold, read=read, concluded=m.group(1) if m else None)


def _share(flags: Sequence[bool]) -> dict[str, Any]:
    """``{"n", "k", "share", "ci95"}``; share and interval are ``None`` when there is nothing to count."""
    n, k = len(flags), int(sum(flags))
    if not n:
        return {"n": 0, "k": 0, "share": None, "ci95": None}
    return {"n": n, "k": k, "share": k / n, "ci95": list(wilson_interval(k, n))}


def reading_decomposition(texts: Sequence[str], metas: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Reading right, follows the reading and concluded right over the frame-needing items among ``metas`` (each a
    record's ``meta`` with ``answer_text``), with Wilson intervals; ``follows`` counts the responses that have both
    a reading of the object and a conclusion about it, and ``concluded_if_read_right`` the ones whose reading is
    right. ``changed`` repeats the three shares on the items whose answer differs from the last observed frame, with
    ``read_present`` and ``concluded_present`` where the metas give ``present_answer``."""
    rows = [(read_frame(t, m["answer_text"]), bool(m.get("changed")), m.get("present_answer"))
            for t, m in zip(texts, metas, strict=True) if m.get("needs_frame")]

    def block(sel: list[FrameReading]) -> dict[str, Any]:
        return {
            "reading_right": _share([r.reading_right for r in sel]),
            "follows_reading": _share([bool(r.follows) for r in sel if r.follows is not None]),
            "concluded_right": _share([r.concluded_right for r in sel]),
            "concluded_if_read_right": _share([r.concluded_right for r in sel if r.reading_right]),
            "has_reading": _share([r.read is not None for r in sel]),
        }

    out = block([r for r, _, _ in rows])
    moved = [(r, present) for r, changed, present in rows if changed]
    out["changed"] = block([r for r, _ in moved])
    if moved and all(present for _, present in moved):
        places = [(r, asked_object(present)[1]) for r, present in moved]
        out["changed"]["read_present"] = _share([r.read == place for r, place in places])
        out["changed"]["concluded_present"] = _share([r.concluded == place for r, place in places])
    return out


def reading_points(decomposition: dict[str, Any]) -> dict[str, Any]:
    """:func:`reading_decomposition` in points: ``{measure: [share, lo, hi]}`` rounded to 0.1 (``None``: nothing
    to count), ``changed`` nested."""
    out = {k: None if v["share"] is None else [round(100 * x, 1) for x in (v["share"], *v["ci95"])]
           for k, v in decomposition.items() if k != "changed"}
    if "changed" in decomposition:
        out["changed"] = reading_points({k: v for k, v in decomposition["changed"].items()})
    return out


MEASURES = {"reading_right": "reading right", "follows_reading": "conclusion follows the reading",
            "concluded_right": "concluded right", "concluded_if_read_right": "concluded right | reading right"}
PRESENT_MEASURES = {"read_present": "read where it was at the last observed frame",
                    "concluded_present": "concluded where it was at the last observed frame"}


def reading_rows(by_decode: Mapping[str, Mapping[str, Any]], subset: str | None = None) -> list[dict[str, str]]:
    """One row per decode of :func:`reading_decomposition` results (``subset="changed"`` for that subset): each
    measure as 'share [lo, hi] (n=…)' in %."""
    from ..display import interval_text

    rows = []
    for name, dec in by_decode.items():
        dec = dec[subset] if subset else dec
        measures = {**MEASURES, **{k: v for k, v in PRESENT_MEASURES.items() if k in dec}}
        rows.append({"decode": name, **{label: "— (n=0)" if dec[key]["share"] is None else
                                        f"{100 * dec[key]['share']:.1f} {interval_text(dec[key]['ci95'])} (n={dec[key]['n']})"
                                        for key, label in measures.items()}})
    return rows


def check_readings(check_dir: str | Path) -> dict[str, dict[str, Any]]:
    """The decomposition of every decode of a finished imagination check (``<dir>/predictions/<decode>.jsonl``
    against ``<dir>/world/heldout_mcq.jsonl``), by decode name."""
    check_dir = Path(check_dir)
    metas = {}
    for line in (check_dir / "world" / "heldout_mcq.jsonl").read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            metas[row["id"]] = row["meta"]
    out = {}
    for path in sorted((check_dir / "predictions").glob("*.jsonl")):
        rows = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
        out[path.stem] = reading_decomposition([r["text"] for r in rows], [metas[r["id"]] for r in rows])
    if not out:
        raise FileNotFoundError(f"{check_dir}/predictions holds no decodes; is it an imagination check's OUT_DIR?")
    return out



def readings_table(check_dirs: Sequence[str | Path]) -> list[dict[str, Any]]:
    """One row per (check, decode): the four measures in points ``[share, lo, hi]`` (:func:`reading_points`)."""
    return [{"check": str(d), "decode": name, **reading_points(dec)}
            for d in check_dirs for name, dec in check_readings(d).items()]
