"""The LA-DAPO trainer (docs/PAPER.md#la-dapo): rollouts → rewards → dynamic sampling → advantages → clipped policy update.

One *step* = one rollout batch of ``prompts_per_step`` groups × ``group_size`` responses, then
``epochs_per_rollout`` × ``mini_batches`` optimiser steps on it:

    A_i        = (R_i − mean_g) / (std_g + 1e-6)                           (group advantages, unbiased std)
    log π_old  = replay(π_θ before the update)     (no grad; latent replay iff the implementation's
                 ``replay_latents``; with one optimiser step per rollout π_old = π_θ, so log π_θ.detach() is
                 used unless ``recompute_old_logprobs`` — ρ ≡ 1 either way)
    log π_ref  = replay(frozen copy of the initial model; under LoRA the actor with its adapters off and its
                 fully trained heads swapped for their values at RL start: fl1_core.reference)
    ℓ_t        = DAPO clipped loss (the algorithm's ε_low, ε_high; dual clip c = 3) on tokens of the loss mask
    loss       = agg(ℓ) + β · agg(k3(log π_ref − log π_θ)),   β = 0.01
                 (+ γ · (CE + λ·MSE) on a micro-batch of SFT records with the SFT anchor, fl1_core.rl.sft_anchor)
    mask       = emitted tokens, minus forced ones (``<|latent|>``, budget-forced ``<|latent_end|>``,
                 forced initial ``<|latent_start|>``) iff the implementation's ``mask_forced``

``agg="token"`` divides by the token count N of the whole mini-batch (summed over micro-batches and processes), so
gradient accumulation over micro-batches and data-parallel gradient summation give the full-batch gradient;
``agg="seq"`` divides per-sequence means by the global sequence count likewise. AdamW, grad clip, and a step whose
gradient norm is not finite is skipped (counted in ``skipped_steps``).

Data-parallel: under ``accelerate launch`` with P processes each process rolls out ``prompts_per_step / P`` whole
groups (its own dynamic sampling, rounds kept in lock-step), token counts and gradients are summed with
``all_reduce`` and metrics are reduced. With one process nothing is reduced: the same code path as without
accelerate. Under an FSDP launch the actor and the reference are sharded, rollouts decode a gathered copy made once
per step, and every process makes the same number of forward passes (:mod:`fl1_core.rl.sharded`).

Prompts: question frames are capped at ``question_max_pixels``; records whose prompt is longer than
``max_prompt_tokens`` are left out before the stream is drawn and named in ``out_dir/prompt_rejects.jsonl``
(:func:`fl1_core.data.prompt_caps.filter_rl_prompts`); processed prompts are cached per process in at most
``prompt_cache_bytes`` (:class:`fl1_core.rl.prompt_cache.PromptCache`).

Checkpoints (``out_dir/checkpoints/step-XXXXXXXX``, written every ``save_every`` steps and at the end:
:mod:`fl1_core.rl.trainer_state`) hold the model and optimiser state, RNG states, the data cursor and the run's
identity. A resume loads the newest intact one, refuses a changed result-affecting config, truncates
``metrics.jsonl`` (and the judge's verdicts, ``judge_verdicts.jsonl``: every judged answer with its reference and
verdict, the rollout log ``rollouts.jsonl``, :mod:`fl1_core.rl.rollout_log`, and the SFT anchor's draw rejects) to
the checkpoint step and continues;
every random draw is a function of (seed, step, round, rank), so a killed and resumed CPU run logs the same metrics
as an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from fl1_core.adapters import has_lora, merge_lora
from fl1_core.checkpoints import model_fingerprint, save_model
from fl1_core.data.examples import rl_prompt
from fl1_core.data.prompt_caps import filter_rl_prompts
from fl1_core.data.prompt_inputs import PromptTensors, encode_prompt
from fl1_core.data.records import RLRecord, write_rejects
from fl1_core.distributed import ProcessGroup
from fl1_core.judge.config import JudgeConfig
from fl1_core.placement import autocast, enable_activation_checkpointing, upcast_trainable
from fl1_core.rl.config import RLConfig
from fl1_core.reference import LoraReference, frozen_copy
from fl1_core.rl.prompt_cache import PromptCache
from fl1_core.rl.rollout_log import ROLLOUTS_LOG, rollout_rows
from fl1_core.rl.rollout import (
    Response,
    RoundStats,
    generate_group_round,
    score_groups,
)
from fl1_core.rl.dynamic_sampling import SamplingResult, dynamic_sampling_rounds
from fl1_core.rl.step_metrics import SUM_KEYS, step_row
from fl1_core.rl.sharded import RolloutWeights, gathered_copy, sharded_reference
from fl1_core.sharding import skeleton
from fl1_core.rl.trainer_state import (
    ANCHOR_DRAW_REJECTS_LOG,
    ANCHOR_DRIFT_FILE,
    METRICS_FILE,
    VERDICTS_LOG,
    TrainerState,
    process_file,
)
from fl1_core.rl.update import PolicyUpdate, RLResult, _mix_seed
from fl1_core.metrics import Trackers
from fl1_core.runs import atomic_directory, append_jsonl, append_jsonl_rows, read_jsonl, write_jsonl, write_manifest

__all__ = ["RLTrainer", "train_rl", "run_rl"]

log = logging.getLogger(__name__)

PROMPT_REJECTS_FILE = "prompt_rejects.jsonl"  # prompts longer than RLConfig.max_prompt_tokens, by id
ANCHOR_REJECTS_FILE = "sft_anchor_rejects.jsonl"  # invalid records of RLConfig.sft_anchor_data


# ------------------------------------------------------------------------------------------------------ trainer
class RLTrainer(PolicyUpdate, TrainerState):
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
        self.cfg = config
        self.model = model
        self.processor = processor
        self.records, self.prompt_rejects = filter_rl_prompts(
            records, processor, system_prompt=self.cfg.system_prompt, max_pixels=self.cfg.question_max_pixels,
            max_tokens=self.cfg.max_prompt_tokens)
        if not self.records:
            raise ValueError(f"every one of the {len(records)} RL prompts is longer than max_prompt_tokens="
                             f"{self.cfg.max_prompt_tokens} (e.g. {self.prompt_rejects[0]})")
        self.out_dir = Path(out_dir)
        self.judge_config = judge_config
        self.callbacks = list(callbacks)
        self.free_form_without_judge = sum(not r.is_multiple_choice for r in self.records) if judge_config is None \
            else 0
        if self.free_form_without_judge:
            log.warning(
                "%d of %d RL records are free-form and no judge is configured: their answers are scored by the exact "
                "rule only (a correct paraphrase scores 0). Pass a judge (fl1 rl --judge env|local) to follow docs/PAPER.md#rewards.",
                self.free_form_without_judge, len(self.records))
        self.dist = ProcessGroup()
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
        self.latent_config = model.latent_config.overridden(self.cfg.latent)  # the rollouts' latent settings
        if self.cfg.token_budget == "data":
            from fl1_core.rl.budget import data_token_budget

            budget = data_token_budget(self.records, tok, self.latent_config.decode_budget,
                                       self.cfg.token_budget_quantile)
            log.info("rollout token budget from the data: %d (quantile %.2f of the reference chains)", budget,
                     self.cfg.token_budget_quantile)
            self.cfg = dataclasses.replace(self.cfg, max_new_tokens=budget)
        self.eos_id = int(tok.convert_tokens_to_ids("<|im_end|>"))
        if has_lora(model) and not self.cfg.lora:
            merge_lora(model)  # full fine-tuning of an adapter checkpoint: fold its adapters in first
        self.init_fingerprint = model_fingerprint(model)
        model.freeze_vision(self.cfg.freeze_vision)
        if self.cfg.lora and self.dist.sharded:
            raise ValueError("RL under FSDP trains the full model; train LoRA adapters under DDP "
                             "(`accelerate launch --multi_gpu --num_processes N`)")
        self.ref_model = None
        self.lora_reference: LoraReference | None = None
        if self.cfg.kl_beta != 0.0 and not self.cfg.lora:
            self.ref_model = (sharded_reference(model, self.cfg.ref_dtype) if self.dist.sharded
                              else frozen_copy(model, self.cfg.ref_dtype))
        if self.cfg.lora:
            from fl1_core.adapters import LoraSettings, apply_lora

            apply_lora(model, LoraSettings.from_dict(self.cfg.lora))
            if self.cfg.kl_beta != 0.0:  # adapters off + the heads as they are now: no second copy of the model
                self.lora_reference = LoraReference(model)
        upcast_trainable(model)  # fp32 master weights: lr 1e-6 updates are below bf16 resolution
        if self.cfg.gradient_checkpointing:
            enable_activation_checkpointing(model.base)
        # under FSDP: the rollout copy (gathered once per step) and the structure the final weights are gathered into
        self.rollout_weights = RolloutWeights(model) if self.dist.sharded else None
        self._final_structure = skeleton(model, device="meta") if self.dist.sharded else None
        self.actor = self.dist.wrap(model)
        self.params = [p for p in model.parameters() if p.requires_grad]  # after wrap: FSDP replaces parameters
        self.optimizer = torch.optim.AdamW(
            self.params, lr=self.cfg.learning_rate, betas=(self.cfg.adam_beta1, self.cfg.adam_beta2), eps=self.cfg.adam_epsilon,
            weight_decay=self.cfg.weight_decay,
        )
        self.sft_anchor = None
        if self.cfg.sft_anchor > 0:
            from fl1_core.rl.sft_anchor import SFTAnchor, load_anchor_records, select_anchor_records

            self.sft_anchor = SFTAnchor(
                select_anchor_records(load_anchor_records(
                    self.cfg.sft_anchor_data, self.out_dir / ANCHOR_REJECTS_FILE if self.dist.main else None),
                    self.cfg.sft_anchor_records),
                processor, model.latent_config, weight=self.cfg.sft_anchor, batch=self.cfg.sft_anchor_batch,
                seed=self.cfg.seed, system_prompt=self.cfg.system_prompt, rank=self.dist.rank,
                processes=self.dist.world,
                rejects_out=process_file(self.out_dir, ANCHOR_DRAW_REJECTS_LOG, self.dist.rank, self.dist.world),
                draw=self.cfg.sft_anchor_draw, group_key=self.cfg.sft_anchor_group_key,
                probe_size=self.cfg.sft_anchor_probe)
        self.total_steps = self.cfg.steps_for(len(self.records))
        self.step = 0
        self.cursor = 0
        self.skipped_steps = 0
        self.resumed_from: int | None = None
        self._perm_cache: dict[int, list[int]] = {}
        self._prompt_cache = PromptCache(self.cfg.prompt_cache_bytes)

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
        return self._prompt_cache.get(record.id, lambda: encode_prompt(
            self.processor, rl_prompt(record), self.cfg.system_prompt, self.cfg.question_max_pixels, record=record))

    # ------------------------------------------------------------------------------------------------ rollouts
    def collect(self, step: int) -> tuple[SamplingResult, RoundStats, int]:
        """Draw and score rounds for ``step`` (dynamic sampling with refill); returns (sampling, judge stats,
        generated tokens)."""
        cfg = self.cfg
        lambda_ctr, lambda_div, tau = cfg.latent_reward_weights
        per_round = self.local_prompts * self.dist.world
        start = self.cursor
        stats = RoundStats()
        gen_tokens = 0
        rollouts: list[dict[str, Any]] = []
        self.model.eval()
        # under FSDP the decode runs on a gathered copy of this step's weights (rl.sharded), else on the actor
        policy = self.rollout_weights.refresh(self.model) if self.rollout_weights is not None else self.model

        def draw(rnd: int) -> list[list[Response]]:
            nonlocal gen_tokens
            base = start + rnd * per_round + self.dist.rank * self.local_prompts
            prompts = [self._prompt(self._record_at(base + i)) for i in range(self.local_prompts)]
            with autocast(policy):
                groups = generate_group_round(
                    policy, prompts, group_size=cfg.group_size, first_group_id=rnd * per_round + self.dist.rank
                    * self.local_prompts, latent_config=self.latent_config, max_new_tokens=cfg.max_new_tokens,
                    temperature=cfg.temperature, top_p=cfg.top_p, seed=_mix_seed(cfg.seed, step, rnd),
                    pad_id=self.pad_id, batch_rows=cfg.rollout_batch_size, tokenizer=self.tokenizer,
                )
            gen_tokens += sum(r.length for g in groups for r in g)
            s = score_groups(
                groups, w_acc=cfg.w_acc, w_fmt=cfg.w_fmt, w_event=cfg.w_event, w_agree=cfg.w_agree,
                lambda_ctr=lambda_ctr, lambda_div=lambda_div, tau=tau, repetition_threshold=cfg.repetition_threshold,
                judge_config=self.judge_config, judge_on=cfg.judge_on, failure_policy=cfg.judge_failure_policy,
                retry_rounds=cfg.judge_retry_rounds, cache_dir=str(self.out_dir / "judge_cache"),
            )
            stats.add(s)
            if cfg.log_rollouts:
                rollouts.extend(rollout_rows(groups, step + 1, rnd))
            return groups

        sampling = dynamic_sampling_rounds(
            draw, target=self.local_prompts, enabled=cfg.algorithm.dynamic_sampling, max_rounds=cfg.max_rounds,
            low=cfg.filter_low, high=cfg.filter_high, should_stop=self.dist.all if self.dist.world > 1 else None,
        )
        rounds = int(self.dist.max(sampling.rounds))
        self.cursor = start + rounds * per_round
        if stats.judged:
            append_jsonl_rows(process_file(self.out_dir, VERDICTS_LOG, self.dist.rank, self.dist.world),
                              [{"step": step + 1, **row} for row in stats.judged])
        if rollouts:
            append_jsonl_rows(process_file(self.out_dir, ROLLOUTS_LOG, self.dist.rank, self.dist.world), rollouts)
        return sampling, stats, gen_tokens

    # ------------------------------------------------------------------------------------------------- a step
    def train_step(self, step: int) -> dict[str, Any]:
        """One rollout + update; returns the metrics row (already reduced across processes)."""
        t0 = time.perf_counter()
        lr = self.cfg.lr_at(step, self.total_steps)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        anchor = self.sft_anchor
        if anchor is not None and anchor.draw == "drift" and step % self.cfg.sft_anchor_probe_every == 0:
            self.probe_anchor(step)
        sampling, jstats, gen_tokens = self.collect(step)
        t1 = time.perf_counter()
        upd: dict[str, float] = {}
        if self.dist.all(len(sampling.groups) > 0):
            batch = self.prepare_batch(sampling.groups)
            upd = self.update(batch, step)
        else:
            log.warning("step %d: no trainable group (all judge-dropped); no update", step)
        t2 = time.perf_counter()
        row = step_row(step, sampling, jstats, upd, gen_tokens=gen_tokens, eos_id=self.eos_id,
                       max_new_tokens=self.cfg.max_new_tokens, skipped_steps=self.skipped_steps, lr=lr,
                       times=(t0, t1, t2))
        row = self.dist.reduce_metrics(row, SUM_KEYS)
        row["rollout/tokens_per_s"] = row["rollout/gen_tokens"] / row["time/step_s"] if row["time/step_s"] > 0 else 0.0
        row["step"] = step + 1
        return row

    def probe_anchor(self, step: int) -> None:
        """Score the drift draw's probe before step ``step`` (0-based) and set the anchor's draw weights; the main
        process appends one row per group to ``sft_anchor_drift.jsonl`` (step, group, ce, init_ce, weight)."""
        anchor = self.sft_anchor
        losses = anchor.probe_losses(self.actor if self.dist.sharded else self.model, self.model)
        weights = anchor.observe(losses)
        if self.dist.main:
            append_jsonl_rows(self.out_dir / ANCHOR_DRIFT_FILE, [
                {"step": step, "group": g, "ce": ce, "init_ce": anchor.init_losses[g], "weight": weights.get(g, 0.0)}
                for g, ce in losses.items()])

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
        if self.dist.main and self.prompt_rejects:
            write_rejects(self.prompt_rejects, self.out_dir / PROMPT_REJECTS_FILE)
        if self.step == 0 and not (self.out_dir / METRICS_FILE).exists():
            write_jsonl(self.out_dir / METRICS_FILE, [])
        trackers = Trackers(self.cfg.report_to, "rl", self.out_dir / "trackers", self.cfg.to_dict(), self.dist.main)
        bar = tqdm(total=self.total_steps, initial=self.step, desc=f"rl {self.cfg.mode}/{self.cfg.implementation}",
                   disable=not (self.cfg.progress_bar and self.dist.main))
        try:
            while self.step < self.total_steps:
                row = self.train_step(self.step)
                self.step += 1
                if self.dist.main:
                    append_jsonl(self.out_dir / METRICS_FILE, row)
                trackers.log(row, self.step)
                bar.update(1)
                bar.set_postfix(acc=f"{row['reward/acc_all']:.2f}", kept=f"{row['sampling/kept_group_frac']:.2f}",
                                kl=f"{row.get('policy/kl', 0.0):.3g}")
                for cb in self.callbacks:
                    cb(self, self.step, row)
                if self.step % self.cfg.save_every == 0 or self.step == self.total_steps:
                    self.save_checkpoint()
        finally:
            bar.close()
            trackers.close()
        final = self.out_dir / "final"
        trained = (gathered_copy(self.model, self._final_structure, self.dist.main) if self.dist.sharded
                   else self.model)
        if self.dist.main:
            with atomic_directory(final) as tmp:
                save_model(trained, self.processor, tmp, merge=self.cfg.lora_merge)
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
