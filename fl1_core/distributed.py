"""One process-group helper for the stages that run their own loops (RL, evaluation): rank, world size, sums,
barriers, device placement and the DDP wrapper, through accelerate or torchrun (SFT uses accelerate's Accelerator
directly)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch


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

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """The actor for the update: with several processes wrapped by accelerate in DDP (bucketed gradient
        all-reduce; ``find_unused_parameters`` because the latent head gets no gradient in replay), else itself."""
        if self.world == 1:
            return model
        from accelerate import Accelerator, DistributedDataParallelKwargs
        from accelerate.utils import DistributedType

        acc = Accelerator(mixed_precision="no",
                          kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])
        if acc.distributed_type in (DistributedType.DEEPSPEED, DistributedType.FSDP):
            raise RuntimeError(
                f"RL runs its actor under DDP; a {acc.distributed_type.value} accelerate config is not supported for "
                "RL (rollouts decode the whole model on every process). Launch with `accelerate launch --multi_gpu "
                "--num_processes N`, and train LoRA adapters (--set 'lora={}') when the full model's AdamW states do "
                "not fit: see `fl1 plan --stage rl`.")
        if acc.distributed_type != DistributedType.NO:
            return acc.prepare_model(model)
        # torchrun on CPU without accelerate's multi-CPU detection: the same DDP wrapper directly
        ids = [self.device.index] if self.device is not None and self.device.type == "cuda" else None
        return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids, find_unused_parameters=True)

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
