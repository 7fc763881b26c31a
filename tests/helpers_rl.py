"""RL test helpers: a deterministic reward (a random tiny model answers nothing right, so on top of the real scoring
each response gets the share of even token ids it emitted, which varies within a group and makes advantages
non-zero), and a registered algorithm that trains on every drawn group (a tiny test step always has data)."""

from __future__ import annotations

import dataclasses

from fl1_core.rl.algorithms import ALGORITHMS, register_algorithm

#: la-dapo without dynamic sampling: every drawn group is trained on
ALL_GROUPS = "la-dapo-all-groups"
if ALL_GROUPS not in ALGORITHMS:
    register_algorithm(dataclasses.replace(ALGORITHMS["la-dapo"], name=ALL_GROUPS, dynamic_sampling=False))


def with_even_token_reward(score_groups):
    """``score_groups`` wrapped so every scored response's reward becomes its share of even token ids."""

    def scored(groups, **kw):
        stats = score_groups(groups, **kw)
        for g in groups:
            for r in g:
                r.reward = float((r.sequence % 2 == 0).float().mean()) if r.length else 0.0
        return stats

    return scored
