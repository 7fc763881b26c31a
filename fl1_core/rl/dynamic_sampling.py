"""DAPO dynamic sampling (docs/PAPER.md#dynamic-sampling) in one place: the per-group filter and the rounds with refill and fallback.

- Filter (:func:`dynamic_sampling_keep`): keep a group iff ``low < mean(acc) < high`` (strict; −1 counts).
- Rounds (:func:`dynamic_sampling_rounds`): draw more rounds until ``target`` groups are kept or ``max_rounds``
  rounds were drawn; groups whose judging failed are dropped (never trained on). If the last round keeps none,
  fall back to it unfiltered (docs/PAPER.md#dynamic-sampling), then truncate to exactly ``target`` groups in draw order; otherwise a step
  with fewer kept groups trains on those (``short``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from fl1_core.rl.advantages import ArrayLike, _as_1d, group_index

__all__ = ["SamplingResult", "dynamic_sampling_keep", "dynamic_sampling_rounds"]

log = logging.getLogger(__name__)


class _HasAcc(Protocol):
    acc: float | None


def dynamic_sampling_keep(
    accuracy: ArrayLike, group_ids: ArrayLike, low: float = 0.1, high: float = 0.9
) -> torch.Tensor:
    """DAPO dynamic-sampling filter, one decision per group broadcast to its responses:

        keep_i = low < mean_{j∈g(i)} acc_j < high   (strict on both sides)

    ``acc`` takes the reward values {1, 0, −1}; −1 (a repetitive response) counts as −1 in the mean, so e.g. a group
    of 7×(−1) and 1×1 has mean −0.75 and is dropped. With n = 8 the default keeps groups with 1..7 correct and no
    repetition penalty. Means are computed in float64. Returns a bool tensor of shape [N].
    """
    acc = _as_1d(accuracy, "accuracy").to(torch.float64)
    inverse, counts = group_index(group_ids)
    inverse = inverse.to(acc.device)
    counts = counts.to(acc.device)
    if inverse.numel() != acc.numel():
        raise ValueError(f"accuracy ({acc.numel()}) and group_ids ({inverse.numel()}) differ in length")
    mean = torch.zeros(len(counts), dtype=torch.float64, device=acc.device).index_add_(0, inverse, acc)
    mean = mean / counts.to(torch.float64)
    keep_group = (mean > low) & (mean < high)
    return keep_group[inverse]


@dataclass
class SamplingResult:
    """Outcome of :func:`dynamic_sampling_rounds`."""

    groups: list[list[Any]]  # the training groups (exactly ``target`` unless ``short``)
    rounds: int  # rounds drawn (1 + refill rounds)
    drawn_groups: int
    kept_groups: int  # groups that passed the filter over all rounds (before truncation)
    dropped_groups: int  # groups with a failed judgement (never trained on)
    fallback: bool  # no group kept → the last round unfiltered
    short: bool  # fewer than ``target`` groups to train on
    drawn: list[list[Any]] = field(default_factory=list, repr=False)  # every non-dropped group drawn

    @property
    def kept_fraction(self) -> float:
        valid = self.drawn_groups - self.dropped_groups
        return self.kept_groups / valid if valid else 0.0


def _is_dropped(group: Sequence[_HasAcc]) -> bool:
    return any(r.acc is None for r in group)


def dynamic_sampling_rounds(
    draw: Callable[[int], list[list[Any]]],
    *,
    target: int,
    enabled: bool = True,
    max_rounds: int = 20,
    low: float = 0.1,
    high: float = 0.9,
    should_stop: Callable[[bool], bool] | None = None,
) -> SamplingResult:
    """Draw rounds with ``draw(round_index)`` (→ scored groups; items have ``.acc``) until ``target`` groups pass
    ``low < mean acc < high``; see the module docstring for the fallback and truncation rules.

    ``enabled=False`` (GRPO): one round, no filter (dropped groups still excluded), truncated to ``target``.
    ``should_stop(done_locally)`` lets data-parallel processes agree on when to stop (all must be done).
    """
    kept: list[list[Any]] = []
    drawn: list[list[Any]] = []
    n_drawn = n_dropped = n_kept = 0
    last_valid: list[list[Any]] = []
    last_round_kept = 0
    rounds = 0
    for rnd in range(max_rounds if enabled else 1):
        done = len(kept) >= target
        groups = [] if done else draw(rnd)
        rounds += 0 if done else 1
        valid = [g for g in groups if not _is_dropped(g)]
        n_drawn += len(groups)
        n_dropped += len(groups) - len(valid)
        drawn.extend(valid)
        if groups:
            last_valid = valid
            last_round_kept = 0
        if not enabled:
            kept.extend(valid)
            n_kept += len(valid)
        elif valid:
            acc = torch.tensor([float(r.acc) for g in valid for r in g], dtype=torch.float64)
            gid = torch.tensor([i for i, g in enumerate(valid) for _ in g], dtype=torch.long)
            keep = dynamic_sampling_keep(acc, gid, low=low, high=high)
            first = torch.tensor([0] + [len(g) for g in valid[:-1]]).cumsum(0)
            for i, g in enumerate(valid):
                if bool(keep[int(first[i])]):
                    kept.append(g)
                    n_kept += 1
                    last_round_kept += 1
        done = len(kept) >= target
        stop = should_stop(done) if should_stop is not None else done
        if stop:
            break
    fallback = False
    if enabled and len(kept) < target and last_round_kept == 0 and last_valid:
        # docs/PAPER.md#dynamic-sampling: if the last round keeps none, fall back to it unfiltered (then truncate to exactly ``target``)
        fallback = True
        kept = kept + [g for g in last_valid if all(g is not k for k in kept)]
        log.info("dynamic sampling: the last of %d round(s) kept no group; filling with it unfiltered", rounds)
    groups_out = kept[:target]
    return SamplingResult(
        groups=groups_out,
        rounds=rounds,
        drawn_groups=n_drawn,
        kept_groups=n_kept,
        dropped_groups=n_dropped,
        fallback=fallback,
        short=len(groups_out) < target,
        drawn=drawn,
    )
