"""Where a run keeps its training checkpoints, and which of them count.

A run folder keeps its checkpoints as ``<out>/checkpoints/step-XXXXXXXX`` (the step in 8 digits), the same for
pretraining, SFT and RL. A checkpoint is *complete* once its state file ``trainer_state.json`` exists: that file is
written last, inside a temporary sibling folder (``.step-XXXXXXXX.tmp-*``) that is renamed into place in one step
(:func:`fl1_core.runs.atomic_directory`), so a crash never leaves a half checkpoint that looks done. A complete
checkpoint that fails its file check is *set aside* as ``step-XXXXXXXX.damaged`` (kept for inspection, never listed).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

CHECKPOINT_DIR = "checkpoints"
STATE_FILE = "trainer_state.json"
DAMAGED_SUFFIX = ".damaged"
_NAME = re.compile(r"^step-(\d{8})$")


def checkpoint_path(out_dir: str | Path, step: int) -> Path:
    """``<out_dir>/checkpoints/step-XXXXXXXX``."""
    return Path(out_dir) / CHECKPOINT_DIR / f"step-{int(step):08d}"


def checkpoint_step(path: str | Path) -> int:
    """The step of a checkpoint folder, from its name."""
    match = _NAME.match(Path(path).name)
    if match is None:
        raise ValueError(f"{path} is not a checkpoint folder (step-XXXXXXXX)")
    return int(match.group(1))


def checkpoint_dirs(out_dir: str | Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first (temporary and set-aside folders are never listed)."""
    root = Path(out_dir) / CHECKPOINT_DIR
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and _NAME.match(p.name) and (p / STATE_FILE).is_file()]
    return sorted(found, key=checkpoint_step)


def latest_checkpoint(out_dir: str | Path) -> Path | None:
    """The newest complete checkpoint of a run (not yet verified: resuming verifies), or ``None``."""
    dirs = checkpoint_dirs(out_dir)
    return dirs[-1] if dirs else None


def set_aside(path: str | Path) -> Path:
    """Rename a damaged checkpoint to ``step-XXXXXXXX.damaged`` (``.damaged-2`` … when taken); returns its new path."""
    path = Path(path)
    target = path.with_name(path.name + DAMAGED_SUFFIX)
    n = 2
    while target.exists():
        target = path.with_name(f"{path.name}{DAMAGED_SUFFIX}-{n}")
        n += 1
    path.rename(target)
    return target


def prune_checkpoints(out_dir: str | Path, keep: int, newest: str | Path) -> list[Path]:
    """Delete complete checkpoints older than the newest ``keep`` (at least 1), once ``newest`` (the checkpoint just
    written) is complete; returns the deleted folders. Called before ``newest`` is in place it deletes nothing, so the
    last intact checkpoint always outlives a save that fails."""
    dirs = checkpoint_dirs(out_dir)
    if Path(newest) not in dirs:
        return []
    old = [p for p in dirs[: -max(int(keep), 1)] if checkpoint_step(p) < checkpoint_step(newest)]
    for p in old:
        shutil.rmtree(p, ignore_errors=True)
    return old
