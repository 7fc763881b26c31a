"""Greedy decoding of the audit's test items, keeping what the probes and ablations need.

One pass over held-out MCQ records (RL prompt format, as :mod:`fl1_core.evaluation.heldout` scores them) records per item:
the response, its letter and correctness, the latents actually fed and their span counts; optionally

* ``replay_models``: the hidden states other models (e.g. an untrained one) produce at the same latent slots when
  the decoded sequence, latents included, is teacher-forced through them (:func:`fl1_core.decoding.replay`);
* ``reason_states``: the model's own hidden state right after each ``</reason>`` (where a latent model would open
  its next span): the text-only model's counterpart of a span.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..answers import concluded_letter, extract_answer_letter, rule_correct
from ..data.formats import load_rl_records, spread_limit
from ..data.records import RLRecord
from ..data.world.world_types import TEXT_KINDS
from ..data.examples import rl_prompt
from ..decoding import decode_batches, replay
from ..tokens import REASON_CLOSE
from .interventions import Factory


@dataclass
class AuditItem:
    """A held-out MCQ record with what the audit groups by."""

    record: RLRecord
    meta: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.meta.get("question_kind", "all"))

    @property
    def group(self) -> str:
        """``"text"`` (text-solvable kinds), ``"vision"`` (vision-dependent event kinds) or ``"frame"``
        (frame-needing kinds: the answer is read off the imagined frame)."""
        if self.meta.get("needs_frame"):
            return "frame"
        return "text" if self.kind in TEXT_KINDS else "vision"

    @property
    def changed(self) -> bool | None:
        """Frame-needing items: whether the answer differs from the last observed frame's (None otherwise)."""
        return bool(self.meta["changed"]) if self.meta.get("needs_frame") and "changed" in self.meta else None

    @property
    def hops(self) -> int | None:
        return self.meta.get("hops")


@dataclass
class DecodedItem:
    """One item's greedy response under one condition."""

    index: int
    text: str
    pred: str | None
    correct: bool
    latents: torch.Tensor  # [n, H] fed at latent slots (after any intervention)
    span_counts: list[int]
    replayed: dict[str, torch.Tensor] = field(default_factory=dict)  # model name -> [n, H] at the same slots
    reason_states: torch.Tensor | None = None  # [n_reasons, H]
    event_correct: bool = False  # the final thought names the right option (fl1_core.answers.concluded_option)


def load_audit_items(data_path: str | Path, limit: int | None = None) -> list[AuditItem]:
    """The multiple-choice records of an RL-format file with their ``meta`` (``limit`` of them spread over the file)."""
    path = Path(data_path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no held-out MCQ file (generate a world with `fl1 world`)")
    metas = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            metas[str(row.get("id"))] = row.get("meta") or {}
    records = [r for r in load_rl_records(path, on_error="skip").records if r.is_multiple_choice]
    if not records:
        raise ValueError(f"{path}: no multiple-choice records to audit")
    items = [AuditItem(r, metas.get(r.id, {})) for r in records]
    return spread_limit(items, limit)  # every group of kinds (the frame-needing items come last) keeps its share


def _reason_end_states(tokenizer, ids: list[int], hidden: torch.Tensor) -> torch.Tensor:
    """Hidden states [k, H] that predict the token after each ``</reason>`` of a response (``hidden[t]`` predicts
    token t, so the state after the token ending at index t is ``hidden[t + 1]``)."""
    pieces = [tokenizer.decode([i], skip_special_tokens=False) for i in ids]
    ends, text = [], ""
    for t, piece in enumerate(pieces):
        before = text.count(REASON_CLOSE)
        text += piece
        if text.count(REASON_CLOSE) > before and t + 1 < len(ids):
            ends.append(t + 1)
    if not ends:
        return hidden.new_zeros((0, hidden.shape[-1]))
    return hidden[torch.tensor(ends)]


@torch.no_grad()
def decode_items(
    model,
    processor,
    items: Sequence[AuditItem],
    *,
    intervention: Factory | None = None,
    replay_models: Mapping[str, Any] | None = None,
    reason_states: bool = False,
    max_new_tokens: int = 112,
    batch_size: int = 16,
    system_prompt: str = "interleaved",
    progress: bool = False,
    desc: str = "audit decode",
) -> list[DecodedItem]:
    """Greedy interleaved decoding of every item (see the module docstring); one :class:`DecodedItem` per item."""
    tok = processor.tokenizer
    out: list[DecodedItem] = []
    batches = decode_batches(model, processor, items, prompt_of=lambda item: rl_prompt(item.record),
                             batch_size=batch_size, system_prompt=system_prompt, max_new_tokens=max_new_tokens,
                             intervention_of=intervention, progress=progress, desc=desc)
    for batch in batches:
        gen, inputs = batch.generation, batch.inputs
        replays = {name: replay(other, inputs, gen).hidden_states.float().cpu()
                   for name, other in (replay_models or {}).items()}
        own = replay(model, inputs, gen).hidden_states.float().cpu() if reason_states else None
        for b, r in enumerate(batch.rows):
            text = gen.texts[b]
            n = int(gen.lengths[b])
            slots = gen.latent_mask[b, :n].cpu()
            record = items[r].record
            out.append(DecodedItem(
                index=r, text=text, pred=extract_answer_letter(text, mode="strict"),
                correct=bool(rule_correct(text, record)), latents=gen.latents[b].float().cpu(),
                span_counts=list(gen.span_counts[b]),
                replayed={name: h[b, :n][slots] for name, h in replays.items()},
                reason_states=(_reason_end_states(tok, gen.sequences[b, :n].tolist(), own[b, :n])
                               if own is not None else None),
                event_correct=concluded_letter(text, record) == record.answer))
    return out


def span_means(vectors: torch.Tensor, span_counts: Sequence[int]) -> list[torch.Tensor]:
    """The mean vector of each span ([H] each) of a response's latents [n, H] split by ``span_counts``."""
    means, offset = [], 0
    for c in span_counts:
        if c > 0 and offset + c <= vectors.shape[0]:
            means.append(vectors[offset : offset + c].mean(dim=0))
        offset += c
    return means


def span_flats(vectors: torch.Tensor, span_counts: Sequence[int], size: int) -> list[torch.Tensor | None]:
    """Each span's latents concatenated in slot order ([size · H]); ``None`` for a span of another length (its
    slots no longer line up with a frame's merged tokens). Keeps what the mean pools away: where in the 3×3 grid
    each token sits."""
    flats, offset = [], 0
    for c in span_counts:
        ok = c == size and offset + c <= vectors.shape[0]
        flats.append(vectors[offset : offset + c].reshape(-1) if ok else None)
        offset += c
    return flats
