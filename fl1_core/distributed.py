"""One process-group helper for the stages that run their own loops (RL, evaluation): rank, world size, sums,
barriers, device placement and the DDP / FSDP2 wrapper, through accelerate or torchrun; and the accelerate settings
of the SFT loop under FSDP (:func:`accelerator_settings`).

FSDP precision (both stages): parameters are all-gathered and computed in the run's compute dtype (bf16 on a GPU
run), gradients are reduce-scattered and accumulated in fp32 (``MixedPrecisionPolicy(param_dtype=bf16,
reduce_dtype=fp32)``), and every micro-batch reduces its gradient at once (accelerate's ``sync_each_batch``): under
gradient accumulation with sync off, FSDP2 would keep an unsharded gradient of every parameter (in ``reduce_dtype``,
fp32: 4 bytes × all parameters per GPU) until the last micro-batch; reducing each micro-batch keeps only the sharded
fp32 gradient, at the cost of one reduce-scatter per micro-batch instead of one per optimizer step."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch


FSDP_ENV = "ACCELERATE_USE_FSDP"  # set by `accelerate launch` with an FSDP config (configs/accelerate/fsdp.yaml)


def fsdp_launched() -> bool:
    """True when this process was launched with an FSDP accelerate config."""
    return os.environ.get(FSDP_ENV, "false").lower() in ("true", "1", "yes")


def compute_dtype(mixed_precision: str) -> torch.dtype:
    """The dtype of the forward / backward for accelerate's ``mixed_precision`` (``"no"`` → fp32)."""
    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(mixed_precision, torch.float32)


def fsdp_mixed_precision(mixed_precision: str, fsdp_version: int = 2) -> Any:
    """The FSDP precision of every run: parameters gathered in the compute dtype, gradients reduced in fp32.

    FSDP2 → ``MixedPrecisionPolicy(param_dtype=compute_dtype(mp), reduce_dtype=float32)`` (param_dtype ``None``
    when the compute dtype is fp32: no cast); FSDP1 → ``MixedPrecision`` with the same dtypes (buffers in the
    compute dtype)."""
    param = compute_dtype(mixed_precision)
    if fsdp_version == 1:
        from torch.distributed.fsdp import MixedPrecision

        return MixedPrecision(param_dtype=param, reduce_dtype=torch.float32, buffer_dtype=param)
    from torch.distributed.fsdp import MixedPrecisionPolicy

    return MixedPrecisionPolicy(param_dtype=None if param == torch.float32 else param, reduce_dtype=torch.float32)


def accelerator_settings(mixed_precision: str, gradient_accumulation_steps: int) -> dict[str, Any]:
    """Keyword arguments of the SFT loop's ``Accelerator``. Under an FSDP launch: an FSDP plugin (the rest of its
    settings from the launch config) with the :func:`fsdp_mixed_precision` policy, and gradient accumulation that
    reduces every micro-batch (``sync_each_batch``; see the module docstring)."""
    if not fsdp_launched():
        return {"mixed_precision": mixed_precision, "gradient_accumulation_steps": gradient_accumulation_steps}
    from accelerate import FullyShardedDataParallelPlugin
    from accelerate.utils import GradientAccumulationPlugin

    version = int(os.environ.get("FSDP_VERSION", "1"))
    plugin = FullyShardedDataParallelPlugin(
        fsdp_version=version, mixed_precision_policy=fsdp_mixed_precision(mixed_precision, version))
    accumulation = GradientAccumulationPlugin(num_steps=gradient_accumulation_steps, sync_each_batch=True)
    return {"mixed_precision": mixed_precision, "fsdp_plugin": plugin, "gradient_accumulation_plugin": accumulation}


class ProcessGroup:
    """Rank, process count, reductions, barriers and the DDP wrapper, through accelerate (an ``Accelerator`` when
    given, else accelerate's process state) or ``torchrun``'s environment; a no-op with one process. Shared by SFT-free
    stages that run their own loops: RL and evaluation."""

    def __init__(self, accelerator: Any | None = None) -> None:
        self.world = 1
        self.rank = 0
        self.device: torch.device | None = None
        self.acc = accelerator
        if accelerator is not None:
            self.world, self.rank = int(accelerator.num_processes), int(accelerator.process_index)
            self.device = accelerator.device
            return
        try:
            from accelerate import PartialState

            state = PartialState()
            self.world, self.rank = state.num_processes, state.process_index
            if self.world > 1:
                self.device = state.device
        except Exception:  # accelerate missing or not configured: one process
            pass
        env_world = int(os.environ.get("WORLD_SIZE", "1"))
        if self.world == 1 and env_world > 1 and torch.distributed.is_available():
            # launched by torchrun (or accelerate on CPU without a multi-CPU backend): use the process group directly
            if not torch.distributed.is_initialized():
                torch.distributed.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
            self.world, self.rank = torch.distributed.get_world_size(), torch.distributed.get_rank()
            self.device = (torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0"))) if torch.cuda.is_available()
                           else torch.device("cpu"))

    @property
    def main(self) -> bool:
        return self.rank == 0

    is_main = main

    @property
    def world_size(self) -> int:
        return self.world

    def place(self, model: torch.nn.Module) -> torch.nn.Module:
        """``model`` on this process's device (unchanged with one process)."""
        if self.device is not None and getattr(model, "device", None) != self.device:
            model = model.to(self.device)
        return model

    @property
    def sharded(self) -> bool:
        """True when the actor is sharded with FSDP2 (several processes launched with an FSDP config)."""
        return self.world > 1 and fsdp_launched()

    def passes(self, n: int) -> int:
        """How many forward passes every process makes when this one has ``n``: under FSDP each forward of a sharded
        model is a collective, so all make the most any makes (the extra ones are padding); else ``n``."""
        return int(self.max(n)) if self.sharded else int(n)

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """The actor for the update: with several processes wrapped by accelerate in DDP (bucketed gradient
        all-reduce; ``find_unused_parameters`` because the latent head gets no gradient in replay), sharded in
        place with FSDP2 under an FSDP launch (:func:`fl1_core.sharding.shard`: compute in bf16 on a bf16 GPU,
        fp32 reduction, gradients summed over processes), else itself. Build the optimizer after this."""
        if self.world == 1:
            return model
        if self.sharded:
            from .placement import bf16_supported
            from .sharding import shard

            mp = "bf16" if bf16_supported(self.device) else "no"
            return shard(model, fsdp_mixed_precision(mp), sum_gradients=True, head_unit=False)
        from accelerate import Accelerator, DistributedDataParallelKwargs
        from accelerate.utils import DistributedType

        acc = Accelerator(mixed_precision="no",
                          kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])
        if acc.distributed_type == DistributedType.DEEPSPEED:
            raise RuntimeError(
                "RL runs its actor under DDP or FSDP; a DeepSpeed accelerate config is not supported for RL. Launch "
                "with `accelerate launch --config_file configs/accelerate/fsdp.yaml` (full-parameter RL, sharded) or "
                "`accelerate launch --multi_gpu --num_processes N` (DDP; LoRA with --set 'lora={}'): see "
                "`fl1 plan --stage rl`.")
        if acc.distributed_type != DistributedType.NO:
            return acc.prepare_model(model)
        # torchrun on CPU without accelerate's multi-CPU detection: the same DDP wrapper directly
        ids = [self.device.index] if self.device is not None and self.device.type == "cuda" else None
        return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids, find_unused_parameters=True)

    def broadcast(self, obj: Any) -> Any:
        """The main process's ``obj`` on every process (picklable objects)."""
        if self.world == 1:
            return obj
        holder = [obj]
        torch.distributed.broadcast_object_list(holder, src=0)
        return holder[0]

    def sum_(self, t: torch.Tensor) -> torch.Tensor:
        if self.world > 1:
            torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.SUM)
        return t

    def sum(self, x: float) -> float:
        if self.world == 1:
            return float(x)
        t = torch.tensor([float(x)], dtype=torch.float64, device=self.device)
        return float(self.sum_(t)[0])

    def max(self, x: float) -> float:
        if self.world == 1:
            return float(x)
        t = torch.tensor([float(x)], dtype=torch.float64, device=self.device)
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
        return float(t[0])

    def all(self, flag: bool) -> bool:
        if self.world == 1:
            return bool(flag)
        t = torch.tensor([1.0 if flag else 0.0], device=self.device)
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MIN)
        return bool(t[0] > 0)

    def barrier(self) -> None:
        if self.world > 1:
            if self.acc is not None:
                self.acc.wait_for_everyone()
            else:
                torch.distributed.barrier()

    def reduce_metrics(self, row: dict[str, Any], sum_keys: Sequence[str] = ()) -> dict[str, Any]:
        """Numbers of ``row`` summed over processes (``sum_keys``) or averaged (the rest); ``step`` untouched."""
        if self.world == 1:
            return row
        out = dict(row)
        for k, v in row.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "step":
                s = self.sum(v)
                out[k] = s if k in sum_keys else s / self.world
        return out


__all__ = ["ProcessGroup"]
