"""The LA-DAPO trainer (SPEC §6): rollouts → rewards → dynamic sampling → advantages → clipped policy update.

One *step* = one rollout batch of ``prompts_per_step`` groups × ``group_size`` responses, then
``epochs_per_rollout`` × ``mini_batches`` optimiser steps on it:

    A_i        = (R_i − mean_g) / (std_g + 1e-6)                           (group advantages, unbiased std)
    log π_old  = replay(π_θ before the update)     (no grad; latent replay iff ``replay_latents``; with one
                 optimiser step per rollout π_old = π_θ, so log π_θ.detach() is used unless
                 ``recompute_old_logprobs`` — ρ ≡ 1 either way)
    log π_ref  = replay(frozen copy of the initial model)
    ℓ_t        = DAPO clipped loss (ε_low, ε_high, dual clip c = 3) on tokens of the loss mask
    loss       = agg(ℓ) + β · agg(k3(log π_ref − log π_θ)),   β = 0.01
    mask       = emitted tokens, minus forced ones (``<|latent|>``, budget-forced ``<|latent_end|>``,
                 forced initial ``<|latent_start|>``) iff ``mask_forced``

``agg="token"`` divides by the token count N of the whole mini-batch (summed over micro-batches and processes), so
gradient accumulation over micro-batches and data-parallel gradient summation give the full-batch gradient;
``agg="seq"`` divides per-sequence means by the global sequence count likewise. AdamW, grad clip, and a step whose
gradient norm is not finite is skipped (counted in ``skipped_steps``).

Data-parallel: under ``accelerate launch`` with P processes each process rolls out ``prompts_per_step / P`` whole
groups (its own dynamic sampling, rounds kept in lock-step), token counts and gradients are summed with
``all_reduce`` and metrics are reduced. With one process nothing is reduced: the same code path as without
accelerate.

Checkpoints (``out_dir/checkpoints/step_XXXXXX``, written atomically every ``checkpoint_every`` steps and at the end)
hold the model and optimiser state, RNG states, the data cursor and the resolved config. A resume loads the newest
one, refuses a changed result-affecting config, truncates ``metrics.jsonl`` to the checkpoint step and continues;
every random draw is a function of (seed, step, round, rank), so a killed and resumed CPU run logs the same metrics
as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import json
import logging
import math
import random
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fl1_core.data.formats import RLRecord
from fl1_core.distributed import ProcessGroup
from fl1_core.decoding import replay
from fl1_core.judge.client import JudgeConfig
from fl1_core.losses import policy_objective
from fl1_core.adapters import adapters_disabled, has_lora, merge_lora, save_trained
from fl1_core.placement import autocast, bf16_supported, scalar, upcast_trainable
from fl1_core.rl.advantages import group_advantages
from fl1_core.rl.config import RLConfig
from fl1_core.rl.rollout import (
    PromptTensors,
    Response,
    RoundStats,
    SamplingResult,
    collate_responses,
    dynamic_sampling_rounds,
    generate_group_round,
    prepare_prompt,
    score_groups,
)
from fl1_core.runs import atomic_directory, atomic_write_json, append_jsonl, read_jsonl, write_jsonl, write_manifest

__all__ = ["RLTrainer", "RLResult", "TrainBatch", "train_rl", "run_rl", "StopTraining", "TIMING_KEYS"]

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.jsonl"
CKPT_DIR = "checkpoints"
STATE_FILE = "trainer_state.json"
_SUM_KEYS = ("judge_calls", "judge_requests", "judge_failures", "judge_unresolved", "dropped_groups",
             "drawn_groups", "kept_groups", "train_groups", "train_responses", "tokens", "gen_tokens", "loss_tokens",
             "loss", "pg_loss", "kl_loss")  # losses are normalised by global counts: process parts add up
#: metrics fields that depend on wall-clock time (everything else is reproducible on CPU)
TIMING_KEYS = ("time_s", "tokens_per_s", "rollout_s", "update_s")


class StopTraining(Exception):
    """Raised by a callback to stop a run at once (used by tests to simulate a kill)."""


@dataclass
class RLResult:
    """What :func:`train_rl` returns: the run folder, steps done, all metric rows, the final model folder."""

    out_dir: Path
    steps: int
    metrics: list[dict[str, Any]]
    final_dir: Path | None
    resumed_from: int | None = None
    config: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainBatch:
    """A rollout batch ready for the update: responses, their advantages, old / reference log-probs."""

    rows: list[Response]
    advantages: torch.Tensor  # [N] per response
    old_logprobs: list[torch.Tensor] | None  # per response [L_i]; None → log π_θ.detach() (one step per rollout)
    ref_logprobs: list[torch.Tensor] | None
    loss_masks: list[torch.Tensor]  # per response [L_i] bool


# ------------------------------------------------------------------------------------------------------ helpers
def _mix_seed(*parts: int) -> int:
    """A 63-bit seed from integers (stable across runs and machines)."""
    h = hashlib.sha256(":".join(str(int(p)) for p in parts).encode()).digest()
    return int.from_bytes(h[:8], "little") & ((1 << 63) - 1)


def _fingerprint(model: torch.nn.Module) -> str:
    """A cheap fingerprint of the weights (sums of every parameter) to recognise the initial model on resume."""
    h = hashlib.sha256()
    with torch.no_grad():
        for name, p in sorted(model.state_dict().items()):
            h.update(name.encode())
            h.update(f"{float(p.double().sum()):.10e}".encode())
    return h.hexdigest()[:16]


_Dist = ProcessGroup  # the earlier private name


def _reference_copy(model: torch.nn.Module, ref_dtype: str) -> torch.nn.Module:
    """The frozen reference π_ref: one copy per process, in bf16 on a bf16 GPU (``"auto"``) or when asked."""
    ref = copy.deepcopy(model).eval()
    if ref_dtype == "bf16" or (ref_dtype == "auto" and bf16_supported(model.device)):
        ref.to(torch.bfloat16)
    for p in ref.parameters():
        p.requires_grad_(False)
    return ref


# ------------------------------------------------------------------------------------------------------ trainer
class RLTrainer:
    """LA-DAPO / DAPO / GRPO trainer for a :class:`~fl1_core.model.FutureL1Model` (see the module docstring).

    ``model`` must be the *initial* model (the SFT checkpoint) also when resuming: the frozen reference is copied
    from it before checkpoint weights are loaded. ``callbacks`` are called as ``cb(trainer, step, metrics_row)``
    after each step is logged (before its checkpoint) and may raise :class:`StopTraining`.
    """

    def __init__(
        self,
        model: Any,
        processor: Any,
        records: Sequence[RLRecord],
        config: RLConfig,
        out_dir: str | Path,
        judge_config: JudgeConfig | None = None,
        *,
        callbacks: Sequence[Callable[["RLTrainer", int, dict[str, Any]], None]] = (),
    ) -> None:
        if not records:
            raise ValueError("train_rl needs at least one RL record")
        self.cfg = config.resolved()
        self.model = model
        self.processor = processor
        self.records = list(records)
        self.out_dir = Path(out_dir)
        self.judge_config = judge_config
        self.callbacks = list(callbacks)
        self.free_form_without_judge = sum(not r.is_multiple_choice for r in self.records) if judge_config is None \
            else 0
        if self.free_form_without_judge:
            log.warning(
                "%d of %d RL records are free-form and no judge is configured: their answers are scored by the exact "
                "rule only (a correct paraphrase scores 0). Pass a judge (fl1 rl --judge env|local) to follow SPEC §6.",
                self.free_form_without_judge, len(self.records))
        self.dist = _Dist()
        if self.cfg.prompts_per_step % self.dist.world:
            raise ValueError(
                f"prompts_per_step={self.cfg.prompts_per_step} must be divisible by the {self.dist.world} processes"
            )
        self.local_prompts = self.cfg.prompts_per_step // self.dist.world
        if self.dist.device is not None:
            self.model.to(self.dist.device)
        self.device = model.device
        tok = getattr(processor, "tokenizer", processor)
        self.tokenizer = tok
        self.pad_id = int(model.base.generation_config.pad_token_id if model.base.generation_config.pad_token_id
                          is not None else tok.pad_token_id)
        lc = model.latent_config
        changes: dict[str, Any] = {}
        if self.cfg.latent_cap is not None and lc.budget_mode == "loose":
            changes["loose_cap"] = self.cfg.latent_cap
        if self.cfg.force_initial_latent is not None:
            changes["force_initial_latent"] = self.cfg.force_initial_latent
        self.latent_config = lc.replace(**changes)
        if has_lora(model) and not self.cfg.lora:
            merge_lora(model)  # full fine-tuning of an adapter checkpoint: fold its adapters in first
        self.init_fingerprint = _fingerprint(model)
        model.freeze_vision(self.cfg.freeze_vision)
        self.ref_model = None
        if self.cfg.kl_beta != 0.0 and not self.cfg.lora:
            self.ref_model = _reference_copy(model, self.cfg.ref_dtype)
        if self.cfg.lora:
            # the reference is the base with adapters disabled: no second copy of the weights
            from fl1_core.adapters import LoraSettings, apply_lora

            apply_lora(model, LoraSettings.from_dict(self.cfg.lora))
        upcast_trainable(model)  # fp32 master weights: lr 1e-6 updates are below bf16 resolution
        if self.cfg.gradient_checkpointing:
            model.base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.actor = self.dist.wrap(model)
        self.optimizer = torch.optim.AdamW(
            self.params, lr=self.cfg.lr, betas=tuple(self.cfg.adam_betas), eps=self.cfg.adam_eps,
            weight_decay=self.cfg.weight_decay,
        )
        self.total_steps = self.cfg.steps_for(len(self.records))
        self.step = 0
        self.cursor = 0
        self.skipped_steps = 0
        self.resumed_from: int | None = None
        self._perm_cache: dict[int, list[int]] = {}
        self._prompt_cache: dict[str, PromptTensors] = {}

    # --------------------------------------------------------------------------------------------- data stream
    def _record_at(self, pos: int) -> RLRecord:
        """The record at stream position ``pos``: epoch e = pos // N is a permutation seeded by (seed, e)."""
        n = len(self.records)
        epoch = pos // n
        perm = self._perm_cache.get(epoch)
        if perm is None:
            g = torch.Generator().manual_seed(_mix_seed(self.cfg.seed, 7919, epoch))
            perm = torch.randperm(n, generator=g).tolist()
            self._perm_cache = {epoch: perm}
        return self.records[perm[pos % n]]

    def _prompt(self, record: RLRecord) -> PromptTensors:
        cached = self._prompt_cache.get(record.id)
        if cached is None:
            cached = prepare_prompt(self.processor, record, self.cfg.system_prompt)
            if len(self._prompt_cache) > 4096:
                self._prompt_cache.clear()
            self._prompt_cache[record.id] = cached
        return cached

    # ------------------------------------------------------------------------------------------------ rollouts
    def collect(self, step: int) -> tuple[SamplingResult, RoundStats, int]:
        """Draw and score rounds for ``step`` (dynamic sampling with refill); returns (sampling, judge stats,
        generated tokens)."""
        cfg = self.cfg
        per_round = self.local_prompts * self.dist.world
        start = self.cursor
        stats = RoundStats()
        gen_tokens = 0
        self.model.eval()

        def draw(rnd: int) -> list[list[Response]]:
            nonlocal gen_tokens
            base = start + rnd * per_round + self.dist.rank * self.local_prompts
            prompts = [self._prompt(self._record_at(base + i)) for i in range(self.local_prompts)]
            with autocast(self.model):
                groups = generate_group_round(
                    self.model, prompts, group_size=cfg.group_size, first_group_id=rnd * per_round + self.dist.rank
                    * self.local_prompts, latent_config=self.latent_config, max_new_tokens=cfg.max_new_tokens,
                    temperature=cfg.temperature, top_p=cfg.top_p, seed=_mix_seed(cfg.seed, step, rnd),
                    pad_id=self.pad_id, batch_rows=cfg.rollout_batch_size, tokenizer=self.tokenizer,
                )
            gen_tokens += sum(r.length for g in groups for r in g)
            s = score_groups(
                groups, w_acc=cfg.w_acc, w_fmt=cfg.w_fmt, lambda_ctr=float(cfg.lambda_ctr),
                lambda_div=float(cfg.lambda_div), tau=float(cfg.tau), repetition_threshold=cfg.repetition_threshold,
                judge_config=self.judge_config, judge_on=cfg.judge_on, failure_policy=cfg.judge_failure_policy,
                retry_rounds=cfg.judge_retry_rounds, cache_dir=str(self.out_dir / "judge_cache"),
            )
            stats.add(s)
            return groups

        sampling = dynamic_sampling_rounds(
            draw, target=self.local_prompts, enabled=bool(cfg.dynamic_sampling), max_rounds=cfg.max_rounds,
            low=cfg.filter_low, high=cfg.filter_high, should_stop=self.dist.all if self.dist.world > 1 else None,
        )
        rounds = int(self.dist.max(sampling.rounds))
        self.cursor = start + rounds * per_round
        return sampling, stats, gen_tokens

    # --------------------------------------------------------------------------------------------- log-probs
    def _replay_logprobs(self, model: Any, rows: Sequence[Response], batch: int) -> list[torch.Tensor]:
        """No-grad log-probs of ``rows`` under ``model`` (``None`` = the reference: the actor with its LoRA
        adapters disabled)."""
        out: list[torch.Tensor] = []
        reference = model is None
        model = self.model if reference else model
        context = adapters_disabled(model) if reference else contextlib.nullcontext()
        with torch.no_grad(), context, autocast(model):
            for s in range(0, len(rows), batch):
                part = rows[s : s + batch]
                inputs, gen = collate_responses(part, self.pad_id)
                rep = replay(model, inputs, gen, temperature=self.cfg.temperature,
                             replay_latents=bool(self.cfg.replay_latents), chunk_size=self.cfg.logprob_chunk)
                lp = rep.logprobs.float().cpu()
                out.extend(lp[i, : r.length].clone() for i, r in enumerate(part))
        return out

    def prepare_batch(self, groups: Sequence[Sequence[Response]]) -> TrainBatch:
        """Advantages, loss masks, old and reference log-probs of the training groups."""
        rows = [r for g in groups for r in g]
        rewards = torch.tensor([r.reward for r in rows], dtype=torch.float64)
        gid = torch.tensor([r.group for r in rows], dtype=torch.long)
        adv = group_advantages(rewards, gid).to(torch.float32)
        masks = []
        for r in rows:
            m = torch.ones(r.length, dtype=torch.bool)
            if self.cfg.mask_forced:
                m &= ~r.forced_mask
            masks.append(m)
        batch = self.cfg.replay_batch_size or self.cfg.micro_batch_size or max(1, len(rows))
        self.model.eval()
        old = self._replay_logprobs(self.model, rows, batch) if self.cfg.recompute_old_logprobs else None
        ref = None
        if self.cfg.kl_beta != 0.0:  # computed before the update, like the old log-probs
            ref = self._replay_logprobs(self.ref_model, rows, batch)
        return TrainBatch(rows=rows, advantages=adv, old_logprobs=old, ref_logprobs=ref, loss_masks=masks)

    # ------------------------------------------------------------------------------------------------ update
    @staticmethod
    def _pad(seqs: Sequence[torch.Tensor], width: int, value: float = 0.0) -> torch.Tensor:
        out = torch.full((len(seqs), width), value, dtype=seqs[0].dtype)
        for i, s in enumerate(seqs):
            out[i, : s.shape[0]] = s
        return out

    def loss_and_backward(
        self,
        batch: TrainBatch,
        indices: Sequence[int],
        *,
        num_tokens: float,
        num_seqs: float,
        backward: bool = True,
    ) -> dict[str, float]:
        """Loss of rows ``indices`` normalised by the mini-batch's global ``num_tokens`` / ``num_seqs``, computed in
        micro-batches of ``micro_batch_size`` rows; gradients are accumulated when ``backward``.

        Returns sums over the micro-batches: ``loss``, ``pg_loss``, ``kl_loss`` and token-weighted sums
        (``*_tok``) of the per-token metrics, plus ``tokens``.
        """
        cfg = self.cfg
        micro = cfg.micro_batch_size or max(1, len(indices))
        acc: dict[str, float] = {"loss": 0.0, "pg_loss": 0.0, "kl_loss": 0.0, "tokens": 0.0, "clipfrac_tok": 0.0,
                                 "clipfrac_high_tok": 0.0, "clipfrac_low_tok": 0.0, "clipfrac_dual_tok": 0.0,
                                 "kl_tok": 0.0, "approx_kl_old_tok": 0.0, "entropy_tok": 0.0, "ratio_max": 0.0}
        starts = list(range(0, len(indices), micro))
        ddp = self.actor is not self.model
        for s in starts:
            idx = list(indices[s : s + micro])
            last = s == starts[-1]
            # DDP averages gradients over processes; the loss is normalised by the global token / sequence count,
            # so the sum is wanted: scale by the process count. Reduce once per mini-batch (no_sync before).
            sync = contextlib.nullcontext() if (not ddp or last or not backward) else self.actor.no_sync()
            rows = [batch.rows[i] for i in idx]
            inputs, gen = collate_responses(rows, self.pad_id)
            width = gen.sequences.shape[1]
            dev = self.device
            mask = self._pad([batch.loss_masks[i] for i in idx], width, False).to(dev)
            adv = batch.advantages[idx].to(dev)
            with torch.set_grad_enabled(backward), sync, autocast(self.model):
                rep = replay(self.actor if backward else self.model, inputs, gen, temperature=cfg.temperature,
                             replay_latents=bool(cfg.replay_latents), chunk_size=cfg.logprob_chunk,
                             with_entropy=True)
                logp = rep.logprobs.float()
                if batch.old_logprobs is None:
                    old = logp.detach()
                else:
                    old = self._pad([batch.old_logprobs[i] for i in idx], width).to(dev)
                ref = None
                if batch.ref_logprobs is not None:
                    ref = self._pad([batch.ref_logprobs[i] for i in idx], width).to(dev)
                loss, pg, kl, kl_tok, m = policy_objective(
                    logp, old, adv, mask, ref_logp=ref, kl_beta=float(cfg.kl_beta), eps_low=float(cfg.eps_low),
                    eps_high=float(cfg.eps_high), dual_clip=cfg.dual_clip, agg=cfg.loss_agg, num_tokens=num_tokens,
                    num_seqs=num_seqs,
                )
                acc["kl_loss"] += float(kl.detach())
                if backward:
                    (loss * self.dist.world if ddp else loss).backward()
            with torch.no_grad():
                ntok = float(mask.sum())
                fm = mask.float()
                acc["loss"] += float(loss.detach())
                acc["pg_loss"] += float(pg.detach())
                acc["tokens"] += ntok
                for k in ("clipfrac", "clipfrac_high", "clipfrac_low", "clipfrac_dual"):
                    acc[f"{k}_tok"] += float(m[k]) * ntok
                acc["approx_kl_old_tok"] += float(m["approx_kl"]) * ntok
                acc["kl_tok"] += float((kl_tok.detach() * fm).sum())
                acc["entropy_tok"] += float((rep.entropy * fm).sum())
                acc["ratio_max"] = max(acc["ratio_max"], float(m["ratio_max"]))
        return acc

    def _optimizer_step(self) -> tuple[float, bool]:
        """Clip, step unless non-finite (gradients are already summed over processes by the DDP wrapper).
        Returns (grad norm, stepped)."""
        norm = scalar(torch.nn.utils.clip_grad_norm_(self.params, self.cfg.grad_clip))
        finite = math.isfinite(norm)
        if finite:
            self.optimizer.step()
        else:
            self.skipped_steps += 1
            log.warning("non-finite gradient norm at step %d; optimiser step skipped", self.step)
        self.optimizer.zero_grad(set_to_none=True)
        return norm, finite

    def update(self, batch: TrainBatch, step: int) -> dict[str, float]:
        """``epochs_per_rollout`` passes over ``batch`` in ``mini_batches`` shuffled mini-batches, one optimiser step
        per mini-batch. Returns token-weighted metric means over all mini-batches."""
        cfg = self.cfg
        if cfg.gradient_checkpointing:  # HF checkpoints only in training mode (Qwen3-VL has no dropout)
            self.model.train()
            self.model.base.model.visual.eval()
        n = len(batch.rows)
        tot: dict[str, float] = {}
        norms: list[float] = []
        opt_steps = 0
        first_pass: dict[str, float] | None = None
        for epoch in range(cfg.epochs_per_rollout):
            g = torch.Generator().manual_seed(_mix_seed(cfg.seed, step, 104729, epoch, self.dist.rank))
            order = torch.randperm(n, generator=g).tolist() if cfg.mini_batches > 1 else list(range(n))
            chunks = [c.tolist() for c in torch.tensor(order, dtype=torch.long).tensor_split(cfg.mini_batches)]
            for mb in chunks:
                local_tok = float(sum(int(batch.loss_masks[i].sum()) for i in mb))
                local_seq = float(sum(int(batch.loss_masks[i].any()) for i in mb))
                num_tokens = self.dist.sum(local_tok)
                num_seqs = self.dist.sum(local_seq)
                if (num_tokens if cfg.loss_agg == "token" else num_seqs) <= 0:
                    continue
                part = self.loss_and_backward(batch, mb, num_tokens=num_tokens, num_seqs=num_seqs)
                norm, stepped = self._optimizer_step()
                norms.append(norm)
                opt_steps += int(stepped)
                if first_pass is None:
                    first_pass = part
                for k, v in part.items():
                    tot[k] = max(tot.get(k, 0.0), v) if k == "ratio_max" else tot.get(k, 0.0) + v
        tokens = tot.get("tokens", 0.0)
        nmb = max(1, len(norms))

        def per_tok(key: str) -> float:
            return tot.get(key, 0.0) / tokens if tokens else 0.0

        return {
            "loss": tot.get("loss", 0.0) / nmb,
            "pg_loss": tot.get("pg_loss", 0.0) / nmb,
            "kl_loss": tot.get("kl_loss", 0.0) / nmb,
            "clipfrac": per_tok("clipfrac_tok"),
            "clipfrac_high": per_tok("clipfrac_high_tok"),
            "clipfrac_low": per_tok("clipfrac_low_tok"),
            "clipfrac_dual": per_tok("clipfrac_dual_tok"),
            "kl": per_tok("kl_tok"),
            "approx_kl_old": per_tok("approx_kl_old_tok"),
            "entropy": (first_pass["entropy_tok"] / first_pass["tokens"]) if first_pass and first_pass["tokens"]
            else 0.0,
            "ratio_max": tot.get("ratio_max", 0.0),
            "grad_norm": float(np.mean(norms)) if norms else 0.0,
            "optimizer_steps": float(opt_steps),
            "loss_tokens": tokens / max(1, cfg.epochs_per_rollout),
        }

    # ------------------------------------------------------------------------------------------------- a step
    def train_step(self, step: int) -> dict[str, Any]:
        """One rollout + update; returns the metrics row (already reduced across processes)."""
        t0 = time.perf_counter()
        sampling, jstats, gen_tokens = self.collect(step)
        t1 = time.perf_counter()
        rows = [r for g in sampling.groups for r in g]
        drawn = [r for g in sampling.drawn for r in g]
        upd: dict[str, float] = {}
        if self.dist.all(len(sampling.groups) > 0):
            batch = self.prepare_batch(sampling.groups)
            upd = self.update(batch, step)
        else:
            log.warning("step %d: no trainable group (all judge-dropped); no update", step)
        t2 = time.perf_counter()

        def mean(vals: list[float]) -> float:
            return float(np.mean(vals)) if vals else 0.0

        row: dict[str, Any] = {
            "step": step + 1,
            "acc": mean([float(r.acc or 0.0) for r in rows]),
            "fmt": mean([r.fmt for r in rows]),
            "r_ctr": mean([r.r_ctr for r in rows]),
            "div_cos2": mean([r.div_cos2 for r in rows]),  # C̄² (the reward subtracts λ_div·C̄²)
            "overall": mean([r.reward for r in rows]),
            "acc_all": mean([float(r.acc or 0.0) for r in drawn]),
            "fmt_all": mean([r.fmt for r in drawn]),
            "overall_all": mean([r.reward for r in drawn]),
            "kept_group_frac": sampling.kept_fraction,
            "refill_rounds": sampling.rounds - 1,
            "fallback": float(sampling.fallback),
            "short_batch": float(sampling.short),
            "drawn_groups": sampling.drawn_groups,
            "kept_groups": sampling.kept_groups,
            "train_groups": len(sampling.groups),
            "train_responses": len(rows),
            "dropped_groups": sampling.dropped_groups,
            "response_len": mean([float(r.length) for r in drawn]),
            "latent_spans": mean([float(len(r.span_counts)) for r in drawn]),
            "latents_per_response": mean([float(r.latents.shape[0]) for r in drawn]),
            "gen_tokens": gen_tokens,
            "judge_calls": jstats.judge_calls,
            "judge_requests": jstats.judge_requests,
            "judge_failures": jstats.judge_failures,
            "judge_unresolved": jstats.judge_unresolved,
            **{k: v for k, v in upd.items()},
            "skipped_steps": self.skipped_steps,
            "lr": self.cfg.lr,
            "rollout_s": t1 - t0,
            "update_s": t2 - t1,
            "time_s": t2 - t0,
        }
        row = self.dist.reduce_metrics(row, _SUM_KEYS)
        row["tokens_per_s"] = row["gen_tokens"] / row["time_s"] if row["time_s"] > 0 else 0.0
        row["step"] = step + 1
        return row

    # -------------------------------------------------------------------------------------------- checkpoints
    @property
    def ckpt_root(self) -> Path:
        return self.out_dir / CKPT_DIR

    def latest_checkpoint(self) -> Path | None:
        """The newest complete checkpoint folder (``step_XXXXXX`` with a state file), or None."""
        if not self.ckpt_root.is_dir():
            return None
        done = sorted(p for p in self.ckpt_root.glob("step_*") if (p / STATE_FILE).is_file())
        return done[-1] if done else None

    def save_checkpoint(self) -> Path | None:
        """Write ``checkpoints/step_{step:06d}`` atomically (main process) and prune old ones."""
        final = self.ckpt_root / f"step_{self.step:06d}"
        if self.dist.main:
            with atomic_directory(final) as tmp:
                torch.save({k: v.detach().cpu() for k, v in self.model.state_dict().items()}, tmp / "model.pt")
                torch.save(self.optimizer.state_dict(), tmp / "optimizer.pt")
                torch.save(
                    {
                        "torch": torch.get_rng_state(),
                        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
                        "python": random.getstate(),
                        "numpy": np.random.get_state(),
                    },
                    tmp / "rng.pt",
                )
                atomic_write_json(tmp / STATE_FILE, {
                    "step": self.step,
                    "cursor": self.cursor,
                    "skipped_steps": self.skipped_steps,
                    "init_fingerprint": self.init_fingerprint,
                    "config": self.cfg.result_dict(),
                    "world_size": self.dist.world,
                })
            old = sorted(p for p in self.ckpt_root.glob("step_*") if p != final)
            for p in old[: max(0, len(old) - (self.cfg.keep_checkpoints - 1))]:
                shutil.rmtree(p, ignore_errors=True)
        self.dist.barrier()
        return final

    def maybe_resume(self) -> int | None:
        """Resume from the newest checkpoint if there is one; returns its step (None when starting fresh)."""
        ckpt = self.latest_checkpoint()
        if ckpt is None:
            return None
        state = json.loads((ckpt / STATE_FILE).read_text())
        want = self.cfg.result_dict()
        have = state.get("config", {})
        diff = sorted(k for k in set(want) | set(have) if want.get(k) != have.get(k))
        if diff:
            detail = ", ".join(f"{k}: {have.get(k)!r} → {want.get(k)!r}" for k in diff)
            raise ValueError(
                f"{ckpt}: refusing to resume with a changed result-affecting RL config ({detail}); "
                "use a new out_dir or restore the settings"
            )
        if state.get("init_fingerprint") != self.init_fingerprint:
            raise ValueError(
                f"{ckpt}: the model passed to train_rl is not the initial model this run started from "
                "(resume must be given the same init checkpoint; the frozen reference is copied from it)"
            )
        if state.get("world_size", 1) != self.dist.world:
            raise ValueError(f"{ckpt}: written with {state.get('world_size')} processes, resuming with {self.dist.world}")
        sd = torch.load(ckpt / "model.pt", map_location="cpu", weights_only=True)
        self.model.load_state_dict(sd)
        self.optimizer.load_state_dict(torch.load(ckpt / "optimizer.pt", map_location=self.device, weights_only=False))
        rng = torch.load(ckpt / "rng.pt", weights_only=False)
        torch.set_rng_state(rng["torch"])
        if rng.get("cuda") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        random.setstate(rng["python"])
        np.random.set_state(rng["numpy"])
        self.step = int(state["step"])
        self.cursor = int(state["cursor"])
        self.skipped_steps = int(state.get("skipped_steps", 0))
        if self.dist.main:
            rows = [r for r in read_jsonl(self.out_dir / METRICS_FILE) if int(r.get("step", 0)) <= self.step]
            write_jsonl(self.out_dir / METRICS_FILE, rows)
        self.resumed_from = self.step
        log.info("resumed RL run %s from step %d", self.out_dir, self.step)
        return self.step

    # ---------------------------------------------------------------------------------------------------- loop
    def train(self) -> RLResult:
        """Run (or resume) until ``total_steps``; returns the :class:`RLResult`."""
        from tqdm.auto import tqdm

        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.maybe_resume()
        if self.dist.main:
            write_manifest(
                self.out_dir,
                parameters={"rl": self.cfg.to_dict(), "num_records": len(self.records),
                            "total_steps": self.total_steps, "world_size": self.dist.world,
                            "judge": None if self.judge_config is None else self.judge_config.to_dict(),
                            "free_form_rule_only": self.free_form_without_judge,
                            "latent_config_rollout": self.latent_config.to_dict()},
                flags=self.cfg.flags(),
                extra={"stage": "rl"},
            )
        if self.step == 0 and not (self.out_dir / METRICS_FILE).exists():
            write_jsonl(self.out_dir / METRICS_FILE, [])
        bar = tqdm(total=self.total_steps, initial=self.step, desc=f"rl {self.cfg.mode}/{self.cfg.preset}",
                   disable=not (self.cfg.progress and self.dist.main))
        try:
            while self.step < self.total_steps:
                row = self.train_step(self.step)
                self.step += 1
                if self.dist.main:
                    append_jsonl(self.out_dir / METRICS_FILE, row)
                bar.update(1)
                bar.set_postfix(acc=f"{row['acc_all']:.2f}", kept=f"{row['kept_group_frac']:.2f}",
                                kl=f"{row.get('kl', 0.0):.3g}")
                for cb in self.callbacks:
                    cb(self, self.step, row)
                if self.step % self.cfg.checkpoint_every == 0 or self.step == self.total_steps:
                    self.save_checkpoint()
        finally:
            bar.close()
        final = self.out_dir / "final"
        if self.dist.main:
            with atomic_directory(final) as tmp:
                save_trained(self.model, self.processor, tmp, merge=self.cfg.lora_merge)
        self.dist.barrier()
        metrics = read_jsonl(self.out_dir / METRICS_FILE)
        return RLResult(out_dir=self.out_dir, steps=self.step, metrics=metrics, final_dir=final,
                        resumed_from=self.resumed_from, config=self.cfg.to_dict())


# ------------------------------------------------------------------------------------------------ entry points
def train_rl(
    model: Any,
    processor: Any,
    records: Sequence[RLRecord],
    config: RLConfig,
    out_dir: str | Path,
    judge_config: JudgeConfig | None = None,
) -> RLResult:
    """Train ``model`` (the initial / SFT model) with GRPO, DAPO or LA-DAPO on ``records``; resumes ``out_dir``
    if it holds a checkpoint. See :class:`RLTrainer`."""
    return RLTrainer(model, processor, records, config, out_dir, judge_config).train()


def run_rl(
    init_checkpoint_dir: str | Path,
    data_path: str | Path,
    out_dir: str | Path,
    config: RLConfig,
    judge_config: JudgeConfig | None = None,
    *,
    device: str | torch.device | None = "auto",
    dtype: torch.dtype | str | None = None,
) -> RLResult:
    """Load the init checkpoint and the RL records (``rl.jsonl``/``.json``; bad rows are rejected and reported in
    ``out_dir/rejects.jsonl``) and :func:`train_rl`."""
    from fl1_core.data.formats import load_rl_records
    from fl1_core.model import load_future_l1

    model, processor = load_future_l1(init_checkpoint_dir, device=device, dtype=dtype)
    loaded = load_rl_records(data_path, on_error="skip")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if loaded.rejects:
        write_jsonl(out / "rejects.jsonl", [dataclasses.asdict(r) for r in loaded.rejects])
        log.warning("%d RL record(s) rejected; see %s", len(loaded.rejects), out / "rejects.jsonl")
    write_manifest(out, parameters={"init_checkpoint": str(init_checkpoint_dir), "data_path": str(data_path)},
                   data_files=[data_path])
    return train_rl(model, processor, loaded.records, config, out, judge_config)
