"""The world's true state at the frame a latent span stands for: the probe targets of the audit.

The synthetic world records every clip's object tracks and events (``<world>/events.jsonl``). A question's reasoning
chain is the clip's future events ``meta.chain_event_indices``; grouped by the first pool frame that shows them
(as :func:`fl1_core.data.world.records.trajectory` does), span k of a Future-L1 response stands for the pool frame of
group k. At that frame f:

* ``position``: (x / width, y / height) of the clip's first two objects, [4];
* ``velocity``: (track[f] − track[f−1]) / width of the same objects, [4] (pixels per frame over the frame width);
* ``layout``: (x / width, y / height) of the leftmost and the rightmost object, [4]. Unlike ``position`` it does
  not depend on which object the clip lists first, which no picture shows: a frame's own embedding reads it
  (R² 0.35 from the mean of its merged tokens, 0.61 flattened, 600 test frames, `benchmarks/probe_targets.py`),
  where it barely reads ``position`` (R² 0.02);
* ``events_so_far``: how many of the clip's events happened at or before f (a class);
* ``last_event``: the type of the latest such event (``bounce``, ``hit``, …, or ``none``; a class).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..data.world.physics import pool_bin

REGRESSION_TARGETS = ("position", "layout", "velocity")
CLASS_TARGETS = ("events_so_far", "last_event")
STATE_TARGETS = REGRESSION_TARGETS + CLASS_TARGETS


@dataclass(frozen=True)
class SpanFrame:
    """Span ``span`` (1-based) of the response to record ``record_id`` stands for ``frame`` of clip ``clip_id``."""

    record_id: str
    clip_id: str
    span: int
    frame: int
    pool_index: int  # 1-based index into the clip's pool (the reasoning image's number)


def has_world_states(data_dir: str | Path) -> bool:
    """True when ``data_dir`` is a generated world with object tracks and events (``events.jsonl``)."""
    return (Path(data_dir) / "events.jsonl").exists()


def read_clips(data_dir: str | Path) -> dict[str, dict[str, Any]]:
    """``{clip_id: events.jsonl row}`` of a generated world."""
    path = Path(data_dir) / "events.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no world states (not a generated world); probes need `fl1 world` data")
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {r["clip_id"]: r for r in rows}


def span_frames(record_id: str, meta: dict[str, Any], clip: dict[str, Any]) -> list[SpanFrame]:
    """The frame each span of a response should imagine, in order: ``meta.reference_frames`` when the record has it
    (world RL records, frame-needing kinds included), else one per pool frame showing the chain's events."""
    if meta.get("reference_frames"):
        return [SpanFrame(record_id, clip["clip_id"], k + 1, int(clip["pool"][p - 1]), int(p))
                for k, p in enumerate(meta["reference_frames"])]
    events = clip["events"]
    chain = meta.get("chain_event_indices") or []
    bins = sorted({pool_bin(int(events[i]["frame"]), clip["pool"]) for i in chain})
    return [SpanFrame(record_id, clip["clip_id"], k + 1, int(clip["pool"][b]), b + 1) for k, b in enumerate(bins)]


def _objects(clip: dict[str, Any]) -> list[dict[str, Any]]:
    objs = clip["objects"]
    if len(objs) < 2:
        raise ValueError(f"clip {clip['clip_id']}: the probes need at least two objects, got {len(objs)}")
    return objs[:2]


def state_at(clip: dict[str, Any], frame: int) -> dict[str, Any]:
    """The four probe targets of ``clip`` at ``frame`` (see the module docstring)."""
    w, h = float(clip["width"]), float(clip["height"])
    pos, vel = [], []
    for obj in _objects(clip):
        track = obj["track"]
        x, y = track[frame]
        px, py = track[max(0, frame - 1)]
        pos += [x / w, y / h]
        vel += [(x - px) / w, (y - py) / w]
    points = sorted((x / w, y / h) for x, y in (obj["track"][frame] for obj in clip["objects"]))
    happened = [e for e in clip["events"] if int(e["frame"]) <= frame]
    return {
        "position": np.asarray(pos, dtype=np.float64),
        "layout": np.asarray([*points[0], *points[-1]], dtype=np.float64),
        "velocity": np.asarray(vel, dtype=np.float64),
        "events_so_far": len(happened),
        "last_event": happened[-1]["type"] if happened else "none",
    }


def target_matrix(states: list[dict[str, Any]], target: str) -> np.ndarray:
    """Stack one target over many states: [N, d] for regression targets, [N] (labels) for class targets."""
    if target not in STATE_TARGETS:
        raise ValueError(f"unknown probe target {target!r}; known: {STATE_TARGETS}")
    if target in REGRESSION_TARGETS:
        return np.stack([s[target] for s in states])
    return np.asarray([str(s[target]) for s in states])
