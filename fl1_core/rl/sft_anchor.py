"""The SFT anchor of RL: a supervised term on SFT records added to every optimiser step (a workbook deviation; the
release trains RL on rewards alone, docs/PAPER.md#deviations).

With weight γ = ``RLConfig.sft_anchor`` > 0, each optimiser step of RL minimises

    loss = policy objective (+ β·KL)  +  γ · (CE + λ·MSE)(one micro-batch of SFT records)

where CE + λ·MSE is the latent SFT loss of :class:`~fl1_core.model.FutureL1Model` (gold future-frame embeddings at
the latent slots, the alignment MSE of the slots). It is the pretraining-mix term of RLHF with PPO (InstructGPT's
"PPO-ptx") applied to the SFT data: the policy keeps what SFT taught (reading the observed video, the chain's
wording) on the records RL does not reward, while the reward moves it on the ones it does.

The records are drawn in the seeded order of SFT (:mod:`fl1_core.data.order`, one micro-batch per step): optimiser
step u (counted over the whole run: rollout step × updates per rollout + the update's index) on process p takes the
indices that SFT step u would, so a resumed run draws what an uninterrupted one would. With ``draw="drift"`` the
draw goes to the groups of records whose SFT loss RL has raised (:mod:`fl1_core.rl.anchor_drift`). Under DDP / FSDP
every process makes one anchor pass per optimiser step, and the anchor's gradient is the mean over processes of
their batches' gradients, as in SFT.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, get_args

import torch

from fl1_core.data.collator import CollateError, SFTCollator
from fl1_core.data.order import micro_batch_indices
from fl1_core.data.examples import sft_example
from fl1_core.data.frames import VideoError
from fl1_core.data.records import SFTRecord, write_rejects
from fl1_core.placement import autocast, to_device
from fl1_core.rl.anchor_drift import drawable, drift_weights, group_indices, probe_indices, weighted_draw
from fl1_core.rl.config import AnchorDraw
from fl1_core.runs import append_jsonl_rows

__all__ = ["ANCHOR_RECORD_RULES", "SFTAnchor", "answer_before_chain_end", "load_anchor_records",
           "select_anchor_records"]

log = logging.getLogger(__name__)


def load_anchor_records(path: str | Path, rejects_out: str | Path | None = None) -> list[SFTRecord]:
    """The SFT records of the anchor (``.json`` list or ``.jsonl``; relative media paths resolve against the file's
    folder). Invalid records are left out and, with ``rejects_out``, written there (one JSON line each, as
    :func:`~fl1_core.data.records.write_rejects`); a file that yields no valid record is refused."""
    from fl1_core.data.formats import load_sft_records

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"sft_anchor_data: no such file {path} (the SFT records the init was trained on, "
                                "e.g. a run's curation/sft_curated.json)")
    loaded = load_sft_records(path, on_error="skip")
    if not loaded.records:
        raise ValueError(f"sft_anchor_data {path}: no valid SFT record ({len(loaded.rejects)} rejected)")
    if loaded.rejects and rejects_out is not None:
        write_rejects(loaded.rejects, rejects_out)
        log.warning("%d SFT anchor record(s) rejected; see %s", len(loaded.rejects), rejects_out)
    return list(loaded.records)


def answer_before_chain_end(record: SFTRecord) -> bool:
    """True when the record's answer is an event its chain passes before the chain's last event (the world's
    ``meta.answer_event_indices[-1] != meta.chain_event_indices[-1]``, both non-empty): a conclusion that points
    back to an earlier thought instead of restating the last one."""
    meta = record.meta or {}
    answer, chain = meta.get("answer_event_indices") or [], meta.get("chain_event_indices") or []
    return bool(answer and chain) and answer[-1] != chain[-1]


# one rule per name of RLConfig.sft_anchor_records (config.AnchorRecords), which checks the name
ANCHOR_RECORD_RULES = {"all": lambda record: True, "answer_before_chain_end": answer_before_chain_end}


def select_anchor_records(records: Sequence[SFTRecord], rule: str) -> list[SFTRecord]:
    """The anchor's records under ``RLConfig.sft_anchor_records``: ``"all"``, or ``"answer_before_chain_end"``
    (:func:`answer_before_chain_end`; on the world, the interpolation questions). A rule no record meets is refused."""
    if rule not in ANCHOR_RECORD_RULES:
        raise ValueError(f"sft_anchor_records must be one of {sorted(ANCHOR_RECORD_RULES)}, got {rule!r}")
    kept = [r for r in records if ANCHOR_RECORD_RULES[rule](r)]
    if not kept:
        raise ValueError(f"sft_anchor_records={rule!r}: none of the {len(records)} SFT anchor records meets it "
                         "(it reads meta.answer_event_indices and meta.chain_event_indices, which world records have)")
    return kept


class SFTAnchor:
    """The anchor's data and loss for one process (see the module docstring).

    Examples are built as latent SFT builds them, one at a time when drawn (nothing is decoded or held up front, so a
    50K-record file costs only its batches); a pause-token checkpoint feeds its learned embedding at the slots, as in
    its own SFT. A record whose frames cannot be decoded when drawn, or that cannot be collated, is left out of its
    batch, counted in ``rejected`` and, with ``rejects_out``, appended there with the optimiser step that drew it
    (``{"record_id", "field", "reason", "update"}``; a record is rejected again in each epoch that draws it). Nothing
    is kept in memory per reject, so a long run with a bad file does not grow.

    ``draw="drift"`` groups the records by ``meta[group_key]`` and sets apart a probe of up to ``probe_size`` records
    per group, never drawn; :meth:`observe` takes the probe's losses (:meth:`probe_losses`), the first as the
    init's, and sets the draw weights (:func:`~fl1_core.rl.anchor_drift.drift_weights`)."""

    def __init__(self, records: Sequence[SFTRecord], processor: Any, latent_config: Any, *, weight: float,
                 batch: int, seed: int, system_prompt: str, rank: int = 0, processes: int = 1,
                 rejects_out: str | Path | None = None, draw: str = "uniform", group_key: str = "question_kind",
                 probe_size: int = 12):
        if weight <= 0:
            raise ValueError(f"the SFT anchor's weight must be > 0, got {weight}")
        if batch < 1:
            raise ValueError(f"sft_anchor_batch must be >= 1, got {batch}")
        self.weight = float(weight)
        self.batch = int(batch)
        self.seed = int(seed)
        self.rank, self.processes = rank, processes
        self.collator = SFTCollator(processor, latent_config, system_prompt=system_prompt, mode="latent",
                                    on_error="skip")
        self.source = list(records)
        self.rejects_out = None if rejects_out is None else Path(rejects_out)
        self.rejected = 0  # records left out of their batch when drawn, over the run
        self.steps_per_epoch = len(self.source) // (self.batch * processes)
        if self.steps_per_epoch < 1:
            raise ValueError(f"{len(self.source)} SFT anchor records are fewer than one anchor batch "
                             f"({self.batch} × {processes} processes)")
        if draw not in get_args(AnchorDraw):
            raise ValueError(f"sft_anchor_draw must be one of {get_args(AnchorDraw)}, got {draw!r}")
        self.draw = draw
        self.groups: dict[str, list[int]] = {}  # drift: each probed group's records outside the probe
        self.probe: dict[str, list[int]] = {}
        if draw == "drift":
            groups = group_indices(self.source, group_key)
            self.probe = probe_indices(groups, probe_size, self.seed)
            self.groups = drawable(groups, self.probe)
            if not self.probe:
                raise ValueError(f"sft_anchor_draw='drift': no group of meta[{group_key!r}] has the 2 records a "
                                 f"probe needs ({len(self.source)} records)")
        self.init_losses: dict[str, float] | None = None  # CE_g(θ₀) of the probe
        self.weights: dict[str, float] = {}  # the draw's w_g; empty or all 0 → the uniform order

    def indices(self, update: int) -> list[int]:
        """Example indices of optimiser step ``update`` (0-based, over the whole run) on this process."""
        if self.draw == "drift":
            weights = self.weights if any(w > 0 for w in self.weights.values()) else \
                {g: float(len(ix)) for g, ix in self.groups.items()}  # no rise yet: all drawable records alike
            return weighted_draw(self.groups, weights, seed=self.seed, update=update, batch=self.batch,
                                 rank=self.rank)
        return micro_batch_indices(self.seed, len(self.source), update, self.steps_per_epoch, self.batch, 1,
                                   self.processes, self.rank)[0]

    def _collate(self, indices: Sequence[int]) -> tuple[dict[str, Any] | None, list[tuple[str, str]]]:
        """The latent SFT batch of ``source[indices]`` (without ``ids``; ``None`` when no record is left) and the
        ``(record_id, reason)`` of each record left out: frames that no longer decode, or examples the collator
        cannot collate."""
        rejects: list[tuple[str, str]] = []
        examples = []
        for i in indices:
            try:
                examples.append(sft_example(self.source[i], with_future=True))
            except VideoError as err:  # the file changed since it was validated on load
                rejects.append((self.source[i].id, str(err)))
        batch = None
        if examples:
            try:
                batch = self.collator(examples)
            except CollateError:  # every example failed; their reasons are in the collator's rejects
                batch = None
        rejects.extend(self.collator.rejects)  # the collator appends the examples it cannot collate
        self.collator.rejects.clear()
        if batch is not None:
            batch.pop("ids", None)
        return batch, rejects

    def probe_losses(self, actor: torch.nn.Module, model: Any) -> dict[str, float]:
        """CE_g: the mean token CE of each group's probe records (no gradient; ``actor`` runs the forward, so all
        processes of an FSDP run take part; every process scores the same records and gets the same values)."""
        losses: dict[str, float] = {}
        was_training = model.training
        model.eval()
        try:
            for group, idx in self.probe.items():
                ces = []
                for start in range(0, len(idx), self.batch):
                    batch, _ = self._collate(idx[start:start + self.batch])  # a failing record leaves the probe
                    if batch is None:
                        continue
                    with torch.no_grad(), autocast(model):
                        ces.append(float(actor(**to_device(batch, model.device)).ce_loss))
                if not ces:
                    raise RuntimeError(f"sft_anchor_draw='drift': no probe record of group {group!r} could be "
                                       "decoded and collated")
                losses[group] = sum(ces) / len(ces)
        finally:
            model.train(was_training)
        return losses

    def observe(self, losses: dict[str, float]) -> dict[str, float]:
        """Take a probe's losses: the first is the init's; later ones set the draw weights. Returns the weights."""
        if self.init_losses is None:
            self.init_losses = dict(losses)
        else:
            self.weights = drift_weights(self.init_losses, losses)
        return self.weights

    def state(self) -> dict[str, Any]:
        """What a checkpoint keeps of the drift draw (JSON)."""
        return {"init_losses": self.init_losses, "weights": self.weights}

    def load_state(self, state: dict[str, Any]) -> None:
        self.init_losses = state.get("init_losses")
        self.weights = dict(state.get("weights") or {})

    def backward(self, actor: torch.nn.Module, model: Any, update: int, *, no_sync: bool,
                 processes_summed: int = 1) -> float:
        """Backward of ``weight · (CE + λ·MSE) / processes_summed`` on the anchor batch of ``update`` through
        ``actor`` (the DDP wrapper, or the model itself, sharded in place under FSDP). ``no_sync`` holds back DDP's
        gradient average (the policy's last backward of the step runs it); under FSDP, whose gradients are summed
        over the P processes, ``processes_summed = P`` makes that sum the mean over processes as under DDP. Returns
        the unweighted anchor loss."""
        batch, rejects = self._collate(self.indices(update))
        self.rejected += len(rejects)
        if self.rejects_out is not None and rejects:
            append_jsonl_rows(self.rejects_out, [{"record_id": rid, "field": "sft_anchor", "reason": why,
                                                  "update": update} for rid, why in rejects])
        if batch is None:
            raise RuntimeError(f"every record of the SFT anchor batch of update {update} was rejected; see "
                               f"{self.rejects_out or 'the log'}")
        batch = to_device(batch, model.device)
        sync = actor.no_sync() if no_sync else contextlib.nullcontext()
        with sync, autocast(model):
            out = actor(**batch)
            loss = out.loss
            (self.weight / processes_summed * loss).backward()
        return float(loss.detach())
