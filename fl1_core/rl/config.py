"""Configuration of the LA-DAPO trainer (docs/PAPER.md#la-dapo): one dataclass, two release/corrected presets, three modes.

Settings left at ``None`` are *derived* by :meth:`RLConfig.resolved` from ``preset`` and ``mode``; the resolved
config is what a run records (manifest, checkpoints) and what a resume compares.

Presets (``preset``):

- ``release`` — what the authors' code ran: log-probs recomputed WITHOUT latent replay (static ``<|latent|>``
  embedding), forced tokens (``<|latent|>``, budget-forced ``<|latent_end|>``) inside the loss mask, one optimiser
  step per rollout (1 mini-batch × 1 epoch, so ρ ≡ 1 and clipping never fires), λ_ctr = 1.0, τ = 0.5, λ_div = 0.
- ``corrected`` (default) — latent replay in every log-prob recomputation (old, reference, current), forced tokens
  masked out of the policy loss and KL, ``mini_batches`` × ``epochs_per_rollout`` optimiser steps per rollout,
  λ_ctr = 0.2, τ = 0.5, λ_div = 0.1.

Modes (``mode``):

- ``grpo`` — no dynamic sampling, symmetric clip ε_low = ε_high = 0.2, sequence-mean aggregation, no R_ctr/R_div;
- ``dapo`` — clip-higher (0.2 / 0.28), dynamic sampling with refill rounds, token-mean aggregation, no R_ctr/R_div;
- ``la-dapo`` — dapo + R_ctr + R_div with the preset's weights.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from fl1_core.config import ConfigBase
from fl1_core.data.prompt_caps import MAX_PROMPT_TOKENS, QUESTION_MAX_PIXELS

__all__ = ["RLConfig", "PRESETS", "MODES", "NON_RESULT_KEYS"]

PRESETS = ("release", "corrected")
MODES = ("grpo", "dapo", "la-dapo")

# Settings that do not change what a run computes (a resume may change them freely).
NON_RESULT_KEYS = frozenset(
    {"total_steps", "save_every", "keep_checkpoints", "progress_bar", "rollout_batch_size", "replay_batch_size",
     "gradient_checkpointing", "logprob_chunk", "report_to", "prompt_cache_bytes"}
)


@dataclass
class RLConfig(ConfigBase):
    """Every knob of the LA-DAPO trainer. ``None`` = derived from ``preset`` / ``mode`` (see :meth:`resolved`).

    Paper values (docs/PAPER.md#hyperparameters), the defaults here: ``group_size`` 8, ``prompts_per_step`` 64,
    ``temperature`` 0.9, ``top_p`` 0.99, ``max_new_tokens`` 2048, ``loose_cap`` 64; ``filter_low`` / ``filter_high``
    0.1 / 0.9, ``max_rounds`` 20 (docs/PAPER.md#dynamic-sampling); ``w_acc`` 0.9, ``w_fmt`` 0.1,
    ``repetition_threshold`` 0.5, τ 0.5 and λ_ctr / λ_div 1.0 / 0 (``release``) or 0.2 / 0.1 (``corrected``)
    (docs/PAPER.md#rewards); ε 0.2 / 0.28, ``dual_clip`` 3 (docs/PAPER.md#dapo-loss); ``kl_beta`` 0.01
    (docs/PAPER.md#kl); AdamW ``learning_rate`` 1e-6, ``weight_decay`` 0.01, ``max_grad_norm`` 1.0, 1 epoch, vision
    tower trained. The workbook's own: ``w_event``, ``judge_on``, ``judge_failure_policy``, several optimiser steps
    per rollout (docs/PAPER.md#deviations)."""

    preset: Literal["release", "corrected"] = "corrected"
    mode: Literal["grpo", "dapo", "la-dapo"] = "la-dapo"
    seed: int = 0

    # --- rollouts (docs/PAPER.md#hyperparameters: n = 8, 64 prompts, T = 0.9, top-p 0.99, ≤ 2048 tokens, latent cap 64)
    group_size: int = 8
    prompts_per_step: int = 64
    max_new_tokens: int = 2048
    temperature: float = 0.9
    top_p: float = 0.99
    loose_cap: int | None = 64  # loose decoding cap per span (LatentConfig.loose_cap for rollouts); None → the model's LatentConfig budget
    force_initial_latent: bool | None = None  # None → the model's LatentConfig
    system_prompt: str = "interleaved"
    rollout_batch_size: int | None = None  # rows per generate call (None → a whole round at once)
    replay_batch_size: int | None = None  # rows per no-grad replay (old / ref); None → micro_batch_size
    # --- host-RAM caps (fl1_core.data.prompt_caps: why these defaults); None = no cap
    question_max_pixels: int | None = QUESTION_MAX_PIXELS  # pixels per question frame (release: near-native)
    max_prompt_tokens: int | None = MAX_PROMPT_TOKENS  # longer prompts are rejected by id (prompt_rejects.jsonl)
    prompt_cache_bytes: int = 2 * 1024**3  # processed prompts kept per process (LRU, bytes of their tensors)

    # --- dynamic sampling (DAPO)
    dynamic_sampling: bool | None = None  # None → off for grpo, on for dapo / la-dapo
    filter_low: float = 0.1
    filter_high: float = 0.9
    max_rounds: int = 20

    # --- accuracy reward
    judge_on: Literal["free-form", "all"] = "free-form"  # which rule failures go to the LLM judge
    judge_failure_policy: Literal["retry", "drop_group"] = "drop_group"
    judge_retry_rounds: int = 2  # extra judge_many rounds for failed items under "retry"
    repetition_threshold: float = 0.5

    # --- reward weights (None → preset; grpo / dapo force λ_ctr = λ_div = 0)
    w_acc: float = 0.9
    w_fmt: float = 0.1
    w_event: float = 0.0  # the workbook's event-consistency term (MCQ final thought names the answer); not the paper
    lambda_ctr: float | None = None
    tau: float | None = None
    lambda_div: float | None = None

    # --- policy loss
    eps_low: float | None = None  # None → 0.2
    eps_high: float | None = None  # None → 0.2 (grpo) / 0.28 (dapo, la-dapo)
    dual_clip: float | None = 3.0
    loss_agg: Literal["token", "seq"] | None = None  # None → seq (grpo) / token (dapo, la-dapo)
    kl_beta: float = 0.01
    replay_latents: bool | None = None  # None → preset
    mask_forced: bool | None = None  # None → preset
    mini_batches: int = 1  # optimiser steps per epoch over a rollout (release: forced to 1)
    epochs_per_rollout: int = 1  # passes over a rollout (release: forced to 1)
    micro_batch_size: int | None = None  # rows per forward/backward (gradient accumulation); None → a mini-batch
    # old log-probs by a separate no-grad replay; None → only when a rollout gets more than one optimiser step
    # (with one step, π_old = π_θ exactly, so log π_old = log π_θ.detach() — ρ ≡ 1 — and one forward is saved)
    recompute_old_logprobs: bool | None = None

    # --- optimiser (docs/PAPER.md#hyperparameters: AdamW lr 1e-6 constant, wd 0.01, clip 1.0)
    learning_rate: float = 1e-6
    weight_decay: float = 0.01
    adam_betas: tuple[float, float] = (0.9, 0.999)
    adam_epsilon: float = 1e-8
    max_grad_norm: float = 1.0
    freeze_vision: bool = False  # the release trains the vision tower
    lr_scheduler: Literal["constant", "cosine"] = "constant"  # the release: constant
    warmup_steps: int = 0  # linear warm-up steps (with either scheduler)
    min_lr_ratio: float = 0.1  # cosine: the lr decays to min_lr_ratio · learning_rate at the last step
    # rollout budget: "fixed" = max_new_tokens; "data" = the token_budget_quantile of the reference SFT-format chains
    # of the RL records (fl1_core.rl.budget), so the chains SFT taught fit
    token_budget: Literal["fixed", "data"] = "fixed"
    token_budget_quantile: float = 0.99

    # --- memory (fitting the 8B actor)
    gradient_checkpointing: bool = False  # recompute activations in the policy replay's backward
    logprob_chunk: int = 1024  # positions per chunk of the LM head in replay (never a full fp32 [B, T, V])
    ref_dtype: Literal["auto", "model", "bf16"] = "auto"  # reference copy: bf16 on a bf16 GPU ("auto"), else as loaded
    lora: dict | None = None  # LoRA adapter settings (fl1_core.adapters.LoraSettings fields); None → full fine-tuning
    lora_merge: bool = False  # with LoRA: final/ merged into a full checkpoint instead of an adapter folder

    # --- schedule and run
    num_epochs: float = 1.0  # passes over the RL data; total steps = ceil(N · num_epochs / prompts_per_step)
    total_steps: int | None = None  # overrides num_epochs when set
    save_every: int = 10
    keep_checkpoints: int = 2
    progress_bar: bool = True
    report_to: str | None = None  # also log metrics to accelerate trackers: "tensorboard", "wandb", … (None = off)

    RENAMED: ClassVar[dict[str, str]] = {  # one name per setting, shared with SFTConfig / LatentConfig
        "lr": "learning_rate", "adam_eps": "adam_epsilon", "grad_clip": "max_grad_norm", "checkpoint_every": "save_every",
        "progress": "progress_bar", "latent_cap": "loose_cap",
    }

    def __post_init__(self) -> None:
        if isinstance(self.adam_betas, list):
            self.adam_betas = tuple(self.adam_betas)  # type: ignore[assignment]
        if self.preset not in PRESETS:
            raise ValueError(f"preset must be one of {PRESETS}, got {self.preset!r}")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.group_size < 2:
            raise ValueError(f"group_size must be >= 2 (group advantages need an unbiased std), got {self.group_size}")
        for name in ("prompts_per_step", "max_new_tokens", "max_rounds", "mini_batches", "epochs_per_rollout"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 < self.top_p <= 1 or self.temperature <= 0:
            raise ValueError(f"need temperature > 0 and 0 < top_p <= 1, got {self.temperature}, {self.top_p}")
        if self.judge_failure_policy not in ("retry", "drop_group"):
            raise ValueError(f"judge_failure_policy must be 'retry' or 'drop_group', got {self.judge_failure_policy!r}")
        if self.loss_agg not in (None, "token", "seq"):
            raise ValueError(f"loss_agg must be 'token' or 'seq', got {self.loss_agg!r}")
        if self.save_every < 1:
            raise ValueError(f"save_every must be >= 1, got {self.save_every}")
        if self.lr_scheduler not in ("constant", "cosine") or self.warmup_steps < 0:
            raise ValueError(f"lr_scheduler must be 'constant' or 'cosine' and warmup_steps >= 0, got "
                             f"{self.lr_scheduler!r}, {self.warmup_steps}")
        if self.token_budget not in ("fixed", "data") or not 0 < self.token_budget_quantile <= 1:
            raise ValueError(f"token_budget must be 'fixed' or 'data' with 0 < token_budget_quantile <= 1, got "
                             f"{self.token_budget!r}, {self.token_budget_quantile}")

    def lr_at(self, step: int, total_steps: int) -> float:
        """Learning rate of 0-based ``step``: linear warm-up ``lr·(s+1)/w``, then constant, or cosine
        ``lr·(m + (1−m)·½(1 + cos(π·(s−w)/(S−w))))`` down to ``m = min_lr_ratio``."""
        if step < self.warmup_steps:
            return self.learning_rate * (step + 1) / self.warmup_steps
        if self.lr_scheduler == "constant":
            return self.learning_rate
        progress = min(1.0, (step - self.warmup_steps) / max(1, total_steps - self.warmup_steps))
        m = self.min_lr_ratio
        return self.learning_rate * (m + (1 - m) * 0.5 * (1 + math.cos(math.pi * progress)))

    # ------------------------------------------------------------------------------------------------ derivation
    def resolved(self) -> "RLConfig":
        """A copy with every derived setting filled in from ``preset`` and ``mode``."""
        release = self.preset == "release"
        grpo = self.mode == "grpo"
        latent_rewards = self.mode == "la-dapo"
        ch: dict[str, Any] = {}
        if self.dynamic_sampling is None:
            ch["dynamic_sampling"] = not grpo
        if self.eps_low is None:
            ch["eps_low"] = 0.2
        if self.eps_high is None:
            ch["eps_high"] = 0.2 if grpo else 0.28
        if self.loss_agg is None:
            ch["loss_agg"] = "seq" if grpo else "token"
        if self.replay_latents is None:
            ch["replay_latents"] = not release
        if self.mask_forced is None:
            ch["mask_forced"] = not release
        if self.tau is None:
            ch["tau"] = 0.5
        if latent_rewards:
            if self.lambda_ctr is None:
                ch["lambda_ctr"] = 1.0 if release else 0.2
            if self.lambda_div is None:
                ch["lambda_div"] = 0.0 if release else 0.1
        else:
            ch["lambda_ctr"] = 0.0
            ch["lambda_div"] = 0.0
        if release:
            ch["mini_batches"] = 1
            ch["epochs_per_rollout"] = 1
        if self.recompute_old_logprobs is None:
            steps = ch.get("mini_batches", self.mini_batches) * ch.get("epochs_per_rollout", self.epochs_per_rollout)
            ch["recompute_old_logprobs"] = steps > 1
        out = dataclasses.replace(self, **ch)
        if not out.recompute_old_logprobs and out.mini_batches * out.epochs_per_rollout > 1:
            raise ValueError("recompute_old_logprobs=False needs exactly one optimiser step per rollout "
                             "(mini_batches = epochs_per_rollout = 1): later steps need the rollout policy's log-probs")
        return out

    def steps_for(self, num_records: int) -> int:
        """Optimiser-step budget (rollout steps) for ``num_records`` prompts: ``total_steps`` or
        ``ceil(num_records · num_epochs / prompts_per_step)`` (≥ 1)."""
        if self.total_steps is not None:
            return int(self.total_steps)
        return max(1, math.ceil(num_records * self.num_epochs / self.prompts_per_step))

    def result_dict(self) -> dict[str, Any]:
        """The resolved settings that change results (compared on resume)."""
        d = self.resolved().to_dict()
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items() if k not in NON_RESULT_KEYS}

    def flags(self) -> dict[str, Any]:
        """The release-faithful / corrected switches, for the run manifest."""
        r = self.resolved()
        return {
            "rl_preset": r.preset,
            "rl_mode": r.mode,
            "rl_replay_latents": r.replay_latents,
            "rl_mask_forced_tokens": r.mask_forced,
            "rl_mini_batches": r.mini_batches,
            "rl_epochs_per_rollout": r.epochs_per_rollout,
            "rl_dynamic_sampling": r.dynamic_sampling,
            "rl_clip": [r.eps_low, r.eps_high, r.dual_clip],
            "rl_loss_agg": r.loss_agg,
            "rl_lambda_ctr": r.lambda_ctr,
            "rl_tau": r.tau,
            "rl_lambda_div": r.lambda_div,
            "rl_judge_failure_policy": r.judge_failure_policy,
            "rl_recompute_old_logprobs": r.recompute_old_logprobs,
        }

    # ---------------------------------------------------------------------------------------------------- presets
    @classmethod
    def release_gpu(cls, **overrides: Any) -> "RLConfig":
        """The release run on GPUs (docs/PAPER.md#hyperparameters): n = 8, 64 prompts, ≤ 2048 tokens, cap 64, lr 1e-6 constant, 1 epoch,
        ``release`` preset, ``la-dapo`` mode ("dapo_ctr"); 64 rows per decode call per process and activation
        checkpointing (what ``fl1 plan --stage rl`` sizes)."""
        base: dict[str, Any] = dict(
            preset="release", mode="la-dapo", group_size=8, prompts_per_step=64, max_new_tokens=2048, loose_cap=64,
            temperature=0.9, top_p=0.99, learning_rate=1e-6, weight_decay=0.01, max_grad_norm=1.0, kl_beta=0.01,
            num_epochs=1.0, micro_batch_size=8, rollout_batch_size=64, save_every=20, gradient_checkpointing=True,
        )
        base.update(cls._current_names(overrides))
        return cls(**base)

    @classmethod
    def corrected_gpu(cls, **overrides: Any) -> "RLConfig":
        """The GPU release sizes with the ``corrected`` preset (4 mini-batches per rollout so clipping can act)."""
        return cls.release_gpu(**{"preset": "corrected", "mini_batches": 4, **overrides})

    @classmethod
    def cpu_world(cls, **overrides: Any) -> "RLConfig":
        """The tiny model on the synthetic world, 2 CPU cores: n = 8, 4 prompts per step, the token budget from the
        data (the 99th percentile of the RL records' reference chains: the multi-span chains SFT taught fit), latent
        cap 9 (one 3x3 frame), lr 1e-4 with 3 warm-up steps and a cosine decay, KL β 0.05 (both keep the policy near
        its SFT init), 2 mini-batches per rollout, at most 3 rounds, 40 steps.

        Deviation from the release (documented): the vision tower is frozen (the release trains it in RL; here it
        was shaped by the world base's cell loss, which RL does not have)."""
        base: dict[str, Any] = dict(
            preset="corrected", mode="la-dapo", group_size=8, prompts_per_step=4, token_budget="data",
            max_new_tokens=256, loose_cap=9, learning_rate=1e-4, lr_scheduler="cosine", warmup_steps=3,
            weight_decay=0.01, max_grad_norm=1.0, kl_beta=0.05, mini_batches=2, max_rounds=3, total_steps=40,
            save_every=10, micro_batch_size=16, freeze_vision=True,
        )
        base.update(cls._current_names(overrides))
        return cls(**base)
