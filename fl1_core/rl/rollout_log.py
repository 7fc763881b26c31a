"""The rollout log: one row per sampled response of every RL step, and what it shows about the rewards.

The judge's verdict file holds only the answers it judged, not the exact ones, so it cannot say how often an answer
of a given kind earns its reward. ``rollouts.jsonl`` (``rollouts.rank<k>.jsonl`` per process) does: every response of
every drawn group, kept by dynamic sampling or not, with its record, its answer span and its rewards
(``RLConfig.log_rollouts``; about 0.2 kB a response).

:func:`rewards_by_event_type` reads it for the free-form records whose answer is an event: the responses grouped by the
type of the first event their answer states (:func:`fl1_core.data.world.physics.first_event_type`) and, per type,

    share rewarded = #{responses of that type with acc = 1} / #{responses of that type}

by windows of steps, beside how many references of each type the drawn records had.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from fl1_core.answers import answer_span
from fl1_core.data.world.physics import first_event_type
from fl1_core.runs import read_jsonl

__all__ = ["ROLLOUTS_LOG", "read_rollouts", "rollout_rows", "rewards_by_event_type"]

ROLLOUTS_LOG = "rollouts"  # process_file stem of the rollout log


def rollout_rows(groups: Sequence[Sequence[Any]], step: int, round_index: int) -> list[dict[str, Any]]:
    """The log rows of one scored round: step (1-based), round, group, record id, the answer span ("" when the
    response closed none), acc (None when its judging failed), where acc came from, the total reward, the emitted
    length and the latent spans."""
    return [{"step": step, "round": round_index, "group": r.group, "id": r.prompt.record.id,
             "answer": answer_span(r.text) or "", "acc": r.acc, "acc_source": r.acc_source,
             "reward": round(float(r.reward), 6), "length": r.length, "spans": len(r.span_counts)}
            for g in groups for r in g]


def read_rollouts(run_dir: str | Path) -> list[dict[str, Any]]:
    """Every row of an RL run's rollout log, all processes' files ([] when the run wrote none)."""
    return [row for log in sorted(Path(run_dir).glob(f"{ROLLOUTS_LOG}*.jsonl")) for row in read_jsonl(log)]


def _event_records(records: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Id → reference of the free-form records (JSON rows of an RL file) whose reference states an event."""
    return {rec["id"]: rec["answer"] for rec in records
            if rec.get("problem_type") == "free-form" and not (rec.get("meta") or {}).get("needs_frame")
            and first_event_type(rec.get("answer") or "")}


def rewards_by_event_type(
    rows: Iterable[Mapping[str, Any]], records: Iterable[Mapping[str, Any]], window: int = 10
) -> list[dict[str, Any]]:
    """Per window of ``window`` steps: for each event type, the responses whose answer states it first ("none":
    an answer that states no event), those rewarded (acc = 1), the share rewarded, and the references of that type
    among the responses' records (one per response). Only rows of free-form event records count."""
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    references = _event_records(records)
    said: defaultdict[int, Counter] = defaultdict(Counter)
    rewarded: defaultdict[int, Counter] = defaultdict(Counter)
    refs: defaultdict[int, Counter] = defaultdict(Counter)
    for row in rows:
        ref = references.get(row["id"])
        if ref is None or row.get("acc") is None:
            continue
        w = (int(row["step"]) - 1) // window
        etype = first_event_type(row.get("answer") or "") or "none"
        said[w][etype] += 1
        rewarded[w][etype] += float(row["acc"]) >= 1.0
        refs[w][first_event_type(ref)] += 1
    out = []
    for w in sorted(said):
        for etype in sorted(set(said[w]) | set(refs[w])):
            n = said[w][etype]
            out.append({"steps": f"{w * window + 1}-{(w + 1) * window}", "type": etype, "references": refs[w][etype],
                        "said": n, "rewarded": rewarded[w][etype], "share_rewarded": rewarded[w][etype] / n if n
                        else None})
    return out
