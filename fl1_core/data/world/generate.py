"""``generate_world``: from one seed, write the synthetic future world's clips and every dataset (docs/PAPER.md#evaluation, docs/PAPER.md#data-formats).

Layout (all paths relative to ``out_dir``)::

    world.json                                   manifest: seed, config, generator version, counts, sha256 of files
    videos/clip_XXXXX.mp4                        full clips (train and test)
    videos/clip_XXXXX_prefix.mp4                 observed prefix of each test clip
    events.jsonl                                 one line per clip: objects (with tracks), scene, events, cutoff
    sft.json                                     TwiFF SFT records (train clips)
    rl.jsonl                                     RL records (train clips)
    heldout_mcq.jsonl                            RL-format MCQ records over test clips (held-out accuracy): the
                                                 event kinds, then the frame-needing kinds (meta.needs_frame)
    futurebench.jsonl                            FutureBench-style MCQ (test clips; hop1/hop2/hop3/hop5)
    twiffbench/test-00000-of-00001.parquet       TwiFF-Bench-style open-ended rows (test clips)

Every random choice comes from a numpy Generator seeded by ``(seed, stream, index)``; files are written atomically;
the same seed gives byte-identical files.
"""

from __future__ import annotations

import io
import json
import logging
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from fl1_core.data.frames import frame_pool_indices
from fl1_core.runs import sha256_file

from .config import GENERATOR_VERSION, WorldConfig
from .physics import sample_clip
from .options import LetterBalancer
from .questions import candidates, fb_candidates
from .records import futurebench_item, rl_record, sft_record, twiffbench_row
from .world_types import FRAME_KINDS, TEXT_KINDS, Clip, Question
from .render import png_bytes, render_clip, write_mp4

log = logging.getLogger(__name__)

_STREAM_CLIPS, _STREAM_SFT, _STREAM_RL, _STREAM_FB, _STREAM_TWIFF, _STREAM_HELDOUT = range(6)
FB_TYPES = ("hop1", "hop2", "hop3", "hop5")
TWIFF_PARQUET = "twiffbench/test-00000-of-00001.parquet"
HELDOUT_MCQ = "heldout_mcq.jsonl"


# ------------------------------------------------------------------------------------------------------------ io utils
def _rng(seed: int, stream: int, index: int = 0) -> np.random.Generator:
    return np.random.default_rng([int(seed), stream, index])


def _write_bytes(path: Path, data: bytes) -> None:
    """Atomic write (temp file + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _json_bytes(obj: Any, indent: int | None = None) -> bytes:
    return (json.dumps(obj, ensure_ascii=False, indent=indent) + "\n").encode("utf-8")


def _jsonl_bytes(rows: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")


def split_counts(weights: tuple[float, ...], total: int) -> list[int]:
    """Largest-remainder rounding of ``total * weights / sum(weights)``."""
    w = np.asarray(weights, dtype=np.float64)
    raw = total * w / w.sum()
    base = np.floor(raw).astype(int)
    order = np.argsort(-(raw - base), kind="stable")
    for i in order[: total - int(base.sum())]:
        base[i] += 1
    return [int(x) for x in base]


# --------------------------------------------------------------------------------------------------------------- clips
def build_clips(out: Path, seed: int, cfg: WorldConfig) -> tuple[list[Clip], str]:
    """Sample, simulate, render and encode every clip; returns the clips and the codec used."""
    pool = frame_pool_indices(cfg.num_frames, cfg.pool_size)
    clips: list[Clip] = []
    codecs: set[str] = set()
    attempts = 0
    n_total = cfg.num_train_clips + cfg.num_test_clips
    for idx in tqdm(range(n_total), desc="world clips", leave=False):
        split = "train" if idx < cfg.num_train_clips else "test"
        sim, k = sample_clip(_rng(seed, _STREAM_CLIPS, idx), cfg, split)
        attempts += sim.extras["attempts"]
        clip_id = f"clip_{idx:05d}"
        frames = render_clip(sim)
        video = f"videos/{clip_id}.mp4"
        codecs.add(write_mp4(frames, out / video, cfg.fps, cfg.crf))
        prefix = None
        if split == "test":
            prefix = f"videos/{clip_id}_prefix.mp4"
            codecs.add(write_mp4(frames[: sim.observed_until + 1], out / prefix, cfg.fps, cfg.crf))
        clips.append(
            Clip(clip_id, split, sim, k, pool, video, prefix, cfg.fps, frames if split == "test" else None)
        )
    log.info("sampled %d clips in %d attempts", n_total, attempts)
    return clips, ",".join(sorted(codecs))


def verify_decode(out: Path, clips: list[Clip], cfg: WorldConfig) -> None:
    """Check that decord reads every clip (and prefix) with the expected number of frames."""
    import decord

    for c in tqdm(clips, desc="decord check", leave=False):
        expected = [(c.video, cfg.num_frames)]
        if c.prefix_video:
            expected.append((c.prefix_video, c.cutoff + 1))
        for rel, n in expected:
            vr = decord.VideoReader(str(out / rel), ctx=decord.cpu(0), num_threads=1)
            if len(vr) != n:
                raise RuntimeError(f"decord reads {len(vr)} frames from {rel}, expected {n}")


def events_row(c: Clip) -> dict[str, Any]:
    """The events.jsonl line of a clip."""
    sim = c.sim
    objects = []
    for i, b in enumerate(sim.scene.bodies):
        objects.append(
            {
                "name": b.name,
                "shape": b.shape,
                "color": b.color,
                "rgb": list(b.rgb),
                "size": round(b.r, 3),
                "start_support": b.support,
                "start_velocity": round(b.vx, 4),
                "track": [[round(float(x), 2), round(float(y), 2)] for x, y in sim.states[:, i, :2]],
            }
        )
    return {
        "clip_id": c.clip_id,
        "split": c.split,
        "video": c.video,
        "prefix_video": c.prefix_video,
        "fps": c.fps,
        "num_frames": int(sim.states.shape[0]),
        "width": sim.scene.width,
        "height": sim.scene.height,
        "objects": objects,
        "scene": sim.scene.to_dict(),
        "events": [e.to_dict(c.fps) for e in sim.events],
        "observed_until": c.cutoff,
        "observed_images": list(range(1, c.num_observed + 1)),
        "pool": c.pool,
        "light_on_frame": sim.light_on_frame,
    }


# ------------------------------------------------------------------------------------------------------------ datasets
def _by_kind(qs: list[Question]) -> dict[str, list[Question]]:
    out: dict[str, list[Question]] = {}
    for q in qs:
        out.setdefault(q.kind, []).append(q)
    return out


def make_sft(clips: list[Clip], seed: int, cfg: WorldConfig) -> list[dict[str, Any]]:
    """Up to ``sft_per_clip`` records of distinct question kinds per train clip."""
    train = [c for c in clips if c.split == "train"]
    letters = LetterBalancer(_rng(seed, _STREAM_SFT, 10**6), len(train) * cfg.sft_per_clip)
    records: list[dict[str, Any]] = []
    for c in train:
        rng = _rng(seed, _STREAM_SFT, int(c.clip_id.split("_")[1]))
        kinds = _by_kind(candidates(c, rng))
        names = [sorted(kinds)[int(i)] for i in rng.permutation(len(kinds))]
        text = [n for n in names if n in TEXT_KINDS]
        if text and rng.random() < cfg.sft_text_priority:
            first = text[int(rng.integers(0, len(text)))]
            names = [first] + [n for n in names if n != first]
        frame = [n for n in names if n in FRAME_KINDS]
        if frame and rng.random() < cfg.sft_frame_priority and not set(frame) & set(names[: cfg.sft_per_clip]):
            pick = frame[int(rng.integers(0, len(frame)))]
            rest = [n for n in names if n != pick]
            names = rest[: cfg.sft_per_clip - 1] + [pick] + rest[cfg.sft_per_clip - 1 :]
        for name in names[: cfg.sft_per_clip]:
            qs = kinds[name]
            q = qs[int(rng.integers(0, len(qs)))]
            letter = letters.next() if rng.random() < cfg.sft_mcq_fraction else None
            records.append(sft_record(c, q, f"world-sft-{len(records):05d}", rng, letter))
    return records


def _rl_records(
    clips: list[Clip], rng: np.random.Generator, size: int, mcq_fraction: float, id_prefix: str,
    text_share: float | None = None, frame: bool | None = None, event_kinds_free_form: bool = False,
    event_kinds_candidates: bool = False,
) -> list[dict[str, Any]]:
    """``size`` RL-format records (MCQ with letter answers, or free-form with event or place answers) from
    ``clips``.

    With ``text_share``, each pick prefers a text-solvable question (when the clip has one) with that probability,
    so both groups of kinds are large enough to measure. ``frame``: only frame-needing kinds (True), none (False) or
    every kind (None). ``event_kinds_free_form``: an event-kind question drawn as MCQ is written free-form (its
    answer the event sentence, or the chain ``X, then Y``) after the same draws, so every other record is
    unchanged; with ``event_kinds_candidates`` it lists the options drawn for it, without letters."""
    letters = LetterBalancer(rng, size)
    records: list[dict[str, Any]] = []
    used: set[tuple[str, str]] = set()
    for _ in range(10):  # passes over the clips
        progress = False
        for ci in rng.permutation(len(clips)):
            if len(records) >= size:
                return records
            c = clips[int(ci)]
            mcq = rng.random() < mcq_fraction
            qs = [
                q
                for q in candidates(c, rng)
                if (mcq or len(q.answer_events) == 1 or q.needs_frame) and (c.clip_id, q.text) not in used
                and (frame is None or q.needs_frame == frame)
            ]
            if not qs:
                continue
            if text_share is not None and rng.random() < text_share:
                qs = [q for q in qs if q.kind in TEXT_KINDS] or qs
            q = qs[int(rng.integers(0, len(qs)))]
            rec = rl_record(c, q, f"{id_prefix}-{len(records):05d}", rng, letters.next() if mcq else None)
            if rec is not None and mcq and event_kinds_free_form and not q.needs_frame:
                listed = list(rec["meta"]["options"].values()) if event_kinds_candidates else None
                rec = rl_record(c, q, rec["id"], rng, None, listed)  # no draw: a free-form record takes no options
            if rec is None and (len(q.answer_events) == 1 or q.needs_frame):
                rec = rl_record(c, q, f"{id_prefix}-{len(records):05d}", rng, None)
            if rec is not None:
                records.append(rec)
                used.add((c.clip_id, q.text))
                progress = True
        if not progress:
            break
    if len(records) < size:
        log.warning("only %d %s records (asked for %d)", len(records), id_prefix, size)
    return records


def make_rl(clips: list[Clip], seed: int, cfg: WorldConfig) -> list[dict[str, Any]]:
    """``rl_size`` RL records from train clips: MCQ with letter answers or free-form with event or place answers;
    with ``cfg.rl_event_kinds_free_form`` the event kinds are free-form only (their MCQ letter is weakly tied to the
    concluded event after SFT, so a letter reward there trains nothing that the event score reads), listing the
    options of their MCQ draw as candidates with ``cfg.rl_event_kinds_candidates``."""
    train = [c for c in clips if c.split == "train"]
    return _rl_records(train, _rng(seed, _STREAM_RL), cfg.rl_size, cfg.rl_mcq_fraction, "world-rl",
                       event_kinds_free_form=cfg.rl_event_kinds_free_form,
                       event_kinds_candidates=cfg.rl_event_kinds_candidates)


def make_heldout_mcq(clips: list[Clip], seed: int, cfg: WorldConfig) -> list[dict[str, Any]]:
    """RL-format MCQ records over TEST clips, question frames as images: the held-out accuracy of the SFT and RL
    stages in the RL prompt format. First ``heldout_mcq_size`` items of the event kinds (text-solvable ones
    included), then ``heldout_frame_size`` items of the frame-needing kinds (ids ``world-heldout-frame-…``)."""
    test = [c for c in clips if c.split == "test"]
    events = _rl_records(test, _rng(seed, _STREAM_HELDOUT), cfg.heldout_mcq_size, 1.0, "world-heldout",
                         text_share=cfg.heldout_text_share, frame=False)
    frames = _rl_records(test, _rng(seed, _STREAM_HELDOUT, 1), cfg.heldout_frame_size, 1.0, "world-heldout-frame",
                         frame=True)
    return events + frames


def make_futurebench(clips: list[Clip], seed: int, cfg: WorldConfig) -> list[dict[str, Any]]:
    """FutureBench-style items over test-clip prefixes, hop splits sized by ``futurebench_weights``."""
    test = [c for c in clips if c.split == "test"]
    rng = _rng(seed, _STREAM_FB)
    targets = dict(zip(FB_TYPES, split_counts(cfg.futurebench_weights, cfg.futurebench_size)))
    letters = LetterBalancer(rng, cfg.futurebench_size)
    per_clip = [fb_candidates(c) for c in test]
    items: list[dict[str, Any]] = []
    for qtype in FB_TYPES:
        cands = [(ci, q) for ci, d in enumerate(per_clip) for q in d[qtype]]
        chosen: list[tuple[int, Question]] = []
        for i in rng.permutation(len(cands)):
            if len(chosen) >= targets[qtype]:
                break
            chosen.append(cands[int(i)])
        chosen.sort(key=lambda t: (t[0], t[1].chain_end))
        n_before = len(items)
        for ci, q in chosen:
            item = futurebench_item(test[ci], q, qtype, f"world-fb-{len(items):05d}", rng, letters.next())
            if item is not None:
                items.append(item)
        if len(items) - n_before < targets[qtype]:
            log.warning("FutureBench %s: %d items (asked for %d)", qtype, len(items) - n_before, targets[qtype])
    return items


def make_twiffbench(clips: list[Clip], seed: int, cfg: WorldConfig) -> list[dict[str, Any]]:
    """TwiFF-Bench-style open-ended rows from test clips (distinct event question kinds per clip; the local judge
    scores event chains)."""
    test = [c for c in clips if c.split == "test"]
    rng = _rng(seed, _STREAM_TWIFF)
    pngs = {c.clip_id: [png_bytes(c.frames[f]) for f in c.pool] for c in test if c.frames is not None}
    kinds = {c.clip_id: _by_kind([q for q in candidates(c, rng) if not q.needs_frame]) for c in test}
    rows: list[dict[str, Any]] = []
    while len(rows) < cfg.twiffbench_size:
        progress = False
        for ci in rng.permutation(len(test)):
            if len(rows) >= cfg.twiffbench_size:
                break
            c = test[int(ci)]
            left = sorted(kinds[c.clip_id])
            if not left:
                continue
            kind = left[int(rng.integers(0, len(left)))]
            qs = kinds[c.clip_id].pop(kind)
            q = qs[int(rng.integers(0, len(qs)))]
            rows.append(twiffbench_row(c, q, f"world-twiff-{len(rows):05d}", pngs[c.clip_id]))
            progress = True
        if not progress:
            log.warning("TwiFF-Bench: %d rows (asked for %d)", len(rows), cfg.twiffbench_size)
            break
    return rows


def _parquet_bytes(rows: list[dict[str, Any]]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema(
        [
            ("question", pa.string()),
            ("answer", pa.string()),
            ("question_images", pa.list_(pa.binary())),
            ("reasoning_images", pa.list_(pa.binary())),
            ("question_image_indices", pa.list_(pa.int64())),
            ("reasoning_image_indices", pa.list_(pa.int64())),
            ("meta_data", pa.string()),
        ]
    )
    table = pa.Table.from_pylist(rows, schema=schema)
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="snappy")
    return buf.getvalue()


# ------------------------------------------------------------------------------------------------------------- driver
def generate_world(out_dir: str | os.PathLike, seed: int = 0, config: WorldConfig | None = None) -> dict[str, Any]:
    """Generate the synthetic future world into ``out_dir`` and return its manifest (also written to world.json)."""
    cfg = config if config is not None else WorldConfig()
    if seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    clips, codec = build_clips(out, seed, cfg)
    t_clips = time.perf_counter() - t0
    if cfg.verify_decode:
        verify_decode(out, clips, cfg)
    _write_bytes(out / "events.jsonl", _jsonl_bytes([events_row(c) for c in clips]))
    sft = make_sft(clips, seed, cfg)
    _write_bytes(out / "sft.json", _json_bytes(sft, indent=1))
    rl = make_rl(clips, seed, cfg)
    _write_bytes(out / "rl.jsonl", _jsonl_bytes(rl))
    heldout = make_heldout_mcq(clips, seed, cfg)
    _write_bytes(out / HELDOUT_MCQ, _jsonl_bytes(heldout))
    fb = make_futurebench(clips, seed, cfg)
    _write_bytes(out / "futurebench.jsonl", _jsonl_bytes(fb))
    tw = make_twiffbench(clips, seed, cfg)
    _write_bytes(out / TWIFF_PARQUET, _parquet_bytes(tw))

    files = [c.video for c in clips] + [c.prefix_video for c in clips if c.prefix_video]
    files += ["events.jsonl", "sft.json", "rl.jsonl", HELDOUT_MCQ, "futurebench.jsonl", TWIFF_PARQUET]
    n_events = Counter(len(c.sim.events) for c in clips)
    manifest: dict[str, Any] = {
        "generator": GENERATOR_VERSION,
        "seed": int(seed),
        "config": cfg.to_dict(),
        "codec": codec,
        "pool": frame_pool_indices(cfg.num_frames, cfg.pool_size),
        "counts": {
            "train_clips": sum(c.split == "train" for c in clips),
            "test_clips": sum(c.split == "test" for c in clips),
            "events_per_clip": {str(k): n_events[k] for k in sorted(n_events)},
            "sft": len(sft),
            "sft_mcq": sum(r["meta"]["format"] == "mcq" for r in sft),
            "sft_needs_vision": sum(r["meta"]["needs_vision"] for r in sft),
            "sft_kinds": dict(sorted(Counter(r["meta"]["question_kind"] for r in sft).items())),
            "rl": len(rl),
            "rl_problem_types": dict(sorted(Counter(r["problem_type"] for r in rl).items())),
            "rl_kinds": dict(sorted(Counter(r["meta"]["question_kind"] for r in rl).items())),
            "heldout_mcq": len(heldout),
            "heldout_mcq_kinds": dict(sorted(Counter(r["meta"]["question_kind"] for r in heldout).items())),
            "heldout_needs_frame": sum(r["meta"]["needs_frame"] for r in heldout),
            "heldout_frame_changed": sum(bool(r["meta"].get("changed")) for r in heldout),
            "sft_needs_frame": sum(r["meta"]["needs_frame"] for r in sft),
            "rl_needs_frame": sum(r["meta"]["needs_frame"] for r in rl),
            "futurebench": {t: sum(i["question_type"] == t for i in fb) for t in FB_TYPES},
            "futurebench_answers": dict(sorted(Counter(i["qa"]["Answer"] for i in fb).items())),
            "twiffbench": len(tw),
        },
        "files": {rel: sha256_file(out / rel) for rel in files},
    }
    _write_bytes(out / "world.json", _json_bytes(manifest, indent=1))
    log.info(
        "world written to %s in %.1fs (clips %.1fs): %d train / %d test clips, %d SFT, %d RL, %d FutureBench, "
        "%d TwiFF-Bench",
        out,
        time.perf_counter() - t0,
        t_clips,
        manifest["counts"]["train_clips"],
        manifest["counts"]["test_clips"],
        len(sft),
        len(rl),
        len(fb),
        len(tw),
    )
    return manifest
