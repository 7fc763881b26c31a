"""The LA-DAPO update (docs/PAPER.md#dapo-loss): old / reference log-probs by replay, the policy objective in micro-batches with
DDP-bucketed gradient sums, the optimiser step; and the results / batch types of the trainer."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fl1_core.decoding import replay
from fl1_core.losses import policy_objective
from fl1_core.placement import autocast, scalar
from fl1_core.rl.advantages import group_advantages
from fl1_core.rl.rollout import Response, collate_responses

log = logging.getLogger(__name__)


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


class PolicyUpdate:
    """Mixin of :class:`fl1_core.rl.trainer.RLTrainer`: everything from a rollout batch to an optimiser step."""

    # --------------------------------------------------------------------------------------------- log-probs
    def _replay_logprobs(self, model: Any, rows: Sequence[Response], batch: int) -> list[torch.Tensor]:
        """No-grad log-probs of ``rows`` under ``model`` (``None`` = the LoRA reference: the actor with its adapters
        off and its fully trained tensors as at RL start, :class:`fl1_core.reference.LoraReference`)."""
        out: list[torch.Tensor] = []
        reference = model is None
        model = self.model if reference else model
        context = self.lora_reference.active(model) if reference else contextlib.nullcontext()
        starts = list(range(0, len(rows), batch))
        with torch.no_grad(), context, autocast(model):
            for k in range(self.dist.passes(len(starts))):  # under FSDP, passes past this process's are padding
                part = rows[starts[k] : starts[k] + batch] if k < len(starts) else rows[:batch]
                inputs, gen = collate_responses(part, self.pad_id)
                rep = replay(model, inputs, gen, temperature=self.cfg.temperature,
                             replay_latents=self.cfg.implementation_settings.replay_latents, chunk_size=self.cfg.logprob_chunk)
                lp = rep.logprobs.float().cpu()
                if k < len(starts):
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
            if self.cfg.implementation_settings.mask_forced:
                m &= ~r.forced_mask
            masks.append(m)
        batch = self.cfg.replay_batch_size or self.cfg.micro_batch_size or max(1, len(rows))
        self.model.eval()
        old = self._replay_logprobs(self.model, rows, batch) if self.cfg.old_logprobs_pass else None
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
        algo = cfg.algorithm
        micro = cfg.micro_batch_size or max(1, len(indices))
        acc: dict[str, float] = {"loss": 0.0, "pg_loss": 0.0, "kl_loss": 0.0, "tokens": 0.0, "clipfrac_tok": 0.0,
                                 "clipfrac_high_tok": 0.0, "clipfrac_low_tok": 0.0, "clipfrac_dual_tok": 0.0,
                                 "kl_tok": 0.0, "approx_kl_old_tok": 0.0, "entropy_tok": 0.0, "ratio_max": 0.0}
        starts = list(range(0, len(indices), micro))
        ddp = self.actor is not self.model
        # under FSDP every process makes the same number of passes; a padding pass (weight 0) reruns row 0
        for k in range(self.dist.passes(len(starts)) if backward else len(starts)):
            pad = k >= len(starts)
            s = starts[k] if not pad else 0
            idx = list(indices[s : s + micro]) if not pad else [0]
            last = not pad and s == starts[-1]
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
                             replay_latents=cfg.implementation_settings.replay_latents, chunk_size=cfg.logprob_chunk,
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
                    logp, old, adv, mask, ref_logp=ref, kl_beta=float(cfg.kl_beta), eps_low=algo.eps_low,
                    eps_high=algo.eps_high, dual_clip=cfg.dual_clip, agg=algo.loss_agg, num_tokens=num_tokens,
                    num_seqs=num_seqs,
                )
                if pad:  # the gradient collectives run, adding zero
                    (loss * 0.0).backward()
                    continue
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
        norm = scalar(torch.nn.utils.clip_grad_norm_(self.params, self.cfg.max_grad_norm))
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
        per mini-batch. Returns token-weighted metric means over all mini-batches, under their metric names."""
        cfg = self.cfg
        if cfg.gradient_checkpointing:  # HF checkpoints only in training mode (Qwen3-VL has no dropout)
            self.model.train()
            self.model.base.model.visual.eval()
        n = len(batch.rows)
        tot: dict[str, float] = {}
        norms: list[float] = []
        opt_steps = 0
        first_pass: dict[str, float] | None = None
        anchor_losses: list[float] = []
        anchor_rejected = self.sft_anchor.rejected if self.sft_anchor is not None else 0
        for epoch in range(cfg.epochs_per_rollout):
            g = torch.Generator().manual_seed(_mix_seed(cfg.seed, step, 104729, epoch, self.dist.rank))
            order = torch.randperm(n, generator=g).tolist() if cfg.mini_batches > 1 else list(range(n))
            chunks = [c.tolist() for c in torch.tensor(order, dtype=torch.long).tensor_split(cfg.mini_batches)]
            for mb in chunks:
                local_tok = float(sum(int(batch.loss_masks[i].sum()) for i in mb))
                local_seq = float(sum(int(batch.loss_masks[i].any()) for i in mb))
                num_tokens = self.dist.sum(local_tok)
                num_seqs = self.dist.sum(local_seq)
                if (num_tokens if cfg.algorithm.loss_agg == "token" else num_seqs) <= 0:
                    continue
                if self.sft_anchor is not None:  # its gradient joins the policy's at the step's synced backward
                    anchor_losses.append(self.sft_anchor.backward(
                        self.actor, self.model, step * cfg.updates_per_rollout + len(norms),
                        no_sync=self.actor is not self.model, processes_summed=self.dist.world
                        if self.dist.sharded else 1))
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
            "loss/total": tot.get("loss", 0.0) / nmb,
            "loss/policy": tot.get("pg_loss", 0.0) / nmb,
            "loss/kl": tot.get("kl_loss", 0.0) / nmb,
            "loss/tokens": tokens / max(1, cfg.epochs_per_rollout),
            "policy/clipfrac": per_tok("clipfrac_tok"),
            "policy/clipfrac_high": per_tok("clipfrac_high_tok"),
            "policy/clipfrac_low": per_tok("clipfrac_low_tok"),
            "policy/clipfrac_dual": per_tok("clipfrac_dual_tok"),
            "policy/kl": per_tok("kl_tok"),
            "policy/approx_kl_old": per_tok("approx_kl_old_tok"),
            "policy/entropy": (first_pass["entropy_tok"] / first_pass["tokens"]) if first_pass and first_pass["tokens"]
            else 0.0,
            "policy/ratio_max": tot.get("ratio_max", 0.0),
            "optim/grad_norm": float(np.mean(norms)) if norms else 0.0,
            "optim/steps": float(opt_steps),
            # the anchor's loss, and its records left out when this step drew them
            **({"loss/sft_anchor": float(np.mean(anchor_losses)),
                "data/sft_anchor_rejected": float(self.sft_anchor.rejected - anchor_rejected)}
               if anchor_losses else {}),
        }

