"""Configuration of the RL trainer (docs/PAPER.md#la-dapo): one dataclass over the shared run, optimiser and sampling
settings (:mod:`fl1_core.config`).

``mode`` names a registered algorithm (``grpo``, ``dapo``, ``la-dapo``) and ``implementation`` a registered
implementation (``release``, ``corrected``), both in :mod:`fl1_core.rl.algorithms`: clip ranges, loss aggregation,
dynamic sampling, latent replay, forced-token masking and the latent reward weights come from there, complete, and a
run records them with its settings (manifest flags, checkpoints). Hardware presets: :meth:`RLConfig.cpu_world` (the
tiny model on the synthetic world) and :meth:`RLConfig.gpu_release` (the release's sizes).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Literal, get_args

from fl1_core.config import FineTuneConfig, SamplingConfig, paper_setting
from fl1_core.data.prompt_caps import MAX_PROMPT_TOKENS, QUESTION_MAX_PIXELS
from fl1_core.rl.algorithms import Algorithm, Implementation, algorithm, implementation

AnchorDraw = Literal["uniform", "drift"]  # how the SFT anchor draws its records (fl1_core.rl.sft_anchor)
AnchorRecords = Literal["all", "answer_before_chain_end"]  # which records it keeps (sft_anchor.ANCHOR_RECORD_RULES)

__all__ = ["RLConfig", "NON_RESULT_KEYS"]

# Settings that do not change what a run computes (a resume may change them freely).
NON_RESULT_KEYS = frozenset(
    {"max_steps", "save_every", "keep_checkpoints", "progress_bar", "rollout_batch_size", "replay_batch_size",
     "gradient_checkpointing", "logprob_chunk", "report_to", "prompt_cache_bytes", "log_every", "log_rollouts"}
)
_HP = "docs/PAPER.md#hyperparameters"


@dataclass
class RLConfig(FineTuneConfig, SamplingConfig):
    """Every knob of the RL trainer. Fields whose default is the paper's say so in their help text
    (:meth:`~fl1_core.config.ConfigBase.paper_values`); the algorithm's and implementation's values are in
    :mod:`fl1_core.rl.algorithms`. The workbook's own: ``w_event``, ``w_agree``, ``judge_on``,
    ``judge_failure_policy``, several optimiser steps per rollout under ``corrected``, the SFT anchor
    (``sft_anchor``, :mod:`fl1_core.rl.sft_anchor`) (docs/PAPER.md#deviations)."""

    mode: str = "la-dapo"  # a registered algorithm: grpo, dapo, la-dapo (fl1_core.rl.algorithms)
    implementation: str = "corrected"  # a registered implementation: release, corrected

    # --- rollouts
    group_size: int = paper_setting(8, _HP, "responses per prompt (n)")
    prompts_per_step: int = paper_setting(64, _HP)
    max_new_tokens: int = paper_setting(2048, _HP)
    temperature: float = paper_setting(0.9, _HP)
    top_p: float = paper_setting(0.99, _HP)
    latent: dict[str, Any] = paper_setting({"loose_cap": 64}, _HP, "LatentConfig overrides for rollouts: latent cap")
    rollout_batch_size: int | None = None  # rows per generate call (None → a whole round at once)
    replay_batch_size: int | None = None  # rows per no-grad replay (old / ref); None → micro_batch_size
    # --- host-RAM caps (fl1_core.data.prompt_caps: why these defaults); None = no cap
    question_max_pixels: int | None = QUESTION_MAX_PIXELS  # pixels per question frame (release: near-native)
    max_prompt_tokens: int | None = MAX_PROMPT_TOKENS  # longer prompts are rejected by id (prompt_rejects.jsonl)
    prompt_cache_bytes: int = 2 * 1024**3  # processed prompts kept per process (LRU, bytes of their tensors)

    # --- dynamic sampling (the algorithm decides whether it runs)
    filter_low: float = paper_setting(0.1, "docs/PAPER.md#dynamic-sampling", "groups kept: filter_low < mean acc")
    filter_high: float = paper_setting(0.9, "docs/PAPER.md#dynamic-sampling", "groups kept: mean acc < filter_high")
    max_rounds: int = paper_setting(20, "docs/PAPER.md#dynamic-sampling")

    # --- accuracy reward
    judge_on: Literal["free-form", "all"] = "free-form"  # which rule failures go to the LLM judge
    judge_failure_policy: Literal["retry", "drop_group"] = "drop_group"
    judge_retry_rounds: int = 2  # extra judge_many rounds for failed items under "retry"
    repetition_threshold: float = paper_setting(0.5, "docs/PAPER.md#rewards", "repetition above it → acc = −1")

    # --- reward weights (λ_ctr, λ_div, τ: the implementation's, when the algorithm has latent rewards)
    w_acc: float = paper_setting(0.9, "docs/PAPER.md#rewards")
    w_fmt: float = paper_setting(0.1, "docs/PAPER.md#rewards")
    w_event: float = 0.0  # the workbook's event-consistency term (MCQ final thought names the answer); not the paper
    w_agree: float = 0.0  # the workbook's agreement term (MCQ final thought names the option of its own letter)

    # --- policy loss (clip ranges and aggregation: the algorithm's)
    dual_clip: float | None = paper_setting(3.0, "docs/PAPER.md#dapo-loss", "c of the dual clip; None = off")
    kl_beta: float = paper_setting(0.01, "docs/PAPER.md#kl")
    mini_batches: int = 1  # optimiser steps per epoch over a rollout (release: 1)
    epochs_per_rollout: int = 1  # passes over a rollout (release: 1)
    micro_batch_size: int | None = None  # rows per forward/backward (gradient accumulation); None → a mini-batch
    # a separate no-grad replay for log π_old also when a rollout gets a single optimiser step (then π_old = π_θ, so
    # log π_θ.detach() is used and one forward is saved); with more steps per rollout it always runs
    recompute_old_logprobs: bool = False
    # the workbook's SFT anchor (fl1_core.rl.sft_anchor; not the release): γ · (CE + λ·MSE) on a micro-batch of
    # ``sft_anchor_batch`` records of ``sft_anchor_data`` added to every optimiser step; 0 = off
    sft_anchor: float = 0.0
    sft_anchor_data: str | None = None
    sft_anchor_batch: int = 4
    # which anchor records: "uniform" = the seeded SFT order; "drift" = the groups (meta[sft_anchor_group_key]) whose
    # SFT loss on a fixed probe of sft_anchor_probe records each rose most since the init, probed every
    # sft_anchor_probe_every steps (fl1_core.rl.anchor_drift)
    sft_anchor_draw: AnchorDraw = "uniform"
    # which records of sft_anchor_data: "all", or "answer_before_chain_end" (those whose answer is an event the chain
    # passes before its last, fl1_core.rl.sft_anchor.answer_before_chain_end; on the world, interpolation)
    sft_anchor_records: AnchorRecords = "all"
    sft_anchor_group_key: str = "question_kind"
    sft_anchor_probe: int = 12
    sft_anchor_probe_every: int = 5

    # --- optimiser
    learning_rate: float = paper_setting(1e-6, _HP)
    weight_decay: float = paper_setting(0.01, _HP)
    max_grad_norm: float = paper_setting(1.0, _HP)
    freeze_vision: bool = paper_setting(False, _HP, "the release trains the vision tower")
    lr_scheduler: Literal["constant", "cosine"] = paper_setting("constant", _HP)
    warmup_steps: int = 0  # linear warm-up steps (with either scheduler)
    min_lr_ratio: float = 0.1  # cosine: the lr decays to min_lr_ratio · learning_rate at the last step
    # rollout budget: "fixed" = max_new_tokens; "data" = the token_budget_quantile of the reference SFT-format chains
    # of the RL records (fl1_core.rl.budget), so the chains SFT taught fit
    token_budget: Literal["fixed", "data"] = "fixed"
    token_budget_quantile: float = 0.99

    # --- memory (fitting the 8B actor)
    logprob_chunk: int = 1024  # positions per chunk of the LM head in replay (never a full fp32 [B, T, V])
    ref_dtype: Literal["auto", "model", "bf16"] = "auto"  # reference copy: bf16 on a bf16 GPU ("auto"), else as loaded

    # --- schedule: total steps = max_steps, else ceil(N · num_epochs / prompts_per_step)
    num_epochs: float = paper_setting(1.0, _HP, "passes over the RL data")
    save_every: int = 10
    log_rollouts: bool = True  # every response's record, answer span and rewards in rollouts.jsonl (rl.rollout_log)

    def __post_init__(self) -> None:
        super().__post_init__()
        algorithm(self.mode)  # an unregistered name fails here
        impl = self.implementation_settings
        if self.group_size < 2:
            raise ValueError(f"group_size must be >= 2 (group advantages need an unbiased std), got {self.group_size}")
        for name in ("prompts_per_step", "max_new_tokens", "max_rounds", "mini_batches", "epochs_per_rollout",
                     "save_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if impl.one_update_per_rollout and self.updates_per_rollout != 1:
            raise ValueError(f"implementation {impl.name!r} takes one optimiser step per rollout: mini_batches and "
                             f"epochs_per_rollout must be 1, got {self.mini_batches} and {self.epochs_per_rollout}")
        if self.sft_anchor < 0 or (self.sft_anchor > 0 and not self.sft_anchor_data) or self.sft_anchor_batch < 1:
            raise ValueError(f"sft_anchor must be >= 0, and > 0 needs sft_anchor_data (an SFT records file) and "
                             f"sft_anchor_batch >= 1; got {self.sft_anchor}, {self.sft_anchor_data!r}, "
                             f"{self.sft_anchor_batch}")
        if self.sft_anchor_records not in get_args(AnchorRecords):
            raise ValueError(f"sft_anchor_records must be one of {get_args(AnchorRecords)}, got "
                             f"{self.sft_anchor_records!r}")
        if self.sft_anchor_draw not in get_args(AnchorDraw) or self.sft_anchor_probe < 1 or \
                self.sft_anchor_probe_every < 1:
            raise ValueError(f"sft_anchor_draw must be one of {get_args(AnchorDraw)}, sft_anchor_probe and "
                             f"sft_anchor_probe_every >= 1; got {self.sft_anchor_draw!r}, {self.sft_anchor_probe}, "
                             f"{self.sft_anchor_probe_every}")
        if self.judge_failure_policy not in ("retry", "drop_group"):
            raise ValueError(f"judge_failure_policy must be 'retry' or 'drop_group', got {self.judge_failure_policy!r}")
        if self.lr_scheduler not in ("constant", "cosine") or self.warmup_steps < 0:
            raise ValueError(f"lr_scheduler must be 'constant' or 'cosine' and warmup_steps >= 0, got "
                             f"{self.lr_scheduler!r}, {self.warmup_steps}")
        if self.token_budget not in ("fixed", "data") or not 0 < self.token_budget_quantile <= 1:
            raise ValueError(f"token_budget must be 'fixed' or 'data' with 0 < token_budget_quantile <= 1, got "
                             f"{self.token_budget!r}, {self.token_budget_quantile}")

    # ------------------------------------------------------------------------------------------ named settings
    @property
    def algorithm(self) -> Algorithm:
        """The registered algorithm ``mode`` names."""
        return algorithm(self.mode)

    @property
    def implementation_settings(self) -> Implementation:
        """The registered implementation ``implementation`` names."""
        return implementation(self.implementation)

    @property
    def latent_reward_weights(self) -> tuple[float, float, float]:
        """(λ_ctr, λ_div, τ): the implementation's when the algorithm has latent rewards, else (0, 0, τ)."""
        impl = self.implementation_settings
        if self.algorithm.latent_rewards:
            return impl.lambda_ctr, impl.lambda_div, impl.tau
        return 0.0, 0.0, impl.tau

    @property
    def updates_per_rollout(self) -> int:
        """Optimiser steps per rollout: ``mini_batches · epochs_per_rollout``."""
        return self.mini_batches * self.epochs_per_rollout

    @property
    def old_logprobs_pass(self) -> bool:
        """Whether log π_old gets its own no-grad replay: more than one step per rollout, or asked for."""
        return self.recompute_old_logprobs or self.updates_per_rollout > 1

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

    def steps_for(self, num_records: int) -> int:
        """Optimiser-step budget (rollout steps) for ``num_records`` prompts: ``max_steps`` or
        ``ceil(num_records · num_epochs / prompts_per_step)`` (≥ 1)."""
        if self.max_steps is not None:
            return int(self.max_steps)
        return max(1, math.ceil(num_records * self.num_epochs / self.prompts_per_step))

    def result_dict(self) -> dict[str, Any]:
        """The settings that change results (compared on resume), with the values of the named algorithm and
        implementation (a re-registered name with other values is a different run)."""
        d = {k: v for k, v in self.to_dict().items() if k not in NON_RESULT_KEYS}
        d["algorithm_settings"] = dataclasses.asdict(self.algorithm)
        d["implementation_settings"] = dataclasses.asdict(self.implementation_settings)
        return d

    def flags(self) -> dict[str, Any]:
        """The algorithm and implementation switches, for the run manifest."""
        algo, impl = self.algorithm, self.implementation_settings
        lambda_ctr, lambda_div, tau = self.latent_reward_weights
        return {
            "rl_implementation": impl.name,
            "rl_mode": algo.name,
            "rl_replay_latents": impl.replay_latents,
            "rl_mask_forced_tokens": impl.mask_forced,
            "rl_mini_batches": self.mini_batches,
            "rl_epochs_per_rollout": self.epochs_per_rollout,
            "rl_dynamic_sampling": algo.dynamic_sampling,
            "rl_clip": [algo.eps_low, algo.eps_high, self.dual_clip],
            "rl_loss_agg": algo.loss_agg,
            "rl_lambda_ctr": lambda_ctr,
            "rl_tau": tau,
            "rl_lambda_div": lambda_div,
            "rl_judge_failure_policy": self.judge_failure_policy,
            "rl_old_logprobs_pass": self.old_logprobs_pass,
            "rl_sft_anchor": self.sft_anchor,
        }

    # ------------------------------------------------------------------------------------------ hardware presets
    @classmethod
    def gpu_release(cls, **overrides: Any) -> "RLConfig":
        """The release's sizes on GPUs (docs/PAPER.md#hyperparameters): n = 8, 64 prompts, ≤ 2048 tokens, cap 64, lr
        1e-6 constant, 1 epoch; 64 rows per decode call per process and activation checkpointing (what ``fl1 plan
        --stage rl`` sizes). The ``release`` implementation by default ("dapo_ctr" = ``la-dapo``); under
        ``corrected``, 4 mini-batches per rollout so clipping can act."""
        base: dict[str, Any] = dict(
            implementation="release", mode="la-dapo", micro_batch_size=8, rollout_batch_size=64, save_every=20,
            gradient_checkpointing=True,
        )
        base.update(overrides)
        if not implementation(base["implementation"]).one_update_per_rollout:
            base.setdefault("mini_batches", 4)
        return cls(**base)

    @classmethod
    def cpu_world(cls, **overrides: Any) -> "RLConfig":
        """The tiny model on the synthetic world, 2 CPU cores: n = 8, 4 prompts per step, the token budget from the
        data (the 99th percentile of the RL records' reference chains: the multi-span chains SFT taught fit), latent
        cap 9 (one 3x3 frame), lr 3e-5 with 3 warm-up steps and a cosine decay, KL β 0.05 (both keep the policy near
        its SFT init), 2 mini-batches per rollout under ``corrected`` (1 under ``release``), at most 3 rounds, 40
        steps.

        The learning rate was 1e-4 until 2026-12-05. Measured from one curated latent SFT checkpoint (world 0, seed
        0, LA-DAPO, 30 steps, the local judge; paired over 400 held-out event-kind items), the concluded event moved
        by −8.5 [−13.2, −3.8] points at 1e-4 and by −1.5 [−4.8, +1.8] at 3e-5; letters +1.0 [−1.8, +3.8] and +0.8
        [−1.0, +2.5].

        Deviation from the release (documented): the vision tower is frozen (the release trains it in RL; here it
        was shaped by the world base's cell loss, which RL does not have)."""
        base: dict[str, Any] = dict(
            implementation="corrected", mode="la-dapo", group_size=8, prompts_per_step=4, token_budget="data",
            max_new_tokens=256, latent={"loose_cap": 9}, learning_rate=3e-5, lr_scheduler="cosine", warmup_steps=3,
            weight_decay=0.01, max_grad_norm=1.0, kl_beta=0.05, max_rounds=3, max_steps=40, save_every=10,
            micro_batch_size=16, freeze_vision=True,
        )
        base.update(overrides)
        if not implementation(base["implementation"]).one_update_per_rollout:
            base.setdefault("mini_batches", 2)
        return cls(**base)
