"""t-SNE of hidden-state groups (the latent figure of docs/PAPER.md#paper-numbers): the computation, separate from its plot
(:func:`fl1_core.plots.latent_tsne`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

TSNE_EXACT_MAX = 500  # exact t-SNE up to this many points (faster than Barnes-Hut for the demo's few hundred)


@dataclass
class TsneEmbedding:
    """Group names and their (subsampled) vectors in order, the ``[n, 2]`` coordinates and the perplexity used."""

    names: list[str]
    blocks: list[np.ndarray]
    coords: np.ndarray
    n: int
    perplexity: float


def tsne_embedding(groups: Mapping[str, Any], seed: int = 0, perplexity: float = 30.0, *, normalize: bool = False,
                   max_points_per_group: int | None = None, method: str = "auto") -> TsneEmbedding:
    """2-D t-SNE of ``groups`` (``{"prompt text": [N, H], "latent span 1": [K, H], …}``; numpy, torch or lists;
    empty groups skipped). ``perplexity`` is lowered to ``max(1, (n − 1) / 3)`` for small n; vectors of more than
    50 dimensions are first reduced by a deterministic PCA (SVD) to 50; ``normalize`` L2-normalises each vector;
    ``max_points_per_group`` subsamples each group (seeded); ``method`` ``"exact"``, ``"barnes_hut"`` or ``"auto"``
    (exact up to :data:`TSNE_EXACT_MAX` points). Same seed → same result."""
    from sklearn.manifold import TSNE

    if method not in ("auto", "exact", "barnes_hut"):
        raise ValueError(f"method must be 'auto', 'exact' or 'barnes_hut', got {method!r}")
    rng = np.random.default_rng(seed)
    names: list[str] = []
    blocks: list[np.ndarray] = []
    dim: int | None = None
    for name, arr in groups.items():
        if hasattr(arr, "detach"):
            arr = arr.detach().float().cpu().numpy()
        x = np.asarray(arr, dtype=np.float64)
        if x.size == 0:
            continue
        if x.ndim == 1:
            x = x[None, :]
        if x.ndim != 2:
            raise ValueError(f"group {name!r}: expected a [n, H] array, got shape {x.shape}")
        if dim is None:
            dim = x.shape[1]
        elif x.shape[1] != dim:
            raise ValueError(f"group {name!r}: hidden size {x.shape[1]} differs from {dim} of earlier groups")
        if not np.isfinite(x).all():
            raise ValueError(f"group {name!r}: contains NaN or inf")
        if max_points_per_group is not None and x.shape[0] > max_points_per_group:
            x = x[np.sort(rng.choice(x.shape[0], max_points_per_group, replace=False))]
        names.append(str(name))
        blocks.append(x)
    if not blocks:
        raise ValueError("latent_tsne needs at least one non-empty group")
    data = np.concatenate(blocks, axis=0)
    if normalize:
        data = data / np.maximum(np.linalg.norm(data, axis=1, keepdims=True), 1e-12)
    n = data.shape[0]
    if n == 1:
        coords = np.zeros((1, 2))
        eff_perplexity = float("nan")
    else:
        eff_perplexity = float(min(perplexity, max(1.0, (n - 1) / 3.0)))
        if eff_perplexity >= n:
            eff_perplexity = max(0.5, n - 1.0)
        if data.shape[1] > 50 and n > 50:  # the usual PCA pre-reduction (deterministic, full SVD)
            centred = data - data.mean(axis=0, keepdims=True)
            _, _, vt = np.linalg.svd(centred, full_matrices=False)
            data = centred @ vt[:50].T
        init = "pca" if n > 2 and data.shape[1] >= 2 else "random"
        if method == "auto":
            method = "exact" if n <= TSNE_EXACT_MAX else "barnes_hut"
        tsne = TSNE(n_components=2, perplexity=eff_perplexity, init=init, random_state=seed, learning_rate="auto",
                    method=method)
        coords = tsne.fit_transform(data)
    return TsneEmbedding(names, blocks, coords, n, eff_perplexity)


__all__ = ["TSNE_EXACT_MAX", "TsneEmbedding", "tsne_embedding"]
