"""Where a model runs and in what precision: one home for device choice, attention kernel and fp32 master weights.

Rules:

- **Device.** ``resolve_device("auto")`` is ``cuda:LOCAL_RANK`` when CUDA is available, else the CPU; the
  environment variable ``FL1_DEVICE`` overrides "auto" (``FL1_DEVICE=cpu`` forces the CPU on a GPU machine). Every CLI
  command and notebook loads through :func:`fl1_core.model.load_future_l1` with ``device="auto"``.
- **Attention.** SDPA by default: flash-attn is an optional extra (a source build against the wheel's CUDA) and no
  measurement here shows FA2 faster; ``FL1_ATTENTION=flash_attention_2`` asks for it, used only for a model on
  CUDA with ``flash_attn`` installed.
- **Precision.** A checkpoint may be loaded in bf16 to halve weight memory, but trainable weights and AdamW states
  stay fp32 (:func:`upcast_trainable`): at lr 1e-6 an update ``Δw ≈ lr`` is below bf16's resolution
  (``2^-8 · |w|``) and would be lost. The forward then runs under :func:`autocast` (bf16 matmuls, fp32 master
  weights); frozen weights (vision tower, reference model) stay bf16.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import logging
import os
from typing import Any

import torch

from .cuda_requirement import DEVICE_ENV, cuda_report

ATTENTION_ENV = "FL1_ATTENTION"  # sdpa (default) | flash_attention_2 | eager
log = logging.getLogger(__name__)


def resolve_device(device: str | torch.device | None = "auto") -> torch.device | None:
    """``"auto"`` → ``$FL1_DEVICE`` if set, else ``cuda:$LOCAL_RANK`` with CUDA, else ``cpu`` (with a warning saying
    why when an NVIDIA driver is present); ``None`` → None (leave the model where it is); anything else →
    ``torch.device(device)``."""
    if device is None:
        return None
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        forced = os.environ.get(DEVICE_ENV, "").strip()
        if forced:
            return torch.device(forced)
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")) % torch.cuda.device_count())
        _say_why_not_cuda()
        return torch.device("cpu")
    return torch.device(device)


@functools.cache
def _say_why_not_cuda() -> None:
    """Once per process: a warning when "auto" falls back to the CPU on a machine with an NVIDIA driver (a driver
    older than the wheel's CUDA, hidden devices), so that fallback is never silent. GPU presets refuse instead
    (:func:`fl1_core.cuda_requirement.require_cuda`)."""
    report = cuda_report()
    if report.driver is not None or report.driver_cuda is not None:
        log.warning("device 'auto' runs on the CPU: %s", report.problem())


def attn_implementation_for(device: torch.device | None) -> str:
    """``"sdpa"`` (PyTorch's attention; no build against the wheel's CUDA), unless ``$FL1_ATTENTION`` asks for
    ``flash_attention_2``: then FA2 when ``device`` is CUDA and flash-attn is installed, else SDPA with a warning
    (FA2 on a CPU-resident model crashes at the first forward)."""
    wanted = os.environ.get(ATTENTION_ENV, "").strip() or "sdpa"
    if wanted not in ("sdpa", "flash_attention_2", "eager"):
        raise ValueError(f"{ATTENTION_ENV}={wanted!r}: expected sdpa, flash_attention_2 or eager")
    if wanted != "flash_attention_2":
        return wanted
    if device is None or device.type != "cuda":
        log.warning("%s=flash_attention_2 ignored: the model is not on CUDA (%s); using sdpa", ATTENTION_ENV, device)
        return "sdpa"
    if importlib.util.find_spec("flash_attn") is None:
        log.warning("%s=flash_attention_2 ignored: flash-attn is not installed (pip install -e '.[flash-attn]'); "
                    "using sdpa", ATTENTION_ENV)
        return "sdpa"
    return "flash_attention_2"


def bf16_supported(device: torch.device | None) -> bool:
    """True on a bf16-capable CUDA device (the only place bf16 pays off here)."""
    return device is not None and device.type == "cuda" and torch.cuda.is_bf16_supported()


def upcast_trainable(model: torch.nn.Module) -> int:
    """Cast every parameter with ``requires_grad`` to fp32 in place (fp32 master weights); frozen ones keep their
    dtype. Build the optimizer *after* this. Returns the number of parameters cast."""
    cast = 0
    for p in model.parameters():
        if p.requires_grad and p.dtype != torch.float32 and p.is_floating_point():
            p.data = p.data.float()
            cast += 1
    return cast


def low_precision_dtype(model: torch.nn.Module) -> torch.dtype | None:
    """bf16/fp16 if any floating parameter of ``model`` is stored in it (the run's compute dtype), else None."""
    for p in model.parameters():
        if p.dtype in (torch.bfloat16, torch.float16):
            return p.dtype
    return None


def autocast(model: torch.nn.Module, device: torch.device | None = None) -> contextlib.AbstractContextManager[Any]:
    """``torch.autocast`` in the model's low-precision dtype when it mixes dtypes (fp32 master weights beside bf16
    frozen weights), a no-op context for an all-fp32 model."""
    dtype = low_precision_dtype(model)
    if dtype is None:
        return contextlib.nullcontext()
    dev = device or next(model.parameters()).device
    return torch.autocast(dev.type, dtype=dtype)


def enable_activation_checkpointing(model: torch.nn.Module) -> None:
    """Recompute each decoder layer's activations in backward (non-reentrant), through transformers' current API
    (``activation_checkpointing_enable``) or its older name."""
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:  # transformers < 5.x
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)


def to_device(batch: dict, device: torch.device | str) -> dict:
    """``batch`` with every tensor moved to ``device`` (other entries unchanged)."""
    return {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}


def scalar(value: Any) -> float:
    """A Python float from a 0-d tensor, also a sharded FSDP2 ``DTensor`` (gathered with ``full_tensor()`` first;
    ``float()`` on a DTensor fails or reads only the local shard)."""
    if hasattr(value, "full_tensor"):
        value = value.full_tensor()
    return float(value.detach().float().cpu()) if isinstance(value, torch.Tensor) else float(value)


__all__ = [
    "to_device",
    "ATTENTION_ENV",
    "attn_implementation_for",
    "autocast",
    "bf16_supported",
    "enable_activation_checkpointing",
    "low_precision_dtype",
    "resolve_device",
    "scalar",
    "upcast_trainable",
]
