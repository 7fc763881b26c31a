"""What the held-out event-kind conclusions say: their event types, and collisions stated with the roles swapped.

A world collision's subject is the faster body ("the A hits the B", :func:`fl1_core.data.world.physics.event_text`),
and the world never offers the swapped sentence as a distractor (:mod:`fl1_core.data.world.options`), so a final
thought that names no option but states one option's collision with the roles swapped points at that option alone:

    concluded_either_i = concluded_i if concluded_i ≠ "" else the one option whose role-swapped collision the final
                         thought names ("" when none or several)

The strict reading (:func:`fl1_core.answers.concluded_option`) stays the primary score; this one is a diagnostic of
where a change of the event score sits (``scripts/role_swaps.py``, notebook 04).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from fl1_core.answers import final_thought, normalize
from fl1_core.data.world.physics import first_event_type, swapped_roles
from fl1_core.data.world.world_types import FRAME_KINDS

__all__ = ["conclusion_summary", "either_role", "swapped_option"]


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
    event accuracy read either way round, and the concluded event types (the first event each final thought states;
    ``"none"`` for a thought that states none)."""
    kept = [r for r in rows if r.get("kind") not in FRAME_KINDS]
    types = Counter(first_event_type(final_thought(r.get("text") or "")) or "none" for r in kept)
    return {"items": len(kept), "unnamed": sum(not r["concluded"] or r["role_swap"] for r in kept),
            "role_swaps": sum(r["role_swap"] for r in kept),
            "role_swaps_gold": sum(r["role_swap"] and r["concluded"] == r["answer"] for r in kept),
            "event_accuracy_either": sum(r["concluded"] == r["answer"] for r in kept) / max(1, len(kept)),
            "types": dict(sorted(types.items()))}
