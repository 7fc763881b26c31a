"""Causal ablations at inference: does the answer depend on the latents?

The latent model decodes the test items once as it is (``none``), then once per ablation with the fed-back latents
replaced (:mod:`fl1_core.audit.interventions`). Per condition: accuracy overall, by group of question kinds and by
hop, each with a Wilson 95 % interval, and the paired difference to ``none`` on the same items,

    Δ = acc(ablation) − acc(none),   95 % CI: Δ ± 1.96 · sd(d_i) / √n,   d_i = 1[correct_i^abl] − 1[correct_i^none]

If the latents carry nothing the answer uses, every Δ is near 0 (and the table says so). Each breakdown also holds
``event``: the same numbers for the concluded event (the final thought names the right option,
:func:`fl1_core.answers.concluded_option`), which shows a dependence even where the letter step is at chance.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..intervals import paired_difference, wilson_interval
from .decode import AuditItem, DecodedItem, decode_items
from .interventions import (
    ABLATIONS,
    bank_share,
    constant,
    derangement,
    from_bank,
    grouped_derangement,
    matched_noise,
    zeros,
)

CONDITIONS = ("none",) + ABLATIONS


def accuracy(flags: Sequence[bool]) -> dict[str, Any]:
    """``{"n", "accuracy", "ci95"}`` with the Wilson interval."""
    n = len(flags)
    k = int(sum(bool(f) for f in flags))
    lo, hi = wilson_interval(k, n) if n else (float("nan"), float("nan"))
    return {"n": n, "accuracy": k / n if n else float("nan"), "ci95": [lo, hi]}


def subsets(items: Sequence[AuditItem], hops: bool = False) -> dict[str, list[int]]:
    """Item indices per subset: ``all``, ``group=…`` (text / vision / frame), ``kind=…``, ``changed=…`` (frame-needing
    items) and, with ``hops``, ``hops=…``."""
    keys: dict[str, list[int]] = {"all": list(range(len(items)))}
    for i, it in enumerate(items):
        keys.setdefault(f"group={it.group}", []).append(i)
        keys.setdefault(f"kind={it.kind}", []).append(i)
        if it.changed is not None:
            keys.setdefault(f"changed={it.changed}", []).append(i)
        if hops and it.hops is not None:
            keys.setdefault(f"hops={it.hops}", []).append(i)
    return keys


def breakdown(items: Sequence[AuditItem], decoded: Sequence[DecodedItem], clean: Sequence[DecodedItem]
              ) -> dict[str, Any]:
    """Accuracy and Δ vs ``clean`` overall and per subset (:func:`subsets`, hops included)."""
    keys = subsets(items, hops=True)
    out = {}
    for key, idx in sorted(keys.items(), key=lambda kv: (kv[0] != "all", kv[0])):
        mine, base = [decoded[i].correct for i in idx], [clean[i].correct for i in idx]
        ev, ev_base = [decoded[i].event_correct for i in idx], [clean[i].event_correct for i in idx]
        out[key] = {**accuracy(mine), "delta_vs_none": paired_difference(mine, base),
                    "event": {**accuracy(ev), "delta_vs_none": paired_difference(ev, ev_base)}}
    return out


def reasoning_frame_targets(model, processor, items: Sequence[AuditItem], clips: dict[str, dict]
                            ) -> list[list[torch.Tensor]]:
    """Per item, the ground-truth latent targets [K_f, H] of each reasoning frame in span order (the latents a perfect
    imagination would feed: frozen vision tower + merger); ``[]`` for an item whose frames are unknown."""
    from ..data.collator import latent_pixel_inputs
    from ..data.frames import load_pool_frames
    from .world_states import span_frames

    out = []
    for it in items:
        clip = clips.get(it.meta.get("clip_id", ""))
        frames = span_frames(it.record.id, it.meta, clip) if clip is not None else []
        if not frames:
            out.append([])
            continue
        images = load_pool_frames(it.record.video, [f.pool_index for f in frames])
        pixels, _ = latent_pixel_inputs(processor, model.latent_config, images)
        with torch.no_grad():
            targets = model.latent_targets(pixels["pixel_values"].to(model.device, model.dtype),
                                           pixels["image_grid_thw"].to(model.device))
        out.append([t.float().cpu() for t in targets])
    return out


def present_frame_targets(model, processor, items: Sequence[AuditItem]) -> list[torch.Tensor]:
    """Per item, the latent targets [K, H] of its last question frame (the last pool index of ``record.image``, or
    the last of ``image_paths``): what a model that imagines no change would feed."""
    from PIL import Image

    from ..data.collator import latent_pixel_inputs
    from ..data.frames import load_pool_frames

    out = []
    for it in items:
        rec = it.record
        paths = getattr(rec, "image_paths", None)
        if paths:
            with Image.open(paths[-1]) as im:
                frame = [im.convert("RGB")]
        elif rec.image:
            frame = load_pool_frames(rec.video, [max(rec.image)])
        else:
            raise ValueError(f"{rec.id}: no question frame to copy (a video-only record); drop the 'present' ablation")
        pixels, _ = latent_pixel_inputs(processor, model.latent_config, frame)
        with torch.no_grad():
            target = model.latent_targets(pixels["pixel_values"].to(model.device, model.dtype),
                                          pixels["image_grid_thw"].to(model.device))[0]
        out.append(target.float().cpu())
    return out


def oracle_bank(frame_targets: Sequence[Sequence[torch.Tensor]], hidden_size: int) -> list[torch.Tensor]:
    """Per item, its reasoning frames' targets concatenated in span order [Σ K_f, H] (empty when unknown)."""
    return [torch.cat(list(ts)) if ts else torch.zeros((0, hidden_size)) for ts in frame_targets]


def run_ablations(
    model,
    processor,
    items: Sequence[AuditItem],
    *,
    clips: dict[str, dict] | None = None,
    conditions: Sequence[str] = CONDITIONS,
    seed: int = 0,
    clean: Sequence[DecodedItem] | None = None,
    frame_targets: Sequence[Sequence[torch.Tensor]] | None = None,
    **decode_kwargs: Any,
) -> dict[str, Any]:
    """Decode ``items`` under each condition; returns ``{"conditions": {name: breakdown + extras}, "skipped": {...},
    "decoded": {name: [DecodedItem]}}``. ``oracle`` needs ``clips`` (world states) and is skipped without them;
    ``clean`` (the unablated decode) and ``frame_targets`` (:func:`reasoning_frame_targets`) are reused if given."""
    unknown = sorted(set(conditions) - set(CONDITIONS))
    if unknown:
        raise ValueError(f"unknown ablation(s) {unknown}; known: {CONDITIONS}")
    if model.pauses:
        raise ValueError("a pause-token model feeds one constant at every slot; there are no latents to ablate")
    clean = list(clean) if clean is not None else decode_items(model, processor, items, desc="audit: as is",
                                                               **decode_kwargs)
    fed = [d.latents for d in clean]
    if not any(v.shape[0] for v in fed):
        raise ValueError("the model wrote no latent spans on these items: the ablations need a checkpoint that "
                         "reasons with latents (a latent SFT or RL checkpoint)")
    factories, banks, skipped = {}, {}, {}
    for name in conditions:
        if name == "zeros":
            factories[name] = zeros()
        elif name == "mean":
            factories[name] = constant(torch.cat([v for v in fed if v.shape[0]]).mean(dim=0))
        elif name == "noise":
            factories[name] = matched_noise(seed)
        elif name == "shuffle":
            perm = derangement(len(items), seed)
            banks[name] = [fed[int(j)] for j in perm]
            factories[name] = from_bank(banks[name])
        elif name in ("oracle", "oracle_shuffled"):
            if clips is None:
                skipped[name] = "the data has no world states (no events.jsonl): no ground-truth future frames"
                continue
            if frame_targets is None:
                frame_targets = reasoning_frame_targets(model, processor, items, clips)
            gold = oracle_bank(frame_targets, model.config.get_text_config().hidden_size)
            if name == "oracle":
                banks[name] = gold
            else:  # another clip's gold frames: same kind, same slot count, never the item's own
                perm = grouped_derangement([(it.kind, int(g.shape[0])) for it, g in zip(items, gold)], seed)
                banks[name] = [gold[int(j)] if j >= 0 else gold[i][:0] for i, j in enumerate(perm)]
            factories[name] = from_bank(banks[name])
        elif name == "present":  # the last question frame, once per span the decode writes (at most 8 spans)
            banks[name] = [t.repeat(8, 1) for t in present_frame_targets(model, processor, items)]
            factories[name] = from_bank(banks[name])
    decoded: dict[str, list[DecodedItem]] = {"none": clean}
    results: dict[str, Any] = {}
    for name in conditions:
        if name in skipped:
            continue
        if name != "none":
            decoded[name] = decode_items(model, processor, items, intervention=factories[name],
                                         desc=f"audit: {name}", **decode_kwargs)
        res = breakdown(items, decoded[name], clean)
        if name in banks:
            use = bank_share(banks[name], [d.latents for d in decoded[name]])
            res["bank_share"] = use.share
        res["format_valid"] = sum(d.pred is not None for d in decoded[name]) / len(items)
        res["mean_latents"] = float(np.mean([d.latents.shape[0] for d in decoded[name]]))
        results[name] = res
    contrasts = {}
    if "oracle" in decoded and "oracle_shuffled" in decoded:
        contrasts["oracle - oracle_shuffled"] = paired_contrast(items, decoded["oracle"], decoded["oracle_shuffled"])
    return {"conditions": results, "skipped": skipped, "decoded": decoded, "contrasts": contrasts}


def paired_contrast(items: Sequence[AuditItem], a: Sequence[DecodedItem], b: Sequence[DecodedItem]
                    ) -> dict[str, Any]:
    """``a − b`` on the same items, per subset (all, group, kind, changed): the concluded event (``event``, the
    primary score) and the letter (``letter``), each a :func:`paired_difference`."""
    keys = subsets(items)
    return {key: {"event": paired_difference([a[i].event_correct for i in idx], [b[i].event_correct for i in idx]),
                  "letter": paired_difference([a[i].correct for i in idx], [b[i].correct for i in idx])}
            for key, idx in sorted(keys.items())}


def ablation_rows(conditions: dict[str, Any],
                  keys: Sequence[str] = ("all", "group=text", "group=vision", "group=frame")) -> list[dict[str, Any]]:
    """Flat rows (condition, subset, accuracy [CI], Δ vs none [CI], n) of ``run_ablations(...)["conditions"]`` (the
    ``ablations`` of :func:`fl1_core.audit.run_audit`) for tables and figures."""
    rows = []
    for name, res in conditions.items():
        for key in keys:
            if key not in res:
                continue
            r = res[key]
            d = r["delta_vs_none"]
            row = {"condition": name, "subset": key, "n": r["n"], "accuracy": r["accuracy"],
                   "ci_low": r["ci95"][0], "ci_high": r["ci95"][1], "delta": d["delta"],
                   "delta_low": d["ci95"][0], "delta_high": d["ci95"][1]}
            if "event" in r:
                e, de = r["event"], r["event"]["delta_vs_none"]
                row |= {"event_accuracy": e["accuracy"], "event_ci_low": e["ci95"][0], "event_ci_high": e["ci95"][1],
                        "event_delta": de["delta"], "event_delta_low": de["ci95"][0], "event_delta_high": de["ci95"][1]}
            rows.append(row)
    return rows


def dependence_statement(conditions: dict[str, Any], subset: str = "all", metric: str = "letter") -> list[str]:
    """One sentence per ablation: its Δ vs the unablated model with the CI, and whether the CI excludes 0
    (``metric``: ``letter`` accuracy or the concluded ``event``)."""
    if metric not in ("letter", "event"):
        raise ValueError(f"unknown metric {metric!r}; expected 'letter' or 'event'")
    lines = []
    for name, res in conditions.items():
        if name == "none" or subset not in res or (metric == "event" and "event" not in res[subset]):
            continue
        d = (res[subset]["event"] if metric == "event" else res[subset])["delta_vs_none"]
        lo, hi = d["ci95"]
        verdict = ("the answers depend on the latents" if hi < 0 else
                   "the ablation helps: the model's own latents hurt" if lo > 0 else
                   "no measurable dependence (the interval contains 0)")
        lines.append(f"{name}: Δ = {100 * d['delta']:+.1f} points [{100 * lo:+.1f}, {100 * hi:+.1f}] "
                     f"(n = {d['n']}): {verdict}")
    return lines
