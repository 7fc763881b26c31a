"""The audit of one run: probes, causal ablations and the pause-token comparison, as notebook 07 runs them.

:func:`run_audit` decodes the held-out MCQ items with the latent checkpoint (as is, and under each ablation), the
text-only checkpoint (for its reasoning states) and, when there is one, the pause-token checkpoint; fits the probes
when the data has world states; on frame-needing items, splits each decode's score into reading the frame and
following the reading (:mod:`fl1_core.audit.frame_reading`); writes ``<out>/audit.json`` (and returns the same
dict) and ``<out>/decodes.jsonl``: every decode's response per item (``decode``, ``id``, ``pred``, ``correct``,
``event_correct``, ``latents``, ``text``).
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path
from typing import Any

import torch

from ..config import CONFIG_KEY
from ..evaluation.heldout import HELDOUT_MAX_NEW_TOKENS
from ..intervals import paired_difference
from ..runs import atomic_write_json, portable_path, write_jsonl
from .feedback import fed_back_fidelity
from .ablations import CONDITIONS, accuracy, reasoning_frame_targets, run_ablations
from .decode import decode_items, load_audit_items, span_flats, span_means
from .frame_reading import reading_decomposition
from .probes import probe_table, span_features
from .world_states import has_world_states, read_clips, span_frames

logger = logging.getLogger(__name__)

SPLIT_ABLATIONS = ("oracle", "oracle_shuffled")  # the ablated decodes whose frame reading the audit splits


def require_latent_checkpoint(path: str | Path) -> Path:
    """``path`` if it is a Future-L1 checkpoint (its config carries the latent tokens), else a clear refusal."""
    path = Path(path)
    config = path / "config.json"
    if not config.exists():
        raise FileNotFoundError(f"{path}: no config.json; the audit needs a trained checkpoint folder")
    if CONFIG_KEY not in json.loads(config.read_text()):
        raise ValueError(f"{path} has no latent tokens (no '{CONFIG_KEY}' in its config.json): it is a plain Qwen3-VL "
                         "checkpoint, not a Future-L1 one; audit a latent SFT or RL checkpoint")
    return path


def untrained_copy(model, seed: int = 0):
    """The same architecture and tokenizer with freshly initialised weights (the probes' floor)."""
    from ..model import FutureL1Model

    torch.manual_seed(seed)
    base = type(model.base)._from_config(model.base.config)
    return FutureL1Model(base, model.latent_config).to(model.device).eval()


def _decoded_spans(items, decoded, attr: str = "latents", flat: int | None = None) -> dict[str, list]:
    """Per record, one vector per span: the mean, or with ``flat`` = tokens per span, the concatenation."""
    out = {}
    for it, d in zip(items, decoded):
        vectors = d.latents if attr == "latents" else d.replayed[attr]
        spans = span_flats(vectors, d.span_counts, flat) if flat else span_means(vectors, d.span_counts)
        out[it.record.id] = [None if m is None else m.numpy() for m in spans]
    return out


def run_audit(
    latent_checkpoint: str | Path,
    data_dir: str | Path,
    out_dir: str | Path,
    *,
    text_checkpoint: str | Path | None = None,
    pause_checkpoint: str | Path | None = None,
    heldout_file: str = "heldout_mcq.jsonl",
    limit: int | None = None,
    conditions: tuple[str, ...] = CONDITIONS,
    seed: int = 0,
    folds: int = 5,
    batch_size: int = 16,
    max_new_tokens: int = HELDOUT_MAX_NEW_TOKENS,
    progress: bool = False,
    frame_only: bool = False,
) -> dict[str, Any]:
    """Probes (when ``data_dir`` has world states), ablations and the pause comparison; see the module docstring.
    ``frame_only`` audits only the frame-needing items (``limit`` of them)."""
    from ..model import load_future_l1

    data_dir, out_dir = Path(data_dir), Path(out_dir)
    model, processor = load_future_l1(require_latent_checkpoint(latent_checkpoint))
    if model.pauses:
        raise ValueError(f"{latent_checkpoint} is a pause-token checkpoint; audit the latent SFT or RL checkpoint and "
                         "pass this one as pause_checkpoint")
    items = load_audit_items(data_dir / heldout_file, None if frame_only else limit)
    if frame_only:
        items = [it for it in items if it.group == "frame"][:limit] if limit else [it for it in items
                                                                                  if it.group == "frame"]
        if not items:
            raise ValueError(f"{data_dir / heldout_file} has no frame-needing items (meta.needs_frame); "
                             "regenerate the world with `fl1 world`")
    states = has_world_states(data_dir)
    clips = read_clips(data_dir) if states else None
    kw = dict(batch_size=batch_size, max_new_tokens=max_new_tokens, progress=progress)
    untrained = untrained_copy(model, seed) if states else None
    clean = decode_items(model, processor, items, replay_models={"untrained": untrained} if untrained else None,
                         desc="audit: as is", **kw)
    targets = reasoning_frame_targets(model, processor, items, clips) if states else None
    # paths as a manifest records them: "run:…" inside the run folder the audit sits in, else relative to the checkout
    result: dict[str, Any] = {"items": len(items), "checkpoint": portable_path(latent_checkpoint, out_dir.parent),
                              "data": portable_path(data_dir, out_dir.parent), "ablations": {}, "skipped": {}}
    if targets is not None:
        result["fed_back"] = fed_back_fidelity([d.latents for d in clean], [d.span_counts for d in clean], targets)
    decodes = {"latent SFT": clean}  # every decode by name: decodes.jsonl, and the frame-reading split of some
    if any(d.latents.shape[0] for d in clean):
        ablations = run_ablations(model, processor, items, clips=clips, conditions=conditions, seed=seed,
                                  clean=clean, frame_targets=targets, **kw)
        result["ablations"], result["skipped"] = ablations["conditions"], dict(ablations["skipped"])
        result["contrasts"] = ablations["contrasts"]
        decodes.update({f"latent SFT · {name}": rows for name, rows in ablations["decoded"].items() if name != "none"})
    else:
        result["skipped"]["ablations"] = (f"{latent_checkpoint} wrote no latent spans on these {len(items)} items: "
                                          "there is nothing to ablate, and its answers cannot depend on latents")
    text_decoded = None
    if text_checkpoint is not None:
        text_model, text_proc = load_future_l1(text_checkpoint)
        text_decoded = decode_items(text_model, text_proc, items, reason_states=states, desc="audit: text-only", **kw)
    if states:
        frames = {it.record.id: span_frames(it.record.id, it.meta, clips[it.meta["clip_id"]]) for it in items
                  if it.meta.get("clip_id") in clips}
        sources = {"latent SFT": span_features(frames, _decoded_spans(items, clean)),
                   "frame embedding": span_features(frames, {it.record.id: [t.mean(dim=0).numpy() for t in ts]
                                                             for it, ts in zip(items, targets)}),
                   "untrained": span_features(frames, _decoded_spans(items, clean, "untrained"))}
        if text_decoded is not None:
            sources["text-only SFT"] = span_features(frames, {
                it.record.id: [v.numpy() for v in d.reason_states] for it, d in zip(items, text_decoded)})
        result["probe_spans"] = {name: len(src) for name, src in sources.items()}
        for name in [n for n, src in sources.items() if not src]:
            result["skipped"][f"probe source {name}"] = "no span or reasoning step lined up with a reasoning frame"
            del sources[name]
        result["probes"] = probe_table(sources, frames, clips, folds=folds)
        size = Counter(int(t.shape[0]) for ts in targets for t in ts).most_common(1)[0][0]  # merged tokens/frame
        flat = {"latent SFT · flat": span_features(frames, _decoded_spans(items, clean, flat=size)),
                "frame embedding · flat": span_features(frames, {
                    it.record.id: [t.reshape(-1).numpy() if t.shape[0] == size else None for t in ts]
                    for it, ts in zip(items, targets)}),
                "untrained · flat": span_features(frames, _decoded_spans(items, clean, "untrained", flat=size))}
        if all(flat.values()):
            result["probes_flat"] = probe_table(flat, frames, clips, folds=folds, read_by="frame embedding · flat")
            result["probe_spans_flat"] = {name: len(src) for name, src in flat.items()}
        else:
            result["skipped"]["flat probes"] = f"no spans of exactly {size} latents to flatten"
    else:
        result["skipped"]["probes"] = f"{data_dir} has no world states (events.jsonl): nothing to probe against"
    result["pause_comparison"], compared = _pause_comparison(items, clean, text_decoded, pause_checkpoint, kw)
    decodes.update({name: rows for name, rows in compared.items() if name != "latent SFT"})
    if any(it.group == "frame" for it in items):
        result["frame_reading"] = {name: reading_decomposition([d.text for d in rows], [it.meta for it in items])
                                   for name, rows in decodes.items()
                                   if name.partition(" · ")[2] in ("", *SPLIT_ABLATIONS)}
    out_dir.mkdir(parents=True, exist_ok=True)
    write_jsonl(out_dir / "decodes.jsonl", [
        {"decode": name, "id": it.record.id, "pred": d.pred, "correct": d.correct, "event_correct": d.event_correct,
         "latents": int(d.latents.shape[0]), "text": d.text}
        for name, rows in decodes.items() for it, d in zip(items, rows)])
    atomic_write_json(out_dir / "audit.json", result)
    return result


def _pause_comparison(items, clean, text_decoded, pause_checkpoint, kw) -> tuple[dict[str, Any], dict[str, list]]:
    """Accuracy of latent / pause / text-only SFT on the same items, by group, with latent − other paired Δs; the
    ``"<group> (event)"`` entries score the concluded event instead of the letter. Also returns the decodes by name."""
    from ..model import load_future_l1

    runs = {"latent SFT": clean}
    if text_decoded is not None:
        runs["text-only SFT"] = text_decoded
    if pause_checkpoint is not None and (Path(pause_checkpoint) / "config.json").exists():
        pause_model, pause_proc = load_future_l1(pause_checkpoint)
        runs["pause SFT"] = decode_items(pause_model, pause_proc, items, desc="audit: pause", **kw)
    out: dict[str, Any] = {}
    for group in ("all", "text", "vision", "frame"):
        idx = [i for i, it in enumerate(items) if group == "all" or it.group == group]
        if not idx:
            continue
        out[group] = {name: accuracy([d[i].correct for i in idx]) for name, d in runs.items()}
        events = {name: accuracy([d[i].event_correct for i in idx]) for name, d in runs.items()}
        for name, d in runs.items():
            if name != "latent SFT":
                out[group][f"latent SFT − {name}"] = paired_difference([clean[i].correct for i in idx],
                                                                       [d[i].correct for i in idx])
                events[f"latent SFT − {name}"] = paired_difference([clean[i].event_correct for i in idx],
                                                                   [d[i].event_correct for i in idx])
        out[f"{group} (event)"] = events
    return out, runs
