"""Selection by visual gain (the reasons in order: easy, negative_gain, zero_gain, below_min_gain, beyond_top_k),
its summary, and the curated file's rows and CSV table."""

from __future__ import annotations

import csv
import dataclasses
import io
import logging
import math
import random
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any



logger = logging.getLogger(__name__)


from ..answers import reference_letter
from .config import REASONS, CurationConfig, Decision, GainScore




# ------------------------------------------------------------------------------------------------------ selection
def select_by_gain(
    scores: Sequence[GainScore], config: CurationConfig, strata: Mapping[str, str] | None = None
) -> list[Decision]:
    """Decisions in the order of ``scores``: drop easy (P_t ≥ easy_threshold), negative (g < 0), zero (g = 0, if
    ``drop_zero_gain``) and below-threshold (g < min_gain) records; rank the rest by (−g, id) and keep the top K.

    With ``config.stratify_letters`` and ``strata`` (record id → stratum, see :func:`answer_stratum`), each stratum
    keeps its own top ``⌊K · n_s / N⌋`` (n_s of the N scored records are in it), so the kept set keeps the input's
    share of each answer letter; a stratum with fewer eligible records keeps them all (its quota is not passed on).
    With ``config.centre_gain`` and ``strata``, g is replaced by ``g − ḡ_s``, the mean gain of the record's stratum
    over all scored records, everywhere above (the thresholds, the ranking).
    """
    reasons: dict[str, str] = {}
    eligible: list[GainScore] = []
    gains = _selection_gains(scores, strata if config.centre_gain else None)
    for s in scores:
        g = gains[s.id]
        if s.p_text >= config.easy_threshold:
            reasons[s.id] = "easy"
        elif g < 0:
            reasons[s.id] = "negative_gain"
        elif g == 0 and config.drop_zero_gain:
            reasons[s.id] = "zero_gain"
        elif g < config.min_gain:
            reasons[s.id] = "below_min_gain"
        else:
            eligible.append(s)
    eligible.sort(key=lambda s: (-gains[s.id], s.id))
    if config.top_k is not None:
        k = config.top_k
    elif config.keep_fraction is not None:
        k = int(math.floor(config.keep_fraction * len(scores) + 1e-9))
    else:
        k = len(eligible)
    ranks = {s.id: i + 1 for i, s in enumerate(eligible)}
    if config.stratify_letters and strata is not None:
        kept_ids = _stratified_top(scores, eligible, strata, k)
    else:
        kept_ids = {s.id for s in eligible if ranks[s.id] <= k}
    for s in eligible:
        reasons[s.id] = "kept" if s.id in kept_ids else "beyond_top_k"
    return [
        Decision(
            id=s.id, p_text=s.p_text, p_hint=s.p_hint, gain=s.gain, kept=reasons[s.id] == "kept", reason=reasons[s.id],
            rank=ranks.get(s.id), question_kind=s.question_kind, needs_vision=s.needs_vision,
            selection_gain=gains[s.id],
        )
        for s in scores
    ]


def _selection_gains(scores: Sequence[GainScore], strata: Mapping[str, str] | None) -> dict[str, float]:
    """Per id the gain selection uses: ``g``, or with ``strata`` ``g − mean(g over the record's stratum)``."""
    if strata is None:
        return {s.id: s.gain for s in scores}
    by_stratum: dict[str, list[float]] = {}
    for s in scores:
        by_stratum.setdefault(strata.get(s.id, "free-form"), []).append(s.gain)
    means = {name: sum(gs) / len(gs) for name, gs in by_stratum.items()}
    return {s.id: s.gain - means[strata.get(s.id, "free-form")] for s in scores}


def answer_stratum(answer: str) -> str:
    """The selection stratum of a record: its option letter for a multiple-choice answer
    (:func:`fl1_core.answers.reference_letter`), else ``"free-form"``."""
    return reference_letter(answer) or "free-form"


def _stratified_top(
    scores: Sequence[GainScore], eligible: Sequence[GainScore], strata: Mapping[str, str], k: int
) -> set[str]:
    """Ids of each stratum's top ``⌊k · n_s / N⌋`` eligible records (``eligible`` is already ranked)."""
    sizes = Counter(strata.get(s.id, "free-form") for s in scores)
    quota = {name: int(math.floor(k * n / max(len(scores), 1) + 1e-9)) for name, n in sizes.items()}
    kept: set[str] = set()
    for s in eligible:
        name = strata.get(s.id, "free-form")
        if quota[name] > 0:
            kept.add(s.id)
            quota[name] -= 1
    return kept


# ------------------------------------------------------------------------------------------------------ summary and curated rows
def _mean(xs: Sequence[float]) -> float | None:
    return float(sum(xs) / len(xs)) if xs else None


def _share(ds: Sequence[Decision]) -> float | None:
    known = [d.needs_vision for d in ds if d.needs_vision is not None]
    return float(sum(known) / len(known)) if known else None


def summarize(decisions: Sequence[Decision], config: CurationConfig) -> dict[str, Any]:
    """Counts, mean gain / P of kept vs dropped vs all, needs_vision shares, question kinds, and a random-selection
    baseline of the same K (one seeded draw; its expectation is the 'all' column)."""
    kept = [d for d in decisions if d.kept]
    dropped = [d for d in decisions if not d.kept]

    def block(ds: Sequence[Decision]) -> dict[str, Any]:
        return {
            "count": len(ds),
            "mean_gain": _mean([d.gain for d in ds]),
            "mean_p_text": _mean([d.p_text for d in ds]),
            "mean_p_hint": _mean([d.p_hint for d in ds]),
            "needs_vision_share": _share(ds),
            "question_kinds": dict(sorted(Counter(str(d.question_kind) for d in ds).items())),
        }

    rng = random.Random(config.baseline_seed)
    rand = rng.sample(list(decisions), len(kept)) if kept else []
    return {
        "counts": {"scored": len(decisions), "kept": len(kept), "dropped": len(dropped),
                   "by_reason": {r: sum(d.reason == r for d in decisions) for r in REASONS}},
        "kept": block(kept),
        "dropped": block(dropped),
        "all": block(decisions),
        "random_baseline": {"k": len(kept), "seed": config.baseline_seed, "mean_gain": _mean([d.gain for d in rand]),
                            "needs_vision_share": _share(rand),
                            "expected_mean_gain": _mean([d.gain for d in decisions]),
                            "expected_needs_vision_share": _share(decisions)},
    }


def _absolute_paths(row: dict[str, Any], root: Path) -> dict[str, Any]:
    """Copy of ``row`` with relative ``video`` and image-path entries resolved against ``root`` (indices untouched)."""
    row = dict(row)
    fix = lambda p: p if Path(p).expanduser().is_absolute() else str((root / p).resolve())  # noqa: E731
    if isinstance(row.get("video"), str):
        row["video"] = fix(row["video"])
    for key in ("image", "reasoning_image"):
        if isinstance(row.get(key), list):
            row[key] = [fix(x) if isinstance(x, str) else x for x in row[key]]
    return row


def _table_csv(decisions: Sequence[Decision]) -> str:
    buf = io.StringIO()
    names = [f.name for f in dataclasses.fields(Decision)]
    writer = csv.DictWriter(buf, fieldnames=names, lineterminator="\n")
    writer.writeheader()
    for d in decisions:
        writer.writerow(dataclasses.asdict(d))
    return buf.getvalue()
