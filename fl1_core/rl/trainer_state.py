"""What an RL checkpoint holds, and how the trainer saves and restores it through :mod:`fl1_core.checkpoints`.

A checkpoint (``out_dir/checkpoints/step-XXXXXXXX``) holds the model and optimiser state (``model.pt``,
``optimizer.pt``; under FSDP every process's shards in ``sharded/``, ``torch.distributed.checkpoint``), the RNG
states (``rng.pt``), the data cursor, the count of skipped steps and the SFT anchor's drift draw (its init losses and
weights). A resume loads the newest intact one, refuses a changed result-affecting config, another initial model,
process count or sharding, and cuts ``metrics.jsonl``, the judge's verdict files, the rollout log, the SFT anchor's
draw rejects and its drift probes back to the checkpoint's step (:meth:`TrainerState.cut_logs`).
"""

from __future__ import annotations

import logging
import random
from pathlib import Path

import numpy as np
import torch
import torch.distributed.checkpoint as dcp

from fl1_core.checkpoints import resume_from, run_identity, save_checkpoint, training_state_bytes
from fl1_core.rl.rollout_log import ROLLOUTS_LOG
from fl1_core.runs import read_jsonl, write_jsonl

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.jsonl"
MODEL_STATE_FILE = "model.pt"  # the actor's full state dict (unsharded runs)
VERDICTS_LOG = "judge_verdicts"  # process_file stem of the judge's verdicts
ANCHOR_DRAW_REJECTS_LOG = "sft_anchor_draw_rejects"  # process_file stem: anchor records that failed when drawn
ANCHOR_DRIFT_FILE = "sft_anchor_drift.jsonl"  # the drift draw's probe losses and weights (rl.anchor_drift)
SHARDED_DIR = "sharded"  # FSDP: model and optimiser shards of every process (torch.distributed.checkpoint)


def process_file(out_dir: Path, stem: str, rank: int, world: int) -> Path:
    """A JSONL log that each process appends to on its own: ``<stem>.jsonl`` (``<stem>.rank<k>.jsonl`` per process
    when several run), e.g. the judge's verdicts (``judge_verdicts``, one row per judged response with its step)."""
    return Path(out_dir) / (f"{stem}.jsonl" if world == 1 else f"{stem}.rank{rank}.jsonl")


def _sharded_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    """Model and optimiser state as this process's shards (``DTensor``s), keyed for ``dcp.save`` / ``dcp.load``."""
    from torch.distributed.checkpoint.state_dict import get_state_dict

    msd, osd = get_state_dict(model, optimizer)
    return {"model": msd, "optim": osd}


def _rng_states() -> dict:
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "python": random.getstate(),
        "numpy": np.random.get_state(),
    }


def _set_rng_states(rng: dict) -> None:
    torch.set_rng_state(rng["torch"])
    if rng.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    random.setstate(rng["python"])
    np.random.set_state(rng["numpy"])


class TrainerState:
    """Mixin of :class:`fl1_core.rl.trainer.RLTrainer`: saving and resuming its checkpoints."""

    def run_identity(self) -> dict:
        """What a resume must match: the result-affecting config (and whether FSDP shards the weights), the initial
        model's fingerprint and the process count."""
        return run_identity("rl", {**self.cfg.result_dict(), "fsdp_sharded": self.dist.sharded},
                            model_fingerprint=self.init_fingerprint, world_size=self.dist.world)

    def save_checkpoint(self) -> Path:
        """Write ``checkpoints/step-XXXXXXXX`` (:func:`fl1_core.checkpoints.save_checkpoint`) and prune old ones."""
        tensors = {"rng.pt": _rng_states()}
        write = None
        if self.dist.sharded:
            def write(folder: Path) -> None:
                dcp.save(_sharded_state(self.model, self.optimizer), checkpoint_id=str(folder / SHARDED_DIR))
        elif self.dist.main:
            tensors[MODEL_STATE_FILE] = {k: v.detach().cpu() for k, v in self.model.state_dict().items()}
            tensors["optimizer.pt"] = self.optimizer.state_dict()
        progress = {"cursor": self.cursor, "skipped_steps": self.skipped_steps}
        if self.sft_anchor is not None and self.sft_anchor.draw == "drift":
            progress["sft_anchor_drift"] = self.sft_anchor.state()
        return save_checkpoint(self.out_dir, self.step, identity=self.run_identity(), progress=progress,
                               tensors=tensors, write=write, keep=self.cfg.keep_checkpoints, processes=self.dist,
                               size_estimate=training_state_bytes(self.model))

    def maybe_resume(self) -> int | None:
        """Resume from the newest intact checkpoint if there is one; returns its step (None when starting fresh)."""
        ckpt = resume_from(self.out_dir, self.run_identity(), self.dist)
        if ckpt is None:
            return None
        if self.dist.sharded:
            from torch.distributed.checkpoint.state_dict import set_state_dict

            sharded = _sharded_state(self.model, self.optimizer)
            dcp.load(sharded, checkpoint_id=str(ckpt.path / SHARDED_DIR))
            set_state_dict(self.model, self.optimizer, model_state_dict=sharded["model"],
                           optim_state_dict=sharded["optim"])
        else:
            self.model.load_state_dict(ckpt.load(MODEL_STATE_FILE))
            self.optimizer.load_state_dict(ckpt.load("optimizer.pt", map_location=self.device, weights_only=False))
        _set_rng_states(ckpt.load("rng.pt", weights_only=False))
        self.step = ckpt.step
        self.cursor = int(ckpt.progress["cursor"])
        self.skipped_steps = int(ckpt.progress["skipped_steps"])
        if self.sft_anchor is not None and "sft_anchor_drift" in ckpt.progress:
            self.sft_anchor.load_state(ckpt.progress["sft_anchor_drift"])
        self.cut_logs()
        self.resumed_from = self.step
        log.info("resumed RL run %s from step %d", self.out_dir, self.step)
        return self.step

    def cut_logs(self) -> None:
        """Drop the log rows written after the checkpoint of ``self.step``, which the resumed run writes again:
        metrics, judge verdicts and rollouts (1-based ``step`` > ``self.step``) and anchor draw rejects (0-based
        optimiser ``update`` ≥ ``self.step · updates_per_rollout``)."""
        def cut(path: Path, keep) -> None:
            if path.exists():
                write_jsonl(path, [r for r in read_jsonl(path) if keep(r)])

        if self.dist.main:
            cut(self.out_dir / METRICS_FILE, lambda r: int(r.get("step", 0)) <= self.step)
        for stem in (VERDICTS_LOG, ROLLOUTS_LOG):
            cut(process_file(self.out_dir, stem, self.dist.rank, self.dist.world), lambda r: int(r["step"]) <= self.step)
        cut(process_file(self.out_dir, ANCHOR_DRAW_REJECTS_LOG, self.dist.rank, self.dist.world),
            lambda r: int(r["update"]) < self.step * self.cfg.updates_per_rollout)
        if self.dist.main:  # the probe before step self.step runs again
            cut(self.out_dir / ANCHOR_DRIFT_FILE, lambda r: int(r["step"]) < self.step)
