"""The SFT anchor's draw aimed at what RL forgets (``RLConfig.sft_anchor_draw = "drift"``; a workbook deviation).

The anchor's records are grouped by ``meta[sft_anchor_group_key]`` (the world's question kind; records without the
key form one group). A probe of ``sft_anchor_probe`` records per group (at most half of the group; a group of one
record has none and is never drawn) is set apart: the anchor never trains on it, so its loss measures what RL
changes, not what the anchor fits. The probe is scored before the first update (the init, θ₀) and every
``sft_anchor_probe_every`` steps after it (θ): CE_g is the probe's mean token CE of group g. Each anchor slot then
draws group g with probability

    w_g = max(0, CE_g(θ) − CE_g(θ₀)) / Σ_h max(0, CE_h(θ) − CE_h(θ₀))

and one of its other records uniformly. Until a group's loss has risen (before the first probe after the init, or
when none has), every slot draws uniformly from all records outside the probe (w_g ∝ their count). Only the anchor's
SFT records are read: which groups to hold comes from the training data, never from held-out items. Every draw
depends on (seed, update, rank) and the weights, which checkpoints keep, so a resumed run draws what an
uninterrupted one would.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from fl1_core.data.records import SFTRecord

__all__ = ["NO_GROUP", "drawable", "drift_weights", "group_indices", "probe_indices", "weighted_draw"]

NO_GROUP = "(none)"  # the group of records whose meta lacks the group key


def group_indices(records: Sequence[SFTRecord], key: str) -> dict[str, list[int]]:
    """Record indices by ``meta[key]`` (as a string), in record order; records without the key go to ``NO_GROUP``."""
    groups: dict[str, list[int]] = {}
    for i, record in enumerate(records):
        value = (record.meta or {}).get(key)
        groups.setdefault(NO_GROUP if value is None else str(value), []).append(i)
    return dict(sorted(groups.items()))


def probe_indices(groups: Mapping[str, Sequence[int]], size: int, seed: int) -> dict[str, list[int]]:
    """The probe: min(``size``, ⌊n_g / 2⌋) indices of each group g, a seeded choice without replacement, the same at
    every probe so that CE_g(θ) − CE_g(θ₀) compares the same records. Groups too small for one are left out."""
    if size < 1:
        raise ValueError(f"sft_anchor_probe must be >= 1, got {size}")
    rng = np.random.default_rng([seed, 65537])
    probe = {g: sorted(int(i) for i in rng.permutation(np.asarray(ix))[:min(size, len(ix) // 2)])
             for g, ix in groups.items()}
    return {g: ix for g, ix in probe.items() if ix}


def drawable(groups: Mapping[str, Sequence[int]], probe: Mapping[str, Sequence[int]]) -> dict[str, list[int]]:
    """Each probed group's records outside its probe (what the drift draw may train on)."""
    kept = {}
    for g, ix in probe.items():
        probed = set(ix)
        kept[g] = [i for i in groups[g] if i not in probed]
    return kept


def drift_weights(init: Mapping[str, float], now: Mapping[str, float]) -> dict[str, float]:
    """w_g = max(0, now_g − init_g) / Σ_h max(0, now_h − init_h); all zeros when no group's loss rose."""
    if set(init) != set(now):
        raise ValueError(f"probe groups differ: init {sorted(init)}, now {sorted(now)}")
    rise = {g: max(0.0, float(now[g]) - float(init[g])) for g in sorted(init)}
    total = sum(rise.values())
    return {g: (r / total if total > 0 else 0.0) for g, r in rise.items()}


def weighted_draw(groups: Mapping[str, Sequence[int]], weights: Mapping[str, float], *, seed: int, update: int,
                  batch: int, rank: int) -> list[int]:
    """``batch`` record indices for optimiser step ``update`` on process ``rank``: each slot draws a group by
    ``weights`` and a record of it uniformly, from ``default_rng([seed, update, rank, 7])``."""
    names = [g for g in sorted(groups) if weights.get(g, 0.0) > 0]
    if not names:
        raise ValueError("weighted_draw needs a group with a positive weight")
    p = np.asarray([weights[g] for g in names], dtype=float)
    rng = np.random.default_rng([seed, update, rank, 7])
    picks = rng.choice(len(names), size=batch, p=p / p.sum())
    return [int(groups[names[k]][rng.integers(len(groups[names[k]]))]) for k in picks]
