"""How far the world's bodies move between the last two frames a question shows, against what a vision token spans.

Every event-kind chain starts by saying which bodies move at the last observed frame
(:func:`fl1_core.data.world.description.observation`). The pictures of a held-out question are the observed pool
frames, so the evidence for "moving" is the displacement of a body between the last two of them:

    d_i = ‖track_i[pool[n−1]] − track_i[pool[n−2]]‖₂   (pixels; n = the number of observed pool frames)

set against the width in pixels of one merged vision token, ``patch_size · merge_size`` of the processor (32 px for
the tiny Qwen3-VL: a 96 px frame is 3 × 3 tokens). A mover whose ``d_i`` is a fraction of a token moves inside the
token it started in. Two references bound a reader of the frames: one that says every body moves, and one that reads
exact positions (a body moves when ``d_i`` > ``MOVED_PX``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from ..data.world.description import moving_bodies

MOVED_PX = 0.5  # displacement above which the exact-position reader says a body moves
DISPLACEMENT_BINS_PX = (0.0, MOVED_PX, 4.0, 8.0, 16.0, float("inf"))  # per-body calls grouped by displacement


def body_displacements(clips: Mapping[str, Mapping[str, Any]],
                       references: Mapping[str, str]) -> Iterator[tuple[str, dict[str, float], set[str]]]:
    """Per clip of ``references`` (clip id → the world's first thought of one of its questions, which says which
    bodies move) whose reference names the movers: ``(clip id, {body: d_i}, movers)``; ``clips`` are ``events.jsonl``
    rows (:func:`fl1_core.audit.world_states.read_clips`)."""
    for clip_id, reference in references.items():
        movers = moving_bodies(reference)
        if movers is None:
            continue
        clip = clips[clip_id]
        shown = [clip["pool"][k - 1] for k in clip["observed_images"]]
        if len(shown) < 2:
            raise ValueError(f"clip {clip_id}: {len(shown)} observed frame(s); a displacement needs two")
        a, b = shown[-2], shown[-1]
        yield clip_id, {o["name"]: float(np.hypot(*np.subtract(o["track"][b], o["track"][a])))
                        for o in clip["objects"]}, movers


def last_observed_displacements(clips: Mapping[str, Mapping[str, Any]],
                                references: Mapping[str, str]) -> dict[str, list[float]]:
    """``{"moving": [d_i …], "resting": [d_i …]}`` over the bodies of :func:`body_displacements`."""
    out: dict[str, list[float]] = {"moving": [], "resting": []}
    for _, shifts, movers in body_displacements(clips, references):
        for name, d in shifts.items():
            out["moving" if name in movers else "resting"].append(d)
    return out


def reader_baselines(clips: Mapping[str, Mapping[str, Any]], references: Mapping[str, str]) -> dict[str, Any]:
    """Per clip of :func:`body_displacements`: does "every body moves" match the world's movers, and does "the bodies
    displaced by more than ``MOVED_PX`` between the last two observed frames"? Each as a share of the clips read."""
    every, exact = [], []
    for _, shifts, movers in body_displacements(clips, references):
        every.append(movers == set(shifts))
        exact.append(movers == {name for name, d in shifts.items() if d > MOVED_PX})
    n = len(every)
    return {"clips": n, "every_body_moves": float(np.mean(every)) if n else float("nan"),
            "exact_displacement": float(np.mean(exact)) if n else float("nan")}


def calls_by_displacement(bodies: Sequence[tuple[float, bool, bool]],
                          edges: Sequence[float] = DISPLACEMENT_BINS_PX) -> list[dict[str, Any]]:
    """Per-body calls ``(d, truly moving, said moving)`` grouped by ``edges[k] ≤ d < edges[k+1]`` (px): per group the
    bodies, the share truly moving, the share the model says moves and the share it calls right. A reader of the frames
    says "moving" more often as ``d`` grows; one that does not says it at the same rate whatever ``d``."""
    d = np.asarray([b[0] for b in bodies], dtype=np.float64)
    truly = np.asarray([b[1] for b in bodies], dtype=bool)
    said = np.asarray([b[2] for b in bodies], dtype=bool)
    out = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = (d >= lo) & (d < hi)
        n = int(sel.sum())
        out.append({"px": [lo, hi], "bodies": n,
                    "truly_moving": float(truly[sel].mean()) if n else float("nan"),
                    "said_moving": float(said[sel].mean()) if n else float("nan"),
                    "called_right": float((truly[sel] == said[sel]).mean()) if n else float("nan")})
    return out


def displacement_summary(displacements: Mapping[str, Sequence[float]], token_px: float) -> dict[str, Any]:
    """Quartiles of each group's displacement in pixels and in tokens (``d / token_px``), and the share of movers that
    move less than half a token."""
    if token_px <= 0:
        raise ValueError(f"token_px must be > 0, got {token_px}")
    out: dict[str, Any] = {"token_px": token_px}
    for group, ds in displacements.items():
        d = np.asarray(ds, dtype=np.float64)
        q = np.percentile(d, [25, 50, 75]).tolist() if d.size else [float("nan")] * 3
        out[group] = {"n": int(d.size), "px_quartiles": q, "token_quartiles": [x / token_px for x in q]}
    moving = np.asarray(displacements.get("moving", []), dtype=np.float64)
    out["movers_under_half_a_token"] = float(np.mean(moving < token_px / 2)) if moving.size else float("nan")
    return out


def references_by_clip(heldout_rows: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """Clip id → the world's first thought of the clip's first held-out row that has one."""
    out: dict[str, str] = {}
    for row in heldout_rows:
        meta = row.get("meta", {})
        thoughts = meta.get("reference_thoughts")
        if thoughts and meta.get("clip_id") and meta["clip_id"] not in out:
            out[meta["clip_id"]] = thoughts[0]
    return out
