"""Checkpoints of every stage (pretraining, SFT, RL): one layout, one way to save, verify and resume, one model
fingerprint, and the trained-model folders a stage hands on.

- :mod:`.layout` — ``<out>/checkpoints/step-XXXXXXXX``, the state file, listing, setting aside, pruning;
- :mod:`.integrity` — sha256 and size of every file, recorded at save and verified at resume;
- :mod:`.save` — :func:`save_checkpoint` (atomic; :class:`DiskFullError` says what a full disk means for the run);
- :mod:`.resume` — :func:`resume_from` (the newest intact checkpoint; damaged ones set aside) and the run identity a
  resume must match (:func:`run_identity`, :class:`ResumeMismatchError`);
- :mod:`.fingerprint` — :func:`model_fingerprint` (live weights), :func:`folder_fingerprint` (a model folder);
- :mod:`.model_folder`, :mod:`.adapter_folder` — :func:`save_model` (a full folder, or a LoRA adapter folder on top of
  its base); :func:`fl1_core.model.load_future_l1` reads both back.
"""

from .adapter_folder import adapter_base_path, is_adapter_dir
from .fingerprint import folder_fingerprint, model_fingerprint
from .integrity import file_records, nbytes, read_state, training_state_bytes, verify_checkpoint
from .layout import (
    CHECKPOINT_DIR,
    STATE_FILE,
    checkpoint_dirs,
    checkpoint_path,
    checkpoint_step,
    latest_checkpoint,
    prune_checkpoints,
    set_aside,
)
from .model_folder import HEAD_FILE, save_model, stated_dtype
from .resume import (
    Checkpoint,
    DamagedCheckpointWarning,
    NoIntactCheckpointError,
    ResumeMismatchError,
    check_identity,
    newest_intact_checkpoint,
    resume_from,
    run_identity,
)
from .save import DiskFullError, OneProcess, is_disk_full, save_checkpoint

__all__ = [
    "CHECKPOINT_DIR", "HEAD_FILE", "STATE_FILE", "Checkpoint", "DamagedCheckpointWarning", "DiskFullError",
    "NoIntactCheckpointError", "OneProcess", "ResumeMismatchError", "adapter_base_path", "check_identity",
    "checkpoint_dirs", "checkpoint_path", "checkpoint_step", "file_records", "folder_fingerprint", "is_adapter_dir",
    "is_disk_full", "latest_checkpoint", "model_fingerprint", "nbytes", "newest_intact_checkpoint", "prune_checkpoints",
    "read_state", "resume_from", "run_identity", "save_checkpoint", "save_model", "set_aside", "stated_dtype",
    "training_state_bytes", "verify_checkpoint",
]
