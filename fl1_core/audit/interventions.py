"""What the causal ablations feed at latent slots instead of the model's own latents.

Each builder returns a *factory*: ``factory(rows) -> intervention`` where ``rows`` are the dataset indices of a
decoding batch and ``intervention(fed [B, H], index [B]) -> [B, H]`` is what
:func:`fl1_core.decoding.generate_with_latents` calls at every step (``index`` = latents already fed to the row).

* ``zeros``: 0;
* ``mean``: one vector, the mean latent of the test set (from the unablated decode);
* ``shuffle``: another test example's latents, in order (a derangement: never the example's own);
* ``noise``: Gaussian noise rescaled to the norm of the latent it replaces, ``z · ‖h‖ / ‖z‖``;
* ``oracle``: the ground-truth future-frame embeddings of the example's reasoning frames, in span order;
* ``oracle_shuffled``: the ground-truth frame embeddings of *another* example of the same question kind with the
  same number of slots (a derangement within those groups): real frames, the wrong ones. ``oracle`` minus
  ``oracle_shuffled`` is what the frame's content is worth to the answer;
* ``present``: the embeddings of the example's last question frame at every span (imagining that nothing moves):
  ``none`` minus ``present`` is what the model's imagination adds to copying the present.

A bank (shuffle, oracle) shorter than the latents a row asks for leaves the rest to the model's own latents;
:func:`bank_share` counts how many fed latents came from the bank.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

Intervention = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Factory = Callable[[Sequence[int]], Intervention]

ABLATIONS = ("zeros", "mean", "shuffle", "noise", "oracle", "oracle_shuffled", "present")


def zeros() -> Factory:
    return lambda rows: (lambda fed, index: torch.zeros_like(fed))


def constant(vector: torch.Tensor) -> Factory:
    """Every latent slot gets ``vector`` [H]."""
    vector = vector.detach().float()
    return lambda rows: (lambda fed, index: vector.to(fed.device, fed.dtype).expand_as(fed))


def matched_noise(seed: int = 0) -> Factory:
    """``z · ‖h‖ / ‖z‖`` with z ~ N(0, I): random direction, the norm of the replaced latent."""
    generator = torch.Generator().manual_seed(seed)

    def factory(rows: Sequence[int]) -> Intervention:
        def noise(fed: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
            z = torch.randn(fed.shape, generator=generator).to(fed.device, torch.float32)
            scale = fed.float().norm(dim=-1, keepdim=True) / z.norm(dim=-1, keepdim=True).clamp_min(1e-12)
            return (z * scale).to(fed.dtype)

        return noise

    return factory


@dataclass
class BankUse:
    """How many fed latents a bank supplied (``from_bank``) and how many fell back to the model's own."""

    from_bank: int = 0
    own: int = 0

    @property
    def share(self) -> float | None:
        total = self.from_bank + self.own
        return self.from_bank / total if total else None


def from_bank(bank: Sequence[torch.Tensor]) -> Factory:
    """Row ``r`` is fed ``bank[r][index]`` while it lasts, then its own latents. ``bank[r]`` is [n_r, H]."""

    def factory(rows: Sequence[int]) -> Intervention:
        vectors = [bank[r].float() for r in rows]

        def feed(fed: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
            out = fed.clone()
            for b, i in enumerate(index.tolist()):
                if i < vectors[b].shape[0]:
                    out[b] = vectors[b][i].to(fed.device, fed.dtype)
            return out

        return feed

    return factory


def bank_share(bank: Sequence[torch.Tensor], latents: Sequence[torch.Tensor]) -> BankUse:
    """How many of each row's fed latents (``latents[r]`` [m_r, H]) a bank of ``n_r`` vectors supplied."""
    use = BankUse()
    for have, fed in zip(bank, latents):
        n, m = int(have.shape[0]), int(fed.shape[0])
        use.from_bank += min(n, m)
        use.own += max(0, m - n)
    return use


def derangement(n: int, seed: int = 0) -> np.ndarray:
    """A permutation of ``range(n)`` with no fixed point (n >= 2): who lends its latents to whom."""
    if n < 2:
        raise ValueError(f"shuffling latents needs at least two examples, got {n}")
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    for i in range(n):
        if perm[i] == i:
            j = (i + 1) % n
            perm[i], perm[j] = perm[j], perm[i]
    assert not np.any(perm == np.arange(n))
    return perm


def grouped_derangement(keys: Sequence[object], seed: int = 0) -> np.ndarray:
    """For each item, another item with the same key (a derangement within each group of equal keys); -1 for an
    item alone in its group (it has no partner and keeps its own latents)."""
    perm = np.full(len(keys), -1, dtype=np.int64)
    groups: dict[object, list[int]] = {}
    for i, k in enumerate(keys):
        groups.setdefault(k, []).append(i)
    for g, (key, members) in enumerate(sorted(groups.items(), key=lambda kv: kv[1][0])):
        if len(members) < 2:
            continue
        inner = derangement(len(members), seed + g)
        for a, b in zip(members, inner):
            perm[a] = members[int(b)]
    return perm
