"""Evaluation settings (:class:`EvalConfig`), the benchmark names, their release budgets, the output file names."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any


from fl1_core.config import SamplingConfig, check_latent_overrides, paper_setting

log = logging.getLogger(__name__)

BENCHMARKS = ("futurebench", "twiffbench")
RELEASE_MAX_NEW_TOKENS = {"futurebench": 2048, "twiffbench": 4096}
WORLD_MAX_NEW_TOKENS = 64
# Per-row fields that depend on timing or on how items were batched/sharded (everything else is deterministic).
TIMING_FIELDS = ("latency_s", "decode_s", "batch_size", "rank")
PREDICTIONS = "predictions.jsonl"
SUMMARY = "summary.json"
SHARD_DIR = "shards"
RUN_CONFIG = "eval_config.json"
# Settings that change what is decoded: a resume with different values is refused.
_DECODE_KEYS = ("max_new_tokens", "num_frames", "system_prompt", "do_sample", "temperature", "top_p", "seed")


@dataclass
class EvalConfig(SamplingConfig):
    """Evaluation settings (the sampling settings of :class:`~fl1_core.config.SamplingConfig`; round-trips through
    YAML/JSON with the other configs).

    - ``max_new_tokens``: ``None`` → the release's value per benchmark (:data:`RELEASE_MAX_NEW_TOKENS`: FutureBench
      2048, TwiFF-Bench 4096); :meth:`world` gives the small preset for the synthetic world.
    - ``latent``: overrides of the model's :class:`~fl1_core.config.LatentConfig` for decoding (e.g.
      ``{"budget_mode": "fixed"}``, ``{"loose_cap": 64}``, ``{"force_initial_latent": True}``).
    - ``limit``: evaluate ``limit`` items spread evenly over the file in doc order
      (:func:`fl1_core.data.formats.spread_limit`), so every split keeps its share.
    - ``resume``: skip doc ids already decoded in ``out_dir``; ``False`` clears earlier predictions first.

    Paper values in the help texts (docs/PAPER.md#hyperparameters); the release decodes one item per GPU, the
    workbook batches (``batch_size``).
    """

    max_new_tokens: int | None = None
    do_sample: bool = paper_setting(False, "docs/PAPER.md#hyperparameters", "greedy decoding")
    num_frames: int = paper_setting(32, "docs/PAPER.md#hyperparameters", "FutureBench video frames")
    batch_size: int = 4
    limit: int | None = None
    latent: dict[str, Any] = field(default_factory=dict)
    resume: bool = True
    on_error: str = "skip"
    video_root: str | None = None
    progress_bar: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.batch_size < 1:
            raise ValueError(f"EvalConfig.batch_size must be >= 1, got {self.batch_size}")
        if self.num_frames < 1:
            raise ValueError(f"EvalConfig.num_frames must be >= 1, got {self.num_frames}")
        if self.limit is not None and self.limit < 0:
            raise ValueError(f"EvalConfig.limit must be >= 0 or None, got {self.limit}")
        if self.on_error not in ("skip", "raise"):
            raise ValueError(f"EvalConfig.on_error must be 'skip' or 'raise', got {self.on_error!r}")
        check_latent_overrides(self.latent, "EvalConfig")

    @classmethod
    def world(cls, **overrides: Any) -> "EvalConfig":
        """The small preset for the synthetic world (``max_new_tokens`` = :data:`WORLD_MAX_NEW_TOKENS`)."""
        return cls(**{"max_new_tokens": WORLD_MAX_NEW_TOKENS, **overrides})

    def resolved_max_new_tokens(self, benchmark: str) -> int:
        """``max_new_tokens``, or the release's value for ``benchmark``."""
        _check_benchmark(benchmark)
        return self.max_new_tokens if self.max_new_tokens is not None else RELEASE_MAX_NEW_TOKENS[benchmark]


def _check_benchmark(benchmark: str) -> None:
    if benchmark not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {benchmark!r}; expected one of {BENCHMARKS}")
