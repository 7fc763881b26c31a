"""Held-out response rows (``fl1 heldout``'s ``<out>.<name>.jsonl``): each scored by letter or event (:func:`hit`),
and the paired differences between two files, item by item.

Every file holds one row per record (``id``, ``answer``, ``pred``, ``correct``, ``concluded``, ``group``); the rows
of a reference file and another file are matched by ``id``. Per group (``event kinds`` = text-solvable and
vision-dependent, ``frame`` = frame-needing, and ``all``), or per question kind (``by="kind"``), and per score:

    event_i    = 1[concluded_i = answer_i]      (the final thought names the gold option)
    letter_i   = correct_i                      (the answer letter)
    unnamed_i  = 1[concluded_i is empty]        (the final thought names no option: a diagnostic, not a score)
    Δ = mean_i(s_i(model) − s_i(reference)), 95 % interval Δ ± 1.96 · sd(d) / √n

(:func:`fl1_core.intervals.paired_difference`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..intervals import paired_difference

GROUPS = {"event kinds": ("text", "vision"), "frame": ("frame",)}


def read_rows(path: str | Path) -> dict[str, dict[str, Any]]:
    """``{id: row}`` of one response file; a missing file or one without the needed fields is refused, naming it."""
    if not Path(path).is_file():
        raise ValueError(f"no such response file: {path}")
    rows = {}
    for n, line in enumerate(Path(path).read_text().splitlines(), start=1):
        if not line.strip():
            continue
        row = json.loads(line)
        missing = [k for k in ("id", "answer", "correct", "concluded", "group") if k not in row]
        if missing:
            raise ValueError(f"{path}:{n}: not a held-out response row (missing {', '.join(missing)})")
        rows[row["id"]] = row
    if not rows:
        raise ValueError(f"{path}: no response rows")
    return rows


def read_pooled(paths: Sequence[str | Path]) -> dict[str, dict[str, Any]]:
    """The rows of several files (one per training seed) as one pool: the k-th file's ids become ``<k>:<id>``, so a
    pooled paired difference pairs seed k's rows with seed k's rows only."""
    if not paths:
        raise ValueError("no response files to pool")
    if len(paths) == 1:
        return read_rows(paths[0])
    return {f"{k}:{i}": row for k, path in enumerate(paths) for i, row in read_rows(path).items()}


# strict option letter (the paper's score) / concluded option (fl1_core.answers) / no option concluded
METRICS = ("letter", "event", "unnamed")


def hit(row: Mapping, metric: str = "letter") -> bool:
    """One held-out row scored by ``metric``: ``letter`` → its strict letter is right; ``event`` → its final thought
    states the right option (``concluded``, written by :func:`fl1_core.evaluation.heldout.evaluate_heldout_mcq`);
    ``unnamed`` → its final thought names none of the options (``concluded`` empty)."""
    if metric == "letter":
        return bool(row["correct"])
    if metric == "event":
        if "concluded" not in row:
            raise KeyError("held-out rows without 'concluded' (written before event accuracy existed); "
                           "re-run `fl1 heldout` on the checkpoints")
        return row["concluded"] == row["answer"]
    if metric == "unnamed":
        return row["concluded"] == ""
    raise ValueError(f"unknown metric {metric!r}; expected one of {METRICS}")


BREAKDOWNS = ("group", "kind")


def _subsets(reference: Mapping[str, Mapping], by: str) -> dict[str, Any]:
    """``{name: predicate on a reference row}``: the groups and ``all`` (``by="group"``), or each question kind in
    the reference file's order of first appearance, frame-needing kinds last (``by="kind"``)."""
    if by == "group":
        subsets = {g: (lambda row, m=members: row["group"] in m) for g, members in GROUPS.items()}
        return {**subsets, "all": lambda row: True}
    if by != "kind":
        raise ValueError(f"unknown breakdown {by!r}; expected one of {BREAKDOWNS}")
    missing = next((i for i, row in reference.items() if "kind" not in row), None)
    if missing is not None:
        raise KeyError(f"reference rows without 'kind' (e.g. {missing}); re-run `fl1 heldout` on the checkpoints")
    kinds = {row["kind"]: row["group"] == "frame" for row in reference.values()}
    ordered = sorted(kinds, key=lambda k: kinds[k])  # stable: event kinds first, then frame-needing ones
    return {k: (lambda row, kind=k: row["kind"] == kind) for k in ordered}


def paired_table(reference: Mapping[str, Mapping], others: Mapping[str, Mapping[str, Mapping]], by: str = "group"
                 ) -> list[dict[str, Any]]:
    """One row per (model, group) or (model, question kind) with ``by="kind"``: accuracies of both and the paired Δ
    of each score (ids both files hold)."""
    subsets = _subsets(reference, by)
    out = []
    for name, rows in others.items():
        ids = sorted(set(reference) & set(rows))
        if not ids:
            raise ValueError(f"{name}: no record id in common with the reference file")
        for group, member in subsets.items():
            chosen = [i for i in ids if member(reference[i])]
            if not chosen:
                continue
            row: dict[str, Any] = {"model": name, "group": group, "n": len(chosen)}
            for score in METRICS:
                ref = [hit(reference[i], score) for i in chosen]
                new = [hit(rows[i], score) for i in chosen]
                row[f"{score} reference"] = sum(ref) / len(ref)
                row[f"{score}"] = sum(new) / len(new)
                row[f"{score} delta"] = paired_difference(new, ref)
            out.append(row)
    return out


def format_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """The table as aligned text, in points."""
    lines = []
    for r in rows:
        cells = [f"{r['model']:<16} {r['group']:<18} n={r['n']:<4}"]
        for score in METRICS:
            d = r[f"{score} delta"]
            cells.append(f"{score} {100 * r[f'{score} reference']:.1f} -> {100 * r[score]:.1f}  Δ {100 * d['delta']:+.1f} "
                         f"[{100 * d['ci95'][0]:+.1f}, {100 * d['ci95'][1]:+.1f}]")
        lines.append("   ".join(cells))
    return "\n".join(lines)
