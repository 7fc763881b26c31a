"""What the held-out event-kind conclusions say: their event types, and collisions stated with the roles swapped.

A world collision's subject is the faster body ("the A hits the B", :func:`fl1_core.data.world.physics.event_text`),
and the world never offers the swapped sentence as a distractor (:mod:`fl1_core.data.world.options`), so a final
thought that names no option but states one option's collision with the roles swapped points at that option alone:

    concluded_either_i = concluded_i if concluded_i ≠ "" else the one option whose role-swapped collision the final
                         thought names ("" when none or several)

The strict reading (:func:`fl1_core.answers.concluded_option`) stays the primary score; this one is a diagnostic of
where a change of the event score sits (``scripts/role_swaps.py``, notebook 04). :func:`subject_is_stated_mover`
asks whether a written collision's subject is the body the response's own first thought (the reading of the last
observed frame, :func:`fl1_core.data.world.description.observation`) describes as the one of the two in motion.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from fl1_core.answers import final_thought, normalize
from fl1_core.data.world.description import moving_bodies
from fl1_core.data.world.physics import first_event_type, swapped_roles
from fl1_core.data.world.world_types import FRAME_KINDS

__all__ = ["conclusion_summary", "either_role", "mover_agreement", "movers_read", "reads_movers_right",
           "stated_movers", "subject_is_stated_mover", "swapped_option"]


def swapped_option(text: str, options: dict[str, str]) -> str:
    """The letter of the one option whose collision the final thought states with its roles swapped ("" when none
    or several)."""
    thought = f" {normalize(final_thought(text))} "
    found = [k for k, v in options.items() if (s := swapped_roles(v)) and f" {normalize(s)} " in thought]
    return found[0] if len(found) == 1 else ""


def either_role(row: dict, options: dict[str, str]) -> dict:
    """A held-out row (``concluded``, ``text``) with ``concluded`` read either way round and ``role_swap`` marking
    rows whose conclusion only the swapped reading names."""
    if row["concluded"]:
        return {**row, "role_swap": False}
    letter = swapped_option(row.get("text") or "", options)
    return {**row, "concluded": letter, "role_swap": bool(letter)}


def conclusion_summary(rows: list[dict]) -> dict[str, Any]:
    """Over rows of :func:`either_role`, on the event kinds (every kind but the frame-needing ones): the items, the
    unnamed conclusions under the strict reading, the role swaps among them (and those of the gold option), the
    event accuracy read either way round, the concluded event types (the first event each final thought states;
    ``"none"`` for a thought that states none) and, per type, the conclusions right under the strict reading."""
    kept = [r for r in rows if r.get("kind") not in FRAME_KINDS]
    typed = [(first_event_type(final_thought(r.get("text") or "")) or "none", r) for r in kept]
    types = Counter(t for t, _ in typed)
    right = Counter(t for t, r in typed if r["concluded"] == r["answer"] and not r["role_swap"])
    return {"items": len(kept), "unnamed": sum(not r["concluded"] or r["role_swap"] for r in kept),
            "role_swaps": sum(r["role_swap"] for r in kept),
            "role_swaps_gold": sum(r["role_swap"] and r["concluded"] == r["answer"] for r in kept),
            "event_accuracy_either": sum(r["concluded"] == r["answer"] for r in kept) / max(1, len(kept)),
            "types": dict(sorted(types.items())), "types_right": {t: right[t] for t in sorted(types)}}


def stated_movers(text: str) -> set[str] | None:
    """The bodies the response's first thought ("At the end of the video, the A is sliding left along the floor, the
    B is resting on the floor …") describes as rolling, sliding or falling; ``None`` when it has no such reading
    (:func:`~fl1_core.data.world.description.moving_bodies` of the text before the first ``</reason>``)."""
    return moving_bodies((text or "").split("</reason>", 1)[0])


def reads_movers_right(text: str, reference: str) -> bool | None:
    """Whether the response's first thought describes as moving exactly the bodies the world's own first thought
    (``reference``, an item's ``meta.reference_thoughts[0]``) has moving; ``None`` when the reference has no reading."""
    truth = moving_bodies(reference)
    return None if truth is None else stated_movers(text) == truth


def movers_read(rows: Iterable[Mapping], references: Mapping[str, str]) -> list[bool | None]:
    """Per row, in order: :func:`reads_movers_right` of its ``text`` against ``references[row id]`` (the world's first
    thought); ``None`` for a frame-needing row and for one without a world reading of the frame."""
    return [None if r.get("kind") in FRAME_KINDS or r["id"] not in references
            else reads_movers_right(r.get("text") or "", references[r["id"]]) for r in rows]


def subject_is_stated_mover(text: str, collision: str) -> bool | None:
    """For a written collision "the A hits the B": True when the first thought has A moving and B at rest, False when
    it has B moving and A at rest, ``None`` otherwise (both or neither moving, no reading, or no collision)."""
    m = re.fullmatch(r"the (.+?) hits the (.+)", collision.strip())
    movers = stated_movers(text)
    if not m or movers is None:
        return None
    a, b = m.group(1) in movers, m.group(2) in movers
    return a if a != b else None


def mover_agreement(rows: list[dict], options: dict[str, dict[str, str]]) -> dict[str, Counter]:
    """Over rows of :func:`either_role` on the event kinds that conclude the gold option, a collision between two
    bodies: :func:`subject_is_stated_mover` of the sentence as written, counted apart for conclusions in the world's
    order (``"ordered"``) and with the roles swapped (``"swapped"``). ``options`` maps each row's id to its options."""
    counts: dict[str, Counter] = {"ordered": Counter(), "swapped": Counter()}
    for r in rows:
        gold = options.get(r["id"], {}).get(r["answer"], "")
        if r.get("kind") in FRAME_KINDS or r["concluded"] != r["answer"] or not swapped_roles(gold):
            continue
        written = swapped_roles(gold) if r["role_swap"] else gold
        counts["swapped" if r["role_swap"] else "ordered"][subject_is_stated_mover(r.get("text") or "", written)] += 1
    return counts
