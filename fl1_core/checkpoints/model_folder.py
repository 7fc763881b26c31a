"""Trained-model folders: the one way a stage writes its model (``final/``, the world base, ``fl1 init``).

:func:`save_model` writes a full Future-L1 folder (``config.json`` with the latent config, weights, the latent head
in ``latent_head.pt``, the processor) or, for a model carrying LoRA adapters, an adapter folder on top of the
checkpoint it was loaded from (:mod:`.adapter_folder`). :func:`fl1_core.model.load_future_l1` reads either back.

Weights are written in the dtype the model's ``config.json`` states. Training keeps fp32 master weights over a bf16
load (:func:`fl1_core.placement.upcast_trainable`), and FSDP's gathered state dict is fp32 as well; every floating
tensor is saved as ``w_saved = cast(w, config.dtype)``, so ``final/`` of a bf16 run is a bf16 checkpoint of the
loaded size, and its config says so.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from ..adapters import has_lora, merge_lora
from .adapter_folder import save_adapter

HEAD_FILE = "latent_head.pt"


def stated_dtype(model: Any) -> torch.dtype | None:
    """The dtype the model's ``config.json`` states (``config.dtype``: what the checkpoint was loaded in), or None."""
    value = getattr(model.base.config, "dtype", None)
    if isinstance(value, str):
        value = getattr(torch, value, None)
    return value if isinstance(value, torch.dtype) and value.is_floating_point else None


def _cast(state: dict[str, torch.Tensor], dtype: torch.dtype | None) -> dict[str, torch.Tensor]:
    """Every tensor on the CPU (one at a time: no second copy on the GPU), floating ones in ``dtype``."""
    out = {}
    for k, v in state.items():
        v = v.detach().cpu()
        out[k] = v.to(dtype) if dtype is not None and v.is_floating_point() else v
    return out


def save_model(model: Any, processor: Any, path: str | Path, *, state_dict: dict[str, torch.Tensor] | None = None,
               merge: bool = False) -> Path:
    """Save a :class:`~fl1_core.model.FutureL1Model` and its processor into ``path``; returns ``path``.

    With LoRA adapters and a known base (``model.source_path``) an adapter folder, unless ``merge`` (then, or with no
    known base, the adapters are merged into the weights, in place). ``state_dict``: the full state (``base.*``,
    ``latent_head.*``) when the live modules are sharded (FSDP / ZeRO gather it first); default the model's own."""
    path = Path(path)
    if has_lora(model):
        base = getattr(model, "source_path", None)
        if not merge and base is not None:
            return save_adapter(model, processor, path, base)
        merge_lora(model)
    path.mkdir(parents=True, exist_ok=True)
    dtype = stated_dtype(model)
    full = state_dict if state_dict is not None else model.state_dict()
    base_sd = _cast({k.removeprefix("base."): v for k, v in full.items() if k.startswith("base.")}, dtype)
    config = model.base.config
    before = config.dtype
    model._sync_config()
    try:
        model.base.save_pretrained(path, state_dict=base_sd)
    finally:
        config.dtype = before  # save_pretrained writes the first parameter's dtype into the live config
    if dtype is not None:  # … and into config.json: state the dtype the weights were written in
        cfg_file = path / "config.json"
        written = json.loads(cfg_file.read_text(encoding="utf-8"))
        written["dtype"] = str(dtype).removeprefix("torch.")
        cfg_file.write_text(json.dumps(written, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    if model.latent_head is not None:
        head = {k.removeprefix("latent_head."): v for k, v in full.items() if k.startswith("latent_head.")}
        torch.save(_cast(head, dtype), path / HEAD_FILE)
    processor.save_pretrained(path)
    return path
