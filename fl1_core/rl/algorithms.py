"""Named RL settings, registered like verl's advantage estimators: the algorithm (``grpo``, ``dapo``, ``la-dapo``) and
the implementation (``release``, ``corrected``). ``RLConfig.mode`` and ``RLConfig.implementation`` name one of each;
every value a run uses is written here, none is derived from a missing field.

Algorithms (docs/PAPER.md#la-dapo):

- ``grpo`` — no dynamic sampling, symmetric clip ε_low = ε_high = 0.2, sequence-mean aggregation, no latent rewards;
- ``dapo`` — clip-higher ε = 0.2 / 0.28, dynamic sampling with refill rounds (docs/PAPER.md#dynamic-sampling),
  token-mean aggregation (docs/PAPER.md#dapo-loss), no latent rewards;
- ``la-dapo`` — ``dapo`` plus R_ctr and R_div with the implementation's weights (docs/PAPER.md#rewards).

Two ablations between GRPO and DAPO, each ``grpo`` with one DAPO ingredient (not in the paper; they ask which
ingredient makes DAPO keep its SFT init where GRPO loses):

- ``grpo-token-mean`` — ``grpo`` with DAPO's token-mean aggregation;
- ``grpo-dynamic-sampling`` — ``grpo`` with DAPO's dynamic sampling.

Implementations:

- ``release`` — what the authors' code ran: log-probs recomputed WITHOUT latent replay (the static ``<|latent|>``
  embedding), forced tokens inside the loss mask, one optimiser step per rollout (so ρ ≡ 1 and clipping never
  fires), λ_ctr = 1.0, τ = 0.5, λ_div = 0 (the launcher's; docs/PAPER.md#release-defects);
- ``corrected`` — latent replay in every log-prob recomputation, forced tokens masked out of the policy loss and KL,
  ``mini_batches × epochs_per_rollout`` optimiser steps per rollout, λ_ctr = 0.2, τ = 0.5, λ_div = 0.1 (the
  release's README; docs/PAPER.md#deviations).

A new variant is a new registered name (:func:`register_algorithm`, :func:`register_implementation`), not a
change to an existing one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["ALGORITHMS", "IMPLEMENTATIONS", "Algorithm", "Implementation", "algorithm", "implementation",
           "register_algorithm", "register_implementation"]


@dataclass(frozen=True)
class Algorithm:
    """How groups are kept and the policy loss is clipped and aggregated.

    ``ℓ = max(−A·ρ, −A·clip(ρ, 1 − eps_low, 1 + eps_high))`` per token, averaged over tokens (``loss_agg="token"``)
    or per sequence, then over sequences (``"seq"``); ``dynamic_sampling`` keeps only groups whose mean accuracy
    lies strictly inside the filter band; ``latent_rewards`` adds λ_ctr·R_ctr − λ_div·C̄² to the reward."""

    name: str
    dynamic_sampling: bool
    eps_low: float
    eps_high: float
    loss_agg: Literal["token", "seq"]
    latent_rewards: bool

    def __post_init__(self) -> None:
        if self.loss_agg not in ("token", "seq"):
            raise ValueError(f"algorithm {self.name!r}: loss_agg must be 'token' or 'seq', got {self.loss_agg!r}")
        if self.eps_low < 0 or self.eps_high < 0:
            raise ValueError(f"algorithm {self.name!r}: clip ranges must be >= 0, got {self.eps_low}, {self.eps_high}")


@dataclass(frozen=True)
class Implementation:
    """How log-probs are recomputed and how often a rollout is used, and the latent reward weights
    (``overall = w_acc·acc + w_fmt·fmt + lambda_ctr·R_ctr − lambda_div·C̄²``, R_ctr at temperature ``tau``)."""

    name: str
    replay_latents: bool  # recorded latents put back at latent slots in old / reference / current log-probs
    mask_forced: bool  # forced tokens (<|latent|>, budget-forced <|latent_end|>, forced start) out of loss and KL
    one_update_per_rollout: bool  # mini_batches = epochs_per_rollout = 1 is required
    lambda_ctr: float
    lambda_div: float
    tau: float

    def __post_init__(self) -> None:
        if self.tau <= 0:
            raise ValueError(f"implementation {self.name!r}: tau must be > 0, got {self.tau}")


ALGORITHMS: dict[str, Algorithm] = {}
IMPLEMENTATIONS: dict[str, Implementation] = {}


def register_algorithm(settings: Algorithm) -> Algorithm:
    """Add a named algorithm; a name is registered once."""
    if settings.name in ALGORITHMS:
        raise ValueError(f"algorithm {settings.name!r} is already registered")
    ALGORITHMS[settings.name] = settings
    return settings


def register_implementation(settings: Implementation) -> Implementation:
    """Add a named implementation; a name is registered once."""
    if settings.name in IMPLEMENTATIONS:
        raise ValueError(f"implementation {settings.name!r} is already registered")
    IMPLEMENTATIONS[settings.name] = settings
    return settings


def algorithm(name: str) -> Algorithm:
    """The registered algorithm ``name``."""
    if name not in ALGORITHMS:
        raise ValueError(f"unknown RL algorithm {name!r}; registered: {sorted(ALGORITHMS)}")
    return ALGORITHMS[name]


def implementation(name: str) -> Implementation:
    """The registered implementation ``name``."""
    if name not in IMPLEMENTATIONS:
        raise ValueError(f"unknown RL implementation {name!r}; registered: {sorted(IMPLEMENTATIONS)}")
    return IMPLEMENTATIONS[name]


register_algorithm(Algorithm("grpo", dynamic_sampling=False, eps_low=0.2, eps_high=0.2, loss_agg="seq",
                             latent_rewards=False))
register_algorithm(Algorithm("dapo", dynamic_sampling=True, eps_low=0.2, eps_high=0.28, loss_agg="token",
                             latent_rewards=False))
register_algorithm(Algorithm("la-dapo", dynamic_sampling=True, eps_low=0.2, eps_high=0.28, loss_agg="token",
                             latent_rewards=True))
register_algorithm(Algorithm("grpo-token-mean", dynamic_sampling=False, eps_low=0.2, eps_high=0.2, loss_agg="token",
                             latent_rewards=False))
register_algorithm(Algorithm("grpo-dynamic-sampling", dynamic_sampling=True, eps_low=0.2, eps_high=0.2,
                             loss_agg="seq", latent_rewards=False))
register_implementation(Implementation("release", replay_latents=False, mask_forced=False,
                                       one_update_per_rollout=True, lambda_ctr=1.0, lambda_div=0.0, tau=0.5))
register_implementation(Implementation("corrected", replay_latents=True, mask_forced=True,
                                       one_update_per_rollout=False, lambda_ctr=0.2, lambda_div=0.1, tau=0.5))
