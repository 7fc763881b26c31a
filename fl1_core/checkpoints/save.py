"""Saving a training checkpoint: atomically, with the sizes and hashes of its files, and with a clear error when the
disk is full.

:func:`save_checkpoint` writes ``<out>/checkpoints/step-XXXXXXXX`` in a temporary sibling folder: first the
stage's collective writers (``write``: accelerate's ``save_state``, FSDP shards), then the main process's torch files
(``tensors``), then the state file with ``step``, ``identity`` (what a resume must match), ``progress`` (where the
stage continues) and ``files`` (sha256 and size of every other file). Only then is the folder renamed into place and
older checkpoints pruned, so the last intact checkpoint outlives a save that fails.

A write that fails for lack of space (``OSError`` ENOSPC / EDQUOT, or torch's ``RuntimeError … unexpected pos`` /
``enforce fail`` when the free space left is below the bytes needed) raises :class:`DiskFullError` after the temporary
folder is removed: it names the folder, the bytes needed and the last intact checkpoint a re-run resumes from.
"""

from __future__ import annotations

import contextlib
import errno
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ..runs import atomic_directory, atomic_write_json
from .integrity import file_records, nbytes
from .layout import CHECKPOINT_DIR, STATE_FILE, checkpoint_path, latest_checkpoint, prune_checkpoints

# what torch's zip writer says when a write fails (it does not keep the errno)
_TORCH_WRITE_FAILURES = ("unexpected pos", "enforce fail", "PytorchStreamWriter failed", "file write failed")


class DiskFullError(OSError):
    """A checkpoint could not be written for lack of disk space (nothing was lost: see the message)."""


class OneProcess:
    """The process group of a run without distribution: :func:`save_checkpoint` and
    :func:`~fl1_core.checkpoints.resume_from` take any object with these three members
    (:class:`fl1_core.distributed.ProcessGroup` has them)."""

    main = True

    @staticmethod
    def broadcast(obj: Any) -> Any:
        return obj

    @staticmethod
    def barrier() -> None:
        return None


def _folder_bytes(path: Path | None) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path is not None else 0


def _existing(path: Path) -> Path:
    """``path`` or its nearest existing parent (where free space is measured)."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _chain(exc: BaseException):
    while exc is not None:
        yield exc
        exc = exc.__cause__ or exc.__context__


def is_disk_full(exc: BaseException, where: str | Path, needed: int) -> bool:
    """True when ``exc`` (or an exception it was raised from) is a failed write for lack of space: errno ENOSPC /
    EDQUOT, or a torch write failure with less than ``needed`` bytes free at ``where``."""
    for e in _chain(exc):
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if isinstance(e, RuntimeError) and any(m in str(e) for m in _TORCH_WRITE_FAILURES):
            return shutil.disk_usage(where).free < needed
    return False


def _size(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return ""


def disk_full_message(final: Path, needed: int, free: int, last: Path | None) -> str:
    where = final.parent
    text = (f"the disk is full: saving checkpoint {final.name} into {where} needs about {_size(needed)} "
            f"({needed:,} bytes) and {_size(free)} are free. Nothing was lost: the half-written folder was removed. ")
    if last is not None:
        return text + (f"The last intact checkpoint is {last} (step {int(last.name.split('-')[1])}): free some space "
                       "and re-run the same command, it resumes from there.")
    return text + ("There is no earlier checkpoint: free some space and re-run the same command, it starts from the "
                   "beginning.")


def save_checkpoint(
    out_dir: str | Path,
    step: int,
    *,
    identity: dict[str, Any],
    progress: dict[str, Any] | None = None,
    tensors: dict[str, Any] | None = None,
    write: Callable[[Path], None] | None = None,
    keep: int = 2,
    processes: Any = None,
    size_estimate: int | None = None,
) -> Path:
    """Write checkpoint ``step`` of the run in ``out_dir`` and prune to the newest ``keep``; returns its folder.

    ``write(folder)`` runs on every process (collective writers); ``tensors`` (file name → object) are written by
    the main process with ``torch.save``. ``size_estimate``: bytes the checkpoint needs, quoted when the disk is
    full (the largest of it, the tensors' bytes and the previous checkpoint's size)."""
    procs = processes or OneProcess()
    final = checkpoint_path(out_dir, step)
    last = latest_checkpoint(out_dir)
    try:
        with contextlib.ExitStack() as stack:
            tmp = stack.enter_context(atomic_directory(final)) if procs.main else None
            tmp = Path(procs.broadcast(str(tmp) if tmp is not None else None))
            if write is not None:
                write(tmp)
            procs.barrier()
            if procs.main:
                for name, obj in (tensors or {}).items():
                    torch.save(obj, tmp / name)
                state = {"step": int(step), "identity": identity, "progress": progress or {},
                         "files": file_records(tmp)}
                atomic_write_json(tmp / STATE_FILE, state)  # written last: marks the checkpoint complete
    except Exception as exc:
        root = _existing(Path(out_dir) / CHECKPOINT_DIR)
        needed = max(size_estimate or 0, nbytes(tensors or {}), _folder_bytes(last))
        if is_disk_full(exc, root, needed):
            raise DiskFullError(errno.ENOSPC, disk_full_message(final, needed, shutil.disk_usage(root).free, last)) \
                from exc
        raise
    if procs.main:
        prune_checkpoints(out_dir, keep, final)
    procs.barrier()
    return final
