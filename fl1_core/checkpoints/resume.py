"""Resuming a run: the newest intact checkpoint, checked against the run that asks for it.

Every stage describes its run by the same keys (:func:`run_identity`): ``stage``, ``config`` (every setting that
changes the result), ``model_fingerprint`` (the initial weights), ``data_fingerprint`` (the training data) and
``world_size``. A checkpoint stores its run's identity; :func:`resume_from` refuses a run whose identity differs, key by
key, with :class:`ResumeMismatchError`.

:func:`resume_from` verifies the newest complete checkpoint's files (:func:`~.integrity.verify_checkpoint`). A damaged
one is set aside as ``step-XXXXXXXX.damaged`` with a :class:`DamagedCheckpointWarning` naming the file, and the next
older one is tried; when every checkpoint is damaged, :class:`NoIntactCheckpointError` says how to start over.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .integrity import read_state, verify_checkpoint
from .layout import CHECKPOINT_DIR, checkpoint_dirs, set_aside
from .save import OneProcess

IDENTITY_KEYS = ("stage", "config", "model_fingerprint", "data_fingerprint", "world_size")


class ResumeMismatchError(ValueError):
    """A run asked to resume from a checkpoint of a run with other result-affecting settings, model or data."""


class NoIntactCheckpointError(RuntimeError):
    """Every checkpoint of a run failed its file check."""


class DamagedCheckpointWarning(UserWarning):
    """A checkpoint failed its file check and was set aside; the run resumes from an older one."""


def run_identity(stage: str, config: dict[str, Any], *, model_fingerprint: str | None = None,
                 data_fingerprint: str | None = None, world_size: int = 1) -> dict[str, Any]:
    """What a resumed run must share with the run that wrote its checkpoint (the keys of :data:`IDENTITY_KEYS`)."""
    return {"stage": stage, "config": config, "model_fingerprint": model_fingerprint,
            "data_fingerprint": data_fingerprint, "world_size": int(world_size)}


def _short(key: str, value: Any) -> Any:
    return str(value)[:12] if key.endswith("fingerprint") and value is not None else value


def identity_differences(saved: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """One line per differing key (``config`` compared setting by setting); ``[]`` when the runs match."""
    lines = []
    for key in IDENTITY_KEYS:
        old, new = saved.get(key), now.get(key)
        if key == "config":
            old, new = old or {}, new or {}
            lines += [f"config.{k}: checkpoint {old.get(k)!r} → now {new.get(k)!r}"
                      for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
        elif old != new:
            lines.append(f"{key}: checkpoint {_short(key, old)!r} → now {_short(key, new)!r}")
    return lines


def check_identity(saved: dict[str, Any], now: dict[str, Any], checkpoint: str | Path) -> None:
    """Raise :class:`ResumeMismatchError` listing every difference between a checkpoint's run and this one."""
    lines = identity_differences(saved, now)
    if lines:
        raise ResumeMismatchError(
            f"refusing to resume from {checkpoint}: this run differs from the one that wrote it in what changes the "
            "result:\n  " + "\n  ".join(lines) + "\nUse a new output folder, or restore these settings (bookkeeping "
            "settings such as save_every or keep_checkpoints may change).")


@dataclass(frozen=True)
class Checkpoint:
    """A verified checkpoint: its folder and state file (``step``, ``identity``, ``progress``, ``files``)."""

    path: Path
    state: dict[str, Any]

    @property
    def step(self) -> int:
        return int(self.state["step"])

    @property
    def progress(self) -> dict[str, Any]:
        return self.state.get("progress", {})

    def load(self, name: str, map_location: Any = "cpu", weights_only: bool = True) -> Any:
        """A file the main process wrote with ``torch.save`` (``tensors`` of :func:`save_checkpoint`)."""
        return torch.load(self.path / name, map_location=map_location, weights_only=weights_only)


def newest_intact_checkpoint(out_dir: str | Path) -> Path | None:
    """The newest complete checkpoint whose files match their records; damaged newer ones are set aside with a
    warning. ``None`` when the run has no checkpoint; :class:`NoIntactCheckpointError` when none is intact."""
    damaged = []
    for ckpt in reversed(checkpoint_dirs(out_dir)):
        problems = verify_checkpoint(ckpt)
        if not problems:
            return ckpt
        moved = set_aside(ckpt)
        damaged.append(moved)
        warnings.warn(f"checkpoint {ckpt} is damaged and was set aside as {moved.name}: " + "; ".join(problems)
                      + ". Resuming from an older checkpoint if there is one.", DamagedCheckpointWarning, stacklevel=3)
    if damaged:
        root = Path(out_dir) / CHECKPOINT_DIR
        raise NoIntactCheckpointError(
            f"no intact checkpoint to resume from in {root}: every one failed its file check and was set aside "
            f"({', '.join(p.name for p in damaged)}). To start over, remove the folder {root} (the damaged copies "
            "are in it) or use a new output folder, and re-run the same command.")
    return None


def resume_from(out_dir: str | Path, identity: dict[str, Any], processes: Any = None) -> Checkpoint | None:
    """The checkpoint a run in ``out_dir`` continues from (``None``: start fresh), verified and checked against
    ``identity``. The main process verifies and sets damaged checkpoints aside; every process gets its answer."""
    procs = processes or OneProcess()
    answer: tuple[str, str | None] = ("none", None)
    if procs.main:
        try:
            found = newest_intact_checkpoint(out_dir)
            answer = ("path", str(found)) if found is not None else ("none", None)
        except NoIntactCheckpointError as exc:
            answer = ("error", str(exc))
    kind, value = procs.broadcast(answer)
    if kind == "error":
        raise NoIntactCheckpointError(value)
    if kind == "none":
        return None
    ckpt = Checkpoint(Path(value), read_state(value))
    check_identity(ckpt.state.get("identity", {}), identity, ckpt.path)
    return ckpt
