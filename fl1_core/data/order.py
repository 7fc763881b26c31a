"""The seeded data order shared by SFT and the SFT anchor of RL.

Epoch e's order is ``perm_e = default_rng([seed, e]).permutation(n)``. With S = ⌊n / (b·A·P)⌋ optimiser steps per
epoch, step u's micro-batch m on process p takes ``perm_e[(u mod S)·b·A·P + (m·P + p)·b :][:b]`` with e = u // S
(b examples per micro-batch, A micro-batches per step, P processes). The order depends only on (seed, u), so a
resumed run draws what an uninterrupted one would, and processes never share an example within a step.
"""

from __future__ import annotations

import numpy as np

__all__ = ["epoch_permutation", "micro_batch_indices"]


def epoch_permutation(seed: int, epoch: int, n: int) -> np.ndarray:
    """The data order of one epoch: ``default_rng([seed, epoch]).permutation(n)``."""
    return np.random.default_rng([seed, epoch]).permutation(n)


def micro_batch_indices(
    seed: int, n: int, step: int, steps_per_epoch: int, batch: int, accumulation: int, processes: int, rank: int
) -> list[list[int]]:
    """Example indices of the micro-batches of optimizer step ``step`` (0-based) for process ``rank``."""
    perm = epoch_permutation(seed, step // steps_per_epoch, n)
    pos = (step % steps_per_epoch) * batch * accumulation * processes
    return [perm[pos + (m * processes + rank) * batch :][:batch].tolist() for m in range(accumulation)]
