"""The SFT stage (docs/PAPER.md#latent-sft, stage 2) on ``accelerate``: latent SFT and the text-only SFT baseline.

One concept per module: :mod:`.config` (SFTConfig, presets, results, errors), :mod:`.data` (examples, sharded
validation, data order, batch stream), :mod:`.checkpoints` (folders, fingerprint, resume check, saving), :mod:`.loop`
(:func:`train_sft`, :func:`run_sft`; its docstring states the optimisation and resume rules) and :mod:`.report`
(:func:`format_report`, :func:`split_holdout`). This package exports their public names.
"""

from .checkpoints import (
    CHECKPOINT_DIR,
    STATE_FILE,
    _check_resume,
    _save_checkpoint,
    _save_final,
    checkpoint_dirs,
    latest_checkpoint,
    model_fingerprint,
)
from .config import (
    HARMLESS_KEYS,
    TIMING_KEYS,
    SFT_MODES,
    NonFiniteLossError,
    ResumeMismatchError,
    SFTConfig,
    SFTResult,
    StepInfo,
    result_affecting,
)
from .data import ExampleSource, epoch_permutation, micro_batch_indices, validate_examples
from .loop import run_sft, train_sft
from .report import FormatReport, format_report, split_holdout

__all__ = [
    "CHECKPOINT_DIR", "HARMLESS_KEYS", "SFT_MODES", "STATE_FILE", "TIMING_KEYS", "ExampleSource", "FormatReport",
    "NonFiniteLossError", "ResumeMismatchError", "SFTConfig", "SFTResult", "StepInfo", "checkpoint_dirs",
    "epoch_permutation", "format_report", "latest_checkpoint", "micro_batch_indices", "model_fingerprint",
    "result_affecting", "run_sft", "split_holdout", "train_sft", "validate_examples",
]
