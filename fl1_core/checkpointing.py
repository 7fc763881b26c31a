"""One checkpoint layout for every resumable stage (SFT, RL), and one model fingerprint (SFT, RL, curation).

A run folder keeps its checkpoints as ``<out>/checkpoints/step-XXXXXXXX`` (8 digits). A checkpoint is *complete*
once its state file ``trainer_state.json`` exists: it is written last, inside a folder that is renamed into place
atomically (:func:`fl1_core.runs.atomic_directory`), so a crash never leaves a half checkpoint that looks done.
RL folders of earlier versions (``step_XXXXXX``) are still found, so those runs resume.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path

import torch

CHECKPOINT_DIR = "checkpoints"
STATE_FILE = "trainer_state.json"
_NAME = re.compile(r"^step[-_](\d+)$")  # step-00000012; step_000012 from RL runs of earlier versions


def checkpoint_path(out_dir: str | Path, step: int) -> Path:
    """``<out_dir>/checkpoints/step-XXXXXXXX``."""
    return Path(out_dir) / CHECKPOINT_DIR / f"step-{int(step):08d}"


def checkpoint_dirs(out_dir: str | Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first (temporary ``.step-*.tmp-*`` folders are never listed)."""
    root = Path(out_dir) / CHECKPOINT_DIR
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and _NAME.match(p.name) and (p / STATE_FILE).is_file()]
    return sorted(found, key=lambda p: int(_NAME.match(p.name).group(1)))


def latest_checkpoint(out_dir: str | Path) -> Path | None:
    """The newest complete checkpoint of a run, or ``None``."""
    dirs = checkpoint_dirs(out_dir)
    return dirs[-1] if dirs else None


def prune_checkpoints(out_dir: str | Path, keep: int) -> None:
    """Delete all but the newest ``keep`` complete checkpoints."""
    for old in checkpoint_dirs(out_dir)[: -max(int(keep), 1)]:
        shutil.rmtree(old, ignore_errors=True)


def model_fingerprint(model: torch.nn.Module, sample: int = 4096) -> str:
    """A cheap identity of a model's weights: per parameter (in name order) its shape, dtype, float64 sum and first
    ``sample`` values, hashed with sha256. Equal weights → equal fingerprint, also through a wrapper that prefixes
    every name (DDP's ``module.``); it tells a resumed run (or a curation scores file) that it got another model."""
    h = hashlib.sha256()
    with torch.no_grad():
        for name, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
            t = p.detach()
            h.update(f"{tuple(t.shape)}{t.dtype}{float(t.double().sum()):.10e}".encode())
            h.update(t.reshape(-1)[:sample].float().cpu().numpy().tobytes())
    return h.hexdigest()
