"""GRPO group advantages and dynamic sampling (docs/PAPER.md#grpo-advantage, docs/PAPER.md#dynamic-sampling)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from fl1_core.rl import dynamic_sampling_keep, group_advantages
from fl1_core.rl.dynamic_sampling import dynamic_sampling_rounds


def test_hand_computed_values_unbiased_std():
    # group 7: [1, 0] → mean 0.5, unbiased std = sqrt(0.5); group 3: [0, 0, 3] → mean 1, std sqrt(3)
    adv = group_advantages([1.0, 0.0, 0.0, 3.0, 0.0], [7, 7, 3, 3, 3])
    s2 = math.sqrt(0.5)
    s3 = math.sqrt(((0 - 1) ** 2 * 2 + (3 - 1) ** 2) / 2)
    d2, d3 = s2 + 1e-6, s3 + 1e-6
    expected = torch.tensor([0.5 / d2, -0.5 / d2, -1 / d3, 2 / d3, -1 / d3])
    assert torch.allclose(adv, expected, atol=1e-6)


def test_sum_zero_per_group_and_affine_invariance():
    rng = np.random.default_rng(0)
    ids = np.repeat([10, 42, 3, 99], 8)
    rng.shuffle(ids)  # interleaved, non-contiguous ids
    r = rng.normal(size=ids.size)
    adv = group_advantages(torch.tensor(r, dtype=torch.float64), ids)
    for g in np.unique(ids):
        sel = torch.from_numpy(ids == g)
        assert adv[sel].sum().abs().item() < 1e-9
        assert adv[sel].std().item() == pytest.approx(1.0, abs=1e-5)  # unbiased std of A is 1 (up to eps)
    adv2 = group_advantages(torch.tensor(3.5 * r - 2.0, dtype=torch.float64), ids)
    assert torch.allclose(adv, adv2, atol=1e-5)
    assert adv.dtype == torch.float64


def test_constant_group_gives_zero_and_float32_default():
    adv = group_advantages([1, 1, 1, 0, 1], [0, 0, 0, 1, 1])
    assert adv.dtype == torch.float32
    assert torch.all(adv[:3] == 0)
    assert torch.isfinite(adv).all()


def test_size_one_group_raises():
    with pytest.raises(ValueError, match="size 1"):
        group_advantages([1.0, 0.0, 0.5], [0, 0, 1])
    with pytest.raises(ValueError):
        group_advantages([1.0, 0.0], [0, 0, 1])


@pytest.mark.parametrize("k", range(9))
def test_filter_keeps_one_to_seven_of_eight(k):
    acc = [1.0] * k + [0.0] * (8 - k)
    keep = dynamic_sampling_keep(acc, [5] * 8)
    assert keep.dtype == torch.bool
    assert keep.shape == (8,)
    assert bool(keep.all()) == (1 <= k <= 7)
    assert bool(keep.any()) == (1 <= k <= 7)


def test_filter_minus_one_counts_in_mean_and_whole_group_decisions():
    groups = {
        0: [-1] * 7 + [1],  # mean -0.75 → dropped
        1: [1, -1] + [0] * 6,  # mean 0 → dropped (would be 0.125 if -1 counted as 0)
        2: [-1, 1, 1] + [0] * 5,  # mean 0.125 → kept
        3: [1] * 7 + [-1],  # mean 0.75 → kept
        4: [1] * 8,  # dropped
    }
    ids = [g for g, accs in groups.items() for _ in accs]
    acc = [a for accs in groups.values() for a in accs]
    keep = dynamic_sampling_keep(acc, ids)
    expected = {0: False, 1: False, 2: True, 3: True, 4: False}
    assert keep.tolist() == [expected[g] for g in ids]


def test_filter_bounds_are_strict():
    # 1 of 10 correct → mean exactly 0.1; 9 of 10 → 0.9: both dropped
    assert not dynamic_sampling_keep([1] + [0] * 9, [0] * 10).any()
    assert not dynamic_sampling_keep([1] * 9 + [0], [0] * 10).any()
    assert dynamic_sampling_keep([1] + [0] * 9, [0] * 10, low=0.05).all()


# ------------------------------------------------------------------------------------------- dynamic sampling
def _groups(accs: list[list[float]]):
    return [[SimpleNamespace(acc=a, tag=(gi, j)) for j, a in enumerate(g)] for gi, g in enumerate(accs)]


def test_dynamic_sampling_refills_until_enough_groups_then_truncates():
    rounds = {
        0: _groups([[1, 1, 1, 1], [0, 0, 0, 0], [-1, -1, -1, -1], [1, 1, 1, 1]]),  # all-same: nothing kept
        1: _groups([[1, 0, 0, 0], [1, 1, 1, 0], [0, 1, 0, 1], [1, 1, 1, 1]]),  # 3 mixed groups
    }
    calls = []

    def draw(rnd):
        calls.append(rnd)
        return rounds[rnd]

    res = dynamic_sampling_rounds(draw, target=2, max_rounds=20)
    assert calls == [0, 1] and res.rounds == 2
    assert len(res.groups) == 2 and [g[0].tag[0] for g in res.groups] == [0, 1]  # exact truncation, draw order
    assert res.groups[0] is rounds[1][0] and res.groups[1] is rounds[1][1]
    assert res.kept_groups == 3 and not res.fallback and not res.short


def test_dynamic_sampling_falls_back_to_the_last_round_unfiltered():
    calls = []

    def draw(rnd):
        calls.append(rnd)
        return _groups([[1, 1], [0, 0], [-1, 1]])  # means 1, 0, 0: all outside (0.1, 0.9)

    res = dynamic_sampling_rounds(draw, target=2, max_rounds=3)
    assert calls == [0, 1, 2] and res.fallback and res.kept_groups == 0
    assert len(res.groups) == 2 and [[r.acc for r in g] for g in res.groups] == [[1, 1], [0, 0]]


def test_dynamic_sampling_fills_up_from_a_last_round_that_keeps_none():
    """docs/PAPER.md#dynamic-sampling: "if the last round keeps none, fall back to it unfiltered; truncate to exactly 64×8" — also when
    earlier rounds kept some groups (it must not train short on the kept ones)."""
    rounds = {0: _groups([[1, 0], [1, 1]]), 1: _groups([[1, 1], [0, 0], [1, 1]])}  # round 0 keeps 1, round 1 none
    res = dynamic_sampling_rounds(lambda r: rounds[r], target=3, max_rounds=2)
    assert res.fallback and not res.short and res.kept_groups == 1
    assert res.groups == [rounds[0][0], rounds[1][0], rounds[1][1]]  # kept first, then the last round in order
