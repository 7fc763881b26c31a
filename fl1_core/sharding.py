"""FSDP2 sharding of a Future-L1 model for the loops that shard it themselves (RL), and gathering it back.

Units (the same as ``configs/accelerate/fsdp.yaml`` gives the SFT loop through accelerate): every text decoder layer
and vision block, the token embedding, ``lm_head``, and the root (the rest: vision patch embedding and merger, final
norm, latent head). Each unit holds ``1/P`` of its parameters per process and all-gathers them around its forward and
backward, so every forward of a sharded model is a collective: all processes must call it the same number of times.

Gathering (:func:`gather_into`) all-gathers one parameter at a time (``DTensor.full_tensor``) into a plain module of
the same structure, so the transient cost is one full parameter, never a second full model in the master dtype.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

DEFAULT_UNITS = ("Qwen3VLTextDecoderLayer", "Qwen3VLVisionBlock")
UNITS_ENV = "FSDP_TRANSFORMER_CLS_TO_WRAP"  # what `accelerate launch` exports from fsdp_transformer_layer_cls_to_wrap


def unit_class_names() -> tuple[str, ...]:
    """Class names of the layers sharded one by one: the launch config's list, else the Qwen3-VL layers."""
    names = [n.strip() for n in os.environ.get(UNITS_ENV, "").split(",") if n.strip()]
    return tuple(names) or DEFAULT_UNITS


def is_sharded(model: nn.Module) -> bool:
    """True when ``model`` (or a submodule) was sharded with ``fully_shard``."""
    from torch.distributed.fsdp import FSDPModule

    return any(isinstance(m, FSDPModule) for m in model.modules())


def shard(model: nn.Module, policy: Any, *, reshard_after_forward: bool = True, sum_gradients: bool = False,
          head_unit: bool = True, mesh: Any = None) -> nn.Module:
    """``fully_shard`` ``model`` in place into the units of the module docstring with the precision ``policy``
    (:func:`fl1_core.distributed.fsdp_mixed_precision`). ``sum_gradients``: the gradient reduction sums over
    processes instead of averaging (divide factor 1), for losses already normalised by global counts.
    ``head_unit=False`` keeps ``lm_head`` in the root unit: RL replay scores tokens chunk-wise from
    ``lm_head.weight`` without calling the module, and only a module call gathers its own unit (the root is
    gathered for the whole forward). Parameters are replaced by sharded ``DTensor`` ones: build optimizers after
    this."""
    from torch.distributed.fsdp import FSDPModule, fully_shard

    kw = {"mp_policy": policy, "mesh": mesh}
    names = set(unit_class_names())
    for module in list(model.modules())[1:]:
        if type(module).__name__ in names and not isinstance(module, FSDPModule):
            fully_shard(module, reshard_after_forward=reshard_after_forward, **kw)
    embed = model.get_input_embeddings()
    head = model.get_output_embeddings()
    tied = embed is not None and head is not None and embed.weight is head.weight
    if embed is not None and not tied:
        fully_shard(embed, reshard_after_forward=reshard_after_forward, **kw)
    if head is not None and head_unit and not tied:  # first in backward: kept gathered after forward
        fully_shard(head, reshard_after_forward=False, **kw)
    frozen = not any(p.requires_grad for p in model.parameters())  # no backward: the root reshards too
    fully_shard(model, reshard_after_forward=reshard_after_forward and frozen, **kw)
    if sum_gradients:
        for m in model.modules():
            if isinstance(m, FSDPModule):
                m.set_gradient_divide_factor(1.0)
                m.set_force_sum_reduction_for_comms(True)  # a plain SUM (gloo has no PREMUL_SUM)
    return model


def describe_sharding(model: nn.Module) -> dict[str, Any]:
    """What sharding did to ``model``: its FSDP units (module names, ``""`` = root) with their parameter and
    reduction dtypes, and how many parameters are sharded ``DTensor``s. Empty units for an unsharded model."""
    from torch.distributed.fsdp import FSDPModule
    from torch.distributed.tensor import DTensor

    units = {}
    for name, m in model.named_modules():
        if isinstance(m, FSDPModule):
            groups = m._get_fsdp_state()._fsdp_param_group
            pol = groups.mp_policy if groups is not None else None
            units[name] = {"param_dtype": str(getattr(pol, "param_dtype", None)),
                           "reduce_dtype": str(getattr(pol, "reduce_dtype", None))}
    params = list(model.parameters())
    return {"units": units, "params": len(params), "sharded_params": sum(isinstance(p, DTensor) for p in params)}


def skeleton(model: nn.Module, device: torch.device | str = "meta", dtype: torch.dtype | None = None) -> nn.Module:
    """A deep copy of ``model`` whose parameters and buffers are new tensors on ``device`` (``meta``: no storage),
    floating ones in ``dtype`` when given; made without first copying the weights where they are (the model must
    not be sharded yet). Parameters keep ``requires_grad``. Non-tensor attributes (configs, the processor) are deep-copied."""
    if is_sharded(model):
        raise ValueError("skeleton: copy the model before sharding it")
    memo: dict[int, Any] = {}
    for p in model.parameters():
        data = p.detach()
        cast = dtype if dtype is not None and data.is_floating_point() else data.dtype
        memo[id(p)] = nn.Parameter(data.to(device=device, dtype=cast, copy=True), requires_grad=p.requires_grad)
    for b in model.buffers():
        cast = dtype if dtype is not None and b.is_floating_point() else b.dtype
        memo[id(b)] = b.detach().to(device=device, dtype=cast, copy=True)
    return copy.deepcopy(model, memo)


def _named(model: nn.Module) -> Iterable[tuple[str, torch.Tensor]]:
    return list(model.named_parameters()) + list(model.named_buffers())


@torch.no_grad()
def gather_into(sharded: nn.Module, target: nn.Module | None) -> None:
    """Copy the full weights of ``sharded`` into ``target`` (same structure, plain tensors, any dtype / device),
    one parameter all-gather at a time; a collective: every process calls it, a process with ``target=None`` only
    takes part in the gathers. Buffers (never sharded) are copied as they are."""
    dst = dict(_named(target)) if target is not None else {}
    for name, t in _named(sharded):
        full = t.full_tensor() if hasattr(t, "full_tensor") else t
        if target is not None:
            d = dst[name]
            if d.is_meta:
                raise ValueError(f"gather_into: {name} of the target has no storage (call to_empty first)")
            d.copy_(full.to(device=d.device, dtype=d.dtype))
        del full


__all__ = ["DEFAULT_UNITS", "describe_sharding", "gather_into", "is_sharded", "shard", "skeleton", "unit_class_names"]
