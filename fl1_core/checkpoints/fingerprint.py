"""Identities of weights: of a live model (a resumed run or a curation scores file checks it got the same initial
model) and of a model folder on disk (a moved adapter folder checks it found the right base)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt")
CONFIG_FILES = ("config.json", "adapter_config.json")
_SAMPLE = 1 << 16  # bytes read at each end of a weight file


def model_fingerprint(model: torch.nn.Module, sample: int = 4096) -> str:
    """A cheap identity of a model's weights: per parameter (in name order) its shape, dtype, float64 sum and first
    ``sample`` values, hashed with sha256. Equal weights → equal fingerprint, also through a wrapper that prefixes
    every name (DDP's ``module.``)."""
    h = hashlib.sha256()
    with torch.no_grad():
        for _name, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
            t = p.detach()
            h.update(f"{tuple(t.shape)}{t.dtype}{float(t.double().sum()):.10e}".encode())
            h.update(t.reshape(-1)[:sample].float().cpu().numpy().tobytes())
    return h.hexdigest()


def folder_fingerprint(path: str | Path) -> str:
    """sha256 over the folder's config files (bytes) and, per weight file (name order), its name, size and first and
    last 64 KiB. Cheap on a 16 GB checkpoint, equal after a copy or move, different for other weights."""
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
