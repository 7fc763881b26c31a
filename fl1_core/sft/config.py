"""The SFT configuration (every knob, the CPU and GPU presets, which settings a resume may change), its errors and
results."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal


from ..config import SAMPLING_LOSSES, FineTuneConfig, check_system_prompt, paper_setting
from ..model import FutureL1Model

logger = logging.getLogger(__name__)
_HP = "docs/PAPER.md#hyperparameters"

#: SFT modes: "latent" (Future-L1: one latent span per future frame, CE + λ·alignment), "text" (the text-only
#: baseline: thoughts kept, frames dropped, CE only), "pause" (the pause-token control: the latent structure and slot
#: count, every slot fed the learned <|latent|> embedding, CE only)
Mode = Literal["latent", "text", "pause"]
SFT_MODES: tuple[str, ...] = ("latent", "text", "pause")


def data_structure(mode: str) -> str:
    """The example structure a mode trains on: ``"text"`` for the text-only baseline, else ``"latent"``."""
    if mode not in SFT_MODES:
        raise ValueError(f"SFT mode must be one of {SFT_MODES}, got {mode!r}")
    return "text" if mode == "text" else "latent"

TIMING_KEYS = ("time/tokens_per_s", "time/step_s")  # metrics that depend on wall-clock time
#: SFTConfig fields that may change between a run and its resume (they do not change the result)
HARMLESS_KEYS = frozenset(
    {"save_every", "keep_checkpoints", "log_every", "progress_bar", "dataloader_workers", "gradient_checkpointing",
     "report_to"}
)

# ---------------------------------------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------------------------------------


@dataclass
class SFTConfig(FineTuneConfig):
    """Settings of one SFT run. Global batch = ``per_device_batch_size × gradient_accumulation_steps × processes``.

    - ``num_epochs`` passes over the data, or exactly ``max_steps`` optimizer steps if set (epochs repeat as needed);
    - ``lr(s) = learning_rate · s / w`` for ``s < w = ⌈warmup_ratio·S⌉``, then
      ``learning_rate · ½(1 + cos(π (s − w)/(S − w)))`` (``lr_scheduler="cosine"``) or constant;
    - ``mixed_precision``: ``"auto"`` = bf16 on a bf16-capable GPU, fp32 (``"no"``) on CPU;
    - ``letter_weight``: weight of the option-letter tokens in the CE (:func:`fl1_core.losses.causal_ce_loss`);
      1 = the paper's plain mean;
    - ``latent``: overrides of the model's LatentConfig written into the trained model (e.g. ``{"latent_lambda":
      0.2}`` for ``loss = CE + λ·MSE``; ``{}`` keeps the model's);
    - ``save_every``: checkpoint interval in optimizer steps (0 = only at the end); ``keep_checkpoints`` newest kept;
    - ``on_error="skip"``: bad records go to ``<out>/rejects.jsonl``; ``validate_examples`` decodes and checks every
      example once before training so a bad record never reaches a batch; ``cache_examples`` keeps decoded frames
      in memory (right for the world; turn off for 50K real records and use ``dataloader_workers``).

    Fields whose default is the paper's say so in their help text (docs/PAPER.md#hyperparameters); the release's
    GPU run is :meth:`gpu_release` (global batch 1 × 16 × 8 GPUs = 128, bf16, λ = 0.2). ``letter_weight``,
    scheduled sampling and ``init_kl`` are the workbook's (1, 0 and 0 = the paper's plain teacher-forced CE).
    """

    learning_rate: float = paper_setting(1e-5, _HP)
    lr_scheduler: Literal["cosine", "constant"] = paper_setting("cosine", _HP)
    warmup_ratio: float = paper_setting(0.1, _HP)
    weight_decay: float = paper_setting(0.1, _HP)
    num_epochs: float = paper_setting(1.0, _HP)
    per_device_batch_size: int = paper_setting(1, _HP)
    gradient_accumulation_steps: int = paper_setting(16, _HP, "× 8 GPUs × 1 per device = global batch 128")
    mixed_precision: Literal["auto", "no", "bf16", "fp16"] = "auto"
    freeze_vision: bool = paper_setting(True, _HP, "vision tower and merger frozen")
    letter_weight: float = 1.0
    # scheduled sampling (not in the release; 0 = the release's pure teacher forcing): with probability p a span gets
    # the model's own projected predictions (FutureL1Model.own_latent_inputs), p rising linearly from 0 over
    # scheduled_sampling_ramp of the steps; latent mode only
    scheduled_sampling_p: float = 0.0
    scheduled_sampling_ramp: float = 0.3
    # what that pass trains (FutureL1Model.forward's own_latent_loss): "ce", the text after the own predictions, or
    # "alignment", each slot's prediction after the own predictions before it (the CE stays teacher-forced)
    scheduled_sampling_loss: str = "ce"
    # counterfactual readings (not in the release; 0 = off): with this probability per example and epoch, a
    # frame-needing chain's layout reading moves the asked object, and the conclusion follows (no loss on the moved
    # phrase), fl1_core.data.counterfactual_reading; every mode
    reading_swap_p: float = 0.0
    # KL to the initial model (not in the release; 0 = off): loss += init_kl · KL(π_init ‖ π_θ) over the CE
    # positions, fl1_core.losses.init_kl_loss, with π_init a frozen copy of the model SFT starts from (a second copy
    # of the weights; under LoRA the adapters switched off and the fully trained heads as at the start). Latent mode
    # only: the text-only and pause controls change what the initial model writes or reads, and a KL to it would
    # hold them to its latent format (text-only SFT with it kept writing latent spans in every frame-needing answer)
    init_kl: float = 0.0
    system_prompt: str = "interleaved"
    max_length: int | None = None
    on_error: Literal["raise", "skip"] = "skip"
    validate_examples: bool = True
    cache_examples: bool = True
    dataloader_workers: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ValueError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if self.per_device_batch_size < 1 or self.gradient_accumulation_steps < 1:
            raise ValueError("per_device_batch_size and gradient_accumulation_steps must be >= 1")
        if self.lr_scheduler not in ("cosine", "constant"):
            raise ValueError(f"lr_scheduler must be 'cosine' or 'constant', got {self.lr_scheduler!r}")
        if self.mixed_precision not in ("auto", "no", "bf16", "fp16"):
            raise ValueError(f"mixed_precision must be auto/no/bf16/fp16, got {self.mixed_precision!r}")
        if self.on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {self.on_error!r}")
        if self.letter_weight <= 0:
            raise ValueError(f"letter_weight must be > 0, got {self.letter_weight}")
        if not (0.0 <= self.scheduled_sampling_p <= 1.0 and 0.0 <= self.scheduled_sampling_ramp <= 1.0):
            raise ValueError("scheduled_sampling_p and scheduled_sampling_ramp must be in [0, 1], got "
                             f"{self.scheduled_sampling_p}, {self.scheduled_sampling_ramp}")
        if self.scheduled_sampling_loss not in SAMPLING_LOSSES:
            raise ValueError(f"scheduled_sampling_loss must be one of {SAMPLING_LOSSES}, "
                             f"got {self.scheduled_sampling_loss!r}")
        if not 0.0 <= self.reading_swap_p <= 1.0:
            raise ValueError(f"reading_swap_p must be in [0, 1], got {self.reading_swap_p}")
        if self.init_kl < 0:
            raise ValueError(f"init_kl must be >= 0, got {self.init_kl}")
        if self.save_every < 0:
            raise ValueError("save_every must be >= 0")
        check_system_prompt(self)

    def latent_terms_in(self, mode: str) -> tuple[float, float]:
        """(scheduled-sampling p, init_kl β) of an SFT run of ``mode``: this config's in latent SFT, (0, 0) in the
        text-only and pause-token controls (held to a base that writes latent spans, a control would stop being
        one). The loop trains and ``fl1 plan`` counts memory by this one rule."""
        data_structure(mode)  # refuses an unknown mode
        return (self.scheduled_sampling_p, self.init_kl) if mode == "latent" else (0.0, 0.0)

    def own_latent_p_at(self, step: int, total_steps: int) -> float:
        """Scheduled-sampling probability at 0-based optimizer ``step``: ``p·min(1, (s+1)/(ramp·S))``."""
        ramp = self.scheduled_sampling_ramp * total_steps
        return self.scheduled_sampling_p * (1.0 if ramp <= 0 else min(1.0, (step + 1) / ramp))

    @classmethod
    def gpu_release(cls, **overrides: Any) -> "SFTConfig":
        """The release's run (docs/PAPER.md#hyperparameters): AdamW lr 1e-5, cosine, warmup 0.1, wd 0.1, 1 epoch, bf16,
        gradient checkpointing, λ = 0.2, per-device batch 1 × grad-accum 16 × 8 GPUs = global batch 128 (launch with
        ``accelerate launch --config_file configs/accelerate/zero2.yaml``)."""
        base = dict(
            learning_rate=1e-5, lr_scheduler="cosine", warmup_ratio=0.1, weight_decay=0.1, num_epochs=1,
            per_device_batch_size=1, gradient_accumulation_steps=16, mixed_precision="bf16",
            gradient_checkpointing=True, latent={"latent_lambda": 0.2}, max_grad_norm=1.0, save_every=200,
            cache_examples=False, dataloader_workers=4,
        )
        base.update(overrides)
        return cls(**base)

    @classmethod
    def cpu_world(cls, **overrides: Any) -> "SFTConfig":
        """The world preset: batch 8, 3 epochs, lr 3e-4 cosine with 5 % warmup, fp32 (the default world's curated
        900 records: 113 steps per epoch, about 1 minute per epoch on an idle 2-core machine).

        The learning rate is at the level of the base's last pretraining phases (3e-4 to 4e-4), so SFT keeps what the
        base learned. At 2e-3 (the preset until 2026-12-05) SFT undid the base's copy of the asked object's place from
        its reading: a gold reading is followed in 98.5 % (text) and 77.5 % (chain) of 200 questions by the shipped
        base, 58.0 / 62.5 % after latent SFT at 2e-3, 95.0 / 80.0 % at 3e-4 (``benchmarks/follow_reading_probe.py``
        on the imagination check's SFT models, world 0, seed 0).

        Teacher forcing as in the release (``scheduled_sampling_p=0``). Scheduled sampling is an option; measured on
        the world (p = 0.5, 320 frame-needing items, seed 0) it taught the text to ignore the latent slots, since the
        model's own latents carry little of the frame (README, "Imagination").

        Deviation from the release (documented): a KL to the initial model, ``init_kl=4`` (the release has none). The
        records of highest visual gain cost the base's event predictions: latent SFT on the curated 476 records of
        world 0 (seed 0, 226 steps, chain route, paired over 400 held-out event-kind items against the shipped base)
        moved the concluded event by −4.8 [−9.0, −0.5] points without it, −1.0 [−5.0, +3.0] at 0.25, −1.2 [−4.8,
        +2.3] at 1 and +0.0 [−3.1, +3.1] at 4; on the 320 frame-needing items by −0.6, −0.9, −0.9 and −2.5 (CIs ±5 to
        6). ``--set init_kl=0`` trains without it. The text-only and pause controls train without it (the field's
        comment): with it, over 3 seeds, text-only SFT kept the base's latent spans and came within 2 points of latent
        SFT on the frame-needing items."""
        base = dict(
            learning_rate=3e-4, lr_scheduler="cosine", warmup_ratio=0.05, weight_decay=0.01, num_epochs=3,
            per_device_batch_size=8, gradient_accumulation_steps=1, mixed_precision="no",
            gradient_checkpointing=False, latent={"latent_lambda": 0.2}, max_grad_norm=1.0, save_every=60,
            log_every=20, init_kl=4.0,
        )
        base.update(overrides)
        return cls(**base)


def result_affecting(config: SFTConfig) -> dict[str, Any]:
    """The settings whose change between a run and its resume would change the result (all but HARMLESS_KEYS)."""
    return {k: v for k, v in config.to_dict().items() if k not in HARMLESS_KEYS}


# ---------------------------------------------------------------------------------------------------------------------
# Errors and results
# ---------------------------------------------------------------------------------------------------------------------


class NonFiniteLossError(FloatingPointError):
    """The loss (or gradient norm) became NaN/inf; the run stopped before the optimizer step."""


@dataclass
class StepInfo:
    """What a callback sees after every optimizer step (metrics row already written, checkpoint saved if any)."""

    step: int
    total_steps: int
    metrics: dict[str, Any]
    checkpoint: Path | None


@dataclass
class SFTResult:
    """Outcome of :func:`train_sft`."""

    out_dir: Path
    final_dir: Path
    total_steps: int
    resumed_from_step: int | None
    num_examples: int
    num_rejects: int
    wall_time_s: float
    metrics: list[dict[str, Any]] = field(repr=False)
    model: FutureL1Model | None = field(default=None, repr=False)

    @property
    def final_loss(self) -> float | None:
        return self.metrics[-1]["loss/total"] if self.metrics else None


