"""Confidence intervals of accuracies measured on n items (the base's card, the baselines, the audit) and of paired
differences between two models on the same items (and of two proportions on different items)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion: ``(p̂ + z²/2n ± z·sqrt(p̂(1−p̂)/n + z²/4n²)) / (1 + z²/n)``."""
    if n <= 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def paired_difference(a: Sequence[bool], b: Sequence[bool]) -> dict[str, Any]:
    """Mean of ``1[a_i] − 1[b_i]`` with its normal 95 % interval ``d̄ ± 1.96 · sd(d) / √n`` (same items in the same
    order)."""
    if len(a) != len(b):
        raise ValueError(f"paired difference over {len(a)} and {len(b)} items")
    d = np.asarray([float(x) - float(y) for x, y in zip(a, b)])
    if not len(d):
        return {"n": 0, "delta": float("nan"), "ci95": [float("nan"), float("nan")]}
    half = 1.96 * d.std(ddof=1) / math.sqrt(len(d)) if len(d) > 1 else 0.0
    return {"n": len(d), "delta": float(d.mean()), "ci95": [float(d.mean() - half), float(d.mean() + half)]}


def unpaired_difference(a: Sequence[bool], b: Sequence[bool]) -> dict[str, Any]:
    """Difference of two proportions on different items, ``p̂_a − p̂_b ± 1.96 · sqrt(p̂_a(1−p̂_a)/n_a + p̂_b(1−p̂_b)/n_b)``
    (the normal interval)."""
    if not len(a) or not len(b):
        return {"n": [len(a), len(b)], "delta": float("nan"), "ci95": [float("nan"), float("nan")]}
    pa, pb = float(np.mean(a)), float(np.mean(b))
    half = 1.96 * math.sqrt(pa * (1 - pa) / len(a) + pb * (1 - pb) / len(b))
    return {"n": [len(a), len(b)], "delta": pa - pb, "ci95": [pa - pb - half, pa - pb + half]}


__all__ = ["paired_difference", "unpaired_difference", "wilson_interval"]
