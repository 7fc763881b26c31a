"""The SFT stage (docs/PAPER.md#latent-sft, stage 2) on ``accelerate``: latent SFT and the text-only SFT baseline.

One concept per module: :mod:`.config` (SFTConfig, presets, results, errors), :mod:`.data` (examples, sharded
validation, batch stream; the data order is :mod:`fl1_core.data.order`'s), :mod:`.loop` (:func:`train_sft`, :func:`run_sft`; its docstring states the
optimisation and resume rules) and :mod:`.report` (:func:`format_report`, :func:`split_holdout`). Checkpoints (layout,
saving, verified resume) are :mod:`fl1_core.checkpoints`'s.
"""

from .config import (
    HARMLESS_KEYS,
    TIMING_KEYS,
    SFT_MODES,
    NonFiniteLossError,
    SFTConfig,
    SFTResult,
    StepInfo,
    result_affecting,
)
from .data import ExampleSource, validate_examples
from .loop import run_sft, save_final_model, train_sft
from .report import FormatReport, format_report, split_holdout

__all__ = [
    "HARMLESS_KEYS", "SFT_MODES", "TIMING_KEYS", "ExampleSource", "FormatReport", "NonFiniteLossError", "SFTConfig",
    "SFTResult", "StepInfo", "format_report", "result_affecting",
    "run_sft", "save_final_model", "split_holdout", "train_sft", "validate_examples",
]
