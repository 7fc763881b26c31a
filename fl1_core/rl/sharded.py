"""Full-parameter RL under FSDP2: the sharded frozen reference, the rollout weights and the gathered final model.

Memory per GPU with P processes and N parameters (master weights fp32):

* actor: weights, gradients and AdamW states sharded, ``(4 + 4 + 8)·N / P`` bytes;
* reference π_ref: a second FSDP-sharded module, frozen, in bf16 on a bf16 GPU (``ref_dtype``): ``2·N / P`` bytes,
  built from a host copy of the initial model so no second full copy ever sits on a GPU;
* rollout weights: **one gathered copy in the rollout dtype per GPU** (bf16 on a bf16 GPU: ``2·N`` bytes), refreshed
  from the actor once per RL step, before its rollouts, one parameter all-gather at a time. Decoding then runs on a
  plain module: no collective inside the decode loop, so processes may decode different numbers of tokens, and a
  decode step costs no communication. (The alternatives: a per-layer all-gather at each decode step costs two
  collectives per layer per token; a separate inference engine needs its own copy and a weight sync anyway.)
"""

from __future__ import annotations

import logging

import torch
from torch import nn

from fl1_core.distributed import fsdp_mixed_precision
from fl1_core.placement import bf16_supported
from fl1_core.sharding import gather_into, shard, skeleton

log = logging.getLogger(__name__)


def rollout_dtype(device: torch.device | None) -> torch.dtype:
    """bf16 on a bf16 GPU, else fp32 (the CPU computes in fp32, like the unsharded actor there)."""
    return torch.bfloat16 if bf16_supported(device) else torch.float32


def sharded_reference(model: nn.Module, ref_dtype: str) -> nn.Module:
    """π_ref as an FSDP-sharded frozen copy of ``model`` (call before ``model`` is sharded): copied to the host
    (bf16 when ``ref_dtype`` is ``"bf16"``, or ``"auto"`` on a bf16 GPU), then sharded unit by unit, so each unit
    moves to the GPU as its ``1/P`` shard. Every replay on it is a collective."""
    device = model.device
    dtype = torch.bfloat16 if ref_dtype == "bf16" or (ref_dtype == "auto" and bf16_supported(device)) else None
    ref = skeleton(model, device="cpu", dtype=dtype).eval()
    for p in ref.parameters():
        p.requires_grad_(False)
    return shard(ref, fsdp_mixed_precision("no"), reshard_after_forward=True, head_unit=False)


class RolloutWeights:
    """The rollout copy of a sharded actor (see the module docstring): a plain module of the actor's structure in
    :func:`rollout_dtype` on this process's device, refreshed by :meth:`refresh` (a collective)."""

    def __init__(self, model: nn.Module) -> None:
        """``model``: the actor before sharding (its structure and non-tensor attributes are copied; no weights)."""
        device = model.device
        self.model = skeleton(model, device="meta", dtype=rollout_dtype(device)).to_empty(device=device).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    def refresh(self, actor: nn.Module) -> nn.Module:
        """Gather the actor's current weights into the copy (every process) and return it."""
        gather_into(actor, self.model)
        return self.model


def gathered_copy(actor: nn.Module, structure: nn.Module, main: bool) -> nn.Module | None:
    """The actor's full weights in their master dtype in a host copy of ``structure`` (a ``meta`` skeleton of the
    actor) on the main process, for saving; ``None`` elsewhere. A collective."""
    target = structure.to_empty(device="cpu") if main else None
    gather_into(actor, target)
    return target


__all__ = ["RolloutWeights", "gathered_copy", "rollout_dtype", "sharded_reference"]
