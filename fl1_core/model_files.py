"""Trained-model folders on disk: weights saved in the dtype their config states, and the fingerprint that tells a
moved adapter folder it found the right base.

- **dtype.** Training keeps fp32 master weights over a bf16 load (:func:`fl1_core.placement.upcast_trainable`),
  and FSDP's gathered state dict is fp32 as well; ``config.json`` still says the dtype the checkpoint was loaded in.
  :func:`save_model_folder` writes every floating tensor in that dtype (``w_saved = cast(w, config.dtype)``), so
  ``final/`` of a bf16 run is a bf16 checkpoint of the loaded size, and its config says so.
- **fingerprint.** :func:`folder_fingerprint` hashes a folder's config and the size, head and tail of each weight
  file: cheap on a 16 GB checkpoint (a few MiB read), unchanged by a copy or move, different for other weights.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

HEAD_FILE = "latent_head.pt"  # the latent projection head's weights, beside the base model's
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt")
CONFIG_FILES = ("config.json", "adapter_config.json")
_SAMPLE = 1 << 16  # bytes read at each end of a weight file


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


def save_model_folder(model: Any, processor: Any, path: str | Path,
                      state_dict: dict[str, torch.Tensor] | None = None) -> Path:
    """Save a :class:`~fl1_core.model.FutureL1Model` (``load_future_l1`` reads it back) with every floating tensor
    in :func:`stated_dtype`. ``state_dict``: the full state (``base.*``, ``latent_head.*``) when the live modules are
    sharded (FSDP / ZeRO gather it first); default the model's own."""
    path = Path(path)
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


def folder_fingerprint(path: str | Path) -> str:
    """sha256 over the folder's config files (bytes) and, per weight file (name order), its name, size and first and
    last 64 KiB. Equal after a copy or move; a different checkpoint of the same shapes differs in its bytes."""
    path = Path(path)
    h = hashlib.sha256()
    for name in CONFIG_FILES:
        if (path / name).is_file():
            h.update(name.encode() + b"\0" + (path / name).read_bytes())
    for f in sorted(p for p in path.iterdir() if p.is_file() and p.name.endswith(WEIGHT_SUFFIXES)):
        size = f.stat().st_size
        h.update(f"{f.name}\0{size}\0".encode())
        with open(f, "rb") as fh:
            h.update(fh.read(_SAMPLE))
            if size > 2 * _SAMPLE:
                fh.seek(size - _SAMPLE)
                h.update(fh.read(_SAMPLE))
    return h.hexdigest()


__all__ = ["folder_fingerprint", "save_model_folder", "stated_dtype"]
