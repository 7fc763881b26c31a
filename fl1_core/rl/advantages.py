"""GRPO group advantages (docs/PAPER.md#grpo-advantage), vectorised pure functions (dynamic sampling: :mod:`fl1_core.rl.dynamic_sampling`).

A *group* is the set of responses sharing a group id (the n rollouts of one prompt). Ids may be any integers, in any
order, not necessarily contiguous; per-group statistics are computed with ``torch.unique`` + ``index_add`` (no Python
loop over responses).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

__all__ = ["group_advantages", "group_index"]

ArrayLike = torch.Tensor | np.ndarray | Sequence[float]


def _as_1d(x: ArrayLike, name: str, dtype: torch.dtype | None = None) -> torch.Tensor:
    t = torch.as_tensor(x)
    if dtype is not None:
        t = t.to(dtype)
    if t.dim() != 1:
        raise ValueError(f"{name} must be 1-D, got shape {tuple(t.shape)}")
    return t


def group_index(group_ids: ArrayLike) -> tuple[torch.Tensor, torch.Tensor]:
    """Map arbitrary integer group ids to ``(inverse, counts)``: ``inverse[i]`` ∈ [0, G) is the dense index of
    response i's group (groups in sorted id order) and ``counts[g]`` the size of group g."""
    ids = _as_1d(group_ids, "group_ids")
    if ids.is_floating_point() or ids.dtype == torch.bool:
        raise ValueError(f"group_ids must be integers, got dtype {ids.dtype}")
    _, inverse, counts = torch.unique(ids, return_inverse=True, return_counts=True)
    return inverse, counts


def group_advantages(rewards: ArrayLike, group_ids: ArrayLike, eps: float = 1e-6) -> torch.Tensor:
    """GRPO outcome advantages, normalised within each group:

        A_i = (R_i − mean_g) / (std_g + eps),   g = group of i,
        mean_g = (1/n_g) Σ_{j∈g} R_j,   std_g = sqrt( Σ_{j∈g} (R_j − mean_g)² / (n_g − 1) )   (unbiased).

    Advantages sum to 0 within each group; a group whose rewards are all equal gets A = 0. Statistics are computed in
    float64; the result has the dtype of ``rewards`` when that is a floating tensor/array (float32 for Python lists
    and integer inputs), on its device.

    Raises:
        ValueError: a group of size 1 (its unbiased std is undefined), or length mismatch.
    """
    r_in = _as_1d(rewards, "rewards")
    out_dtype = r_in.dtype if r_in.is_floating_point() else torch.float32
    r = r_in.to(torch.float64)
    inverse, counts = group_index(group_ids)
    inverse = inverse.to(r.device)
    counts = counts.to(r.device)
    if inverse.numel() != r.numel():
        raise ValueError(f"rewards ({r.numel()}) and group_ids ({inverse.numel()}) differ in length")
    if (counts < 2).any():
        ids = torch.unique(_as_1d(group_ids, "group_ids"))
        bad = ids[(counts < 2).cpu()].tolist()
        raise ValueError(f"group advantages need at least 2 responses per group; groups of size 1: {bad}")
    n = counts.to(torch.float64)
    sums = torch.zeros(len(counts), dtype=torch.float64, device=r.device).index_add_(0, inverse, r)
    mean = sums / n
    centred = r - mean[inverse]
    sq = torch.zeros_like(sums).index_add_(0, inverse, centred * centred)
    std = torch.sqrt(sq / (n - 1.0))
    return (centred / (std[inverse] + eps)).to(out_dtype)

