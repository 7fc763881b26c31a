"""RL checkpoints (``out_dir/checkpoints/step-XXXXXXXX``, :mod:`fl1_core.checkpointing`): atomic save with model, optimiser, RNG and data cursor;
resume that refuses a changed result-affecting config or another initial model."""

from __future__ import annotations

import contextlib
import json
import logging
import random
from pathlib import Path

import numpy as np
import torch
import torch.distributed.checkpoint as dcp

from fl1_core.checkpointing import CHECKPOINT_DIR, STATE_FILE, checkpoint_path, latest_checkpoint, prune_checkpoints
from fl1_core.runs import atomic_directory, atomic_write_json, read_jsonl, write_jsonl

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.jsonl"
CKPT_DIR = CHECKPOINT_DIR  # the earlier name


SHARDED_DIR = "sharded"  # FSDP: model and optimiser shards of every process (torch.distributed.checkpoint)
SHARDED_FORMAT = "sharded/ (torch.distributed.checkpoint)"


def _sharded_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    """Model and optimiser state as this process's shards (``DTensor``s), keyed for ``dcp.save`` / ``dcp.load``."""
    from torch.distributed.checkpoint.state_dict import get_state_dict

    msd, osd = get_state_dict(model, optimizer)
    return {"model": msd, "optim": osd}


class Checkpointing:
    """Mixin of :class:`fl1_core.rl.trainer.RLTrainer`: where checkpoints live, saving and resuming."""

    # -------------------------------------------------------------------------------------------- checkpoints
    @property
    def ckpt_root(self) -> Path:
        return self.out_dir / CKPT_DIR

    def latest_checkpoint(self) -> Path | None:
        """The newest complete checkpoint folder, or None."""
        return latest_checkpoint(self.out_dir)

    def save_checkpoint(self) -> Path | None:
        """Write ``checkpoints/step-XXXXXXXX`` atomically and prune old ones. The main process owns the temporary
        folder, writes ``trainer_state.json`` last and renames the folder into place; under FSDP every process first
        writes its shards of model and optimiser into ``sharded/`` (``torch.distributed.checkpoint``)."""
        final = checkpoint_path(self.out_dir, self.step)
        with contextlib.ExitStack() as stack:
            tmp = stack.enter_context(atomic_directory(final)) if self.dist.main else None
            if self.dist.sharded:
                tmp = Path(self.dist.broadcast(str(tmp) if tmp is not None else None))
                dcp.save(_sharded_state(self.model, self.optimizer), checkpoint_id=str(tmp / SHARDED_DIR))
                self.dist.barrier()
            if self.dist.main:
                self._write_main_files(tmp)
        if self.dist.main:
            prune_checkpoints(self.out_dir, self.cfg.keep_checkpoints)
        self.dist.barrier()
        return final

    def _write_main_files(self, tmp: Path) -> None:
        """Model and optimiser (unsharded runs), RNG states and, last, the state file."""
        if not self.dist.sharded:
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
            "weights": SHARDED_FORMAT if self.dist.sharded else "model.pt",
        })

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
        if (state.get("weights", "model.pt") == SHARDED_FORMAT) != self.dist.sharded:
            raise ValueError(f"{ckpt}: weights saved as {state.get('weights', 'model.pt')!r}; this run "
                             f"{'is' if self.dist.sharded else 'is not'} sharded with FSDP")
        if self.dist.sharded:
            from torch.distributed.checkpoint.state_dict import set_state_dict

            sharded = _sharded_state(self.model, self.optimizer)
            dcp.load(sharded, checkpoint_id=str(ckpt / SHARDED_DIR))
            set_state_dict(self.model, self.optimizer, model_state_dict=sharded["model"],
                           optim_state_dict=sharded["optim"])
        else:
            sd = torch.load(ckpt / "model.pt", map_location="cpu", weights_only=True)
            self.model.load_state_dict(sd)
            self.optimizer.load_state_dict(torch.load(ckpt / "optimizer.pt", map_location=self.device,
                                                      weights_only=False))
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

