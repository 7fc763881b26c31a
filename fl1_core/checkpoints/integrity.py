"""Trust in what a checkpoint reads back: every file's sha256 and size, recorded at save, checked at resume.

The state file of a checkpoint holds ``files = {relative path: {"sha256": ..., "size": bytes}}`` for every other
file of the folder. :func:`verify_checkpoint` re-reads them and names each file that is missing, has another size
(a truncated copy) or other bytes (bit rot); a state file that is not valid JSON, or that records no files, fails
the check as well.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from ..runs import sha256_file
from .layout import STATE_FILE


def file_records(folder: str | Path) -> dict[str, dict[str, Any]]:
    """``{relative path: {"sha256", "size"}}`` of every file under ``folder`` except the state file."""
    folder = Path(folder)
    return {
        p.relative_to(folder).as_posix(): {"sha256": sha256_file(p), "size": p.stat().st_size}
        for p in sorted(folder.rglob("*")) if p.is_file() and p.relative_to(folder).as_posix() != STATE_FILE
    }


def read_state(folder: str | Path) -> dict[str, Any]:
    """The state file of a checkpoint folder."""
    return json.loads((Path(folder) / STATE_FILE).read_text(encoding="utf-8"))


def verify_checkpoint(folder: str | Path) -> list[str]:
    """What is wrong with a complete checkpoint's files, one line per file naming it; ``[]`` when it is intact."""
    folder = Path(folder)
    try:
        state = read_state(folder)
    except (OSError, ValueError) as exc:
        return [f"{folder / STATE_FILE}: unreadable ({exc})"]
    recorded = state.get("files") if isinstance(state, dict) else None
    if not recorded:
        return [f"{folder / STATE_FILE}: records no file sizes and hashes, so its files cannot be checked"]
    problems = []
    for name, want in sorted(recorded.items()):
        path = folder / name
        if not path.is_file():
            problems.append(f"{path}: missing")
            continue
        size = path.stat().st_size
        if size != want["size"]:
            problems.append(f"{path}: {size} bytes, the checkpoint recorded {want['size']} (truncated or replaced)")
        elif sha256_file(path) != want["sha256"]:
            problems.append(f"{path}: its sha256 differs from the one recorded (the bytes changed)")
    return problems


def nbytes(obj: Any) -> int:
    """Bytes of the tensors in ``obj``: a tensor, a module or optimizer (its state dict), or dicts / lists of them."""
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, (torch.nn.Module, torch.optim.Optimizer)):
        return nbytes(obj.state_dict())
    if isinstance(obj, dict):
        return sum(nbytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(nbytes(v) for v in obj)
    return 0


def training_state_bytes(model: torch.nn.Module) -> int:
    """Bytes a checkpoint of ``model`` under AdamW needs, from its parameters alone (no collective under FSDP):
    every parameter once, each trainable one twice more for the two moments."""
    params = list(model.parameters())
    return nbytes(params) + 2 * nbytes([p for p in params if p.requires_grad])
