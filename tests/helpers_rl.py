"""A deterministic RL reward for tests: a random tiny model answers nothing right, so on top of the real scoring each
response gets the share of even token ids it emitted, which varies within a group and makes advantages non-zero."""

from __future__ import annotations


def with_even_token_reward(score_groups):
    """``score_groups`` wrapped so every scored response's reward becomes its share of even token ids."""

    def scored(groups, **kw):
        stats = score_groups(groups, **kw)
        for g in groups:
            for r in g:
                r.reward = float((r.sequence % 2 == 0).float().mean()) if r.length else 0.0
        return stats

    return scored
