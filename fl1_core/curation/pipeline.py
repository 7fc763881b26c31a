"""`curate`: score, select and write the curated set in one resumable call."""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Any


from ..data.formats import load_sft_records, read_json_rows
from ..data.records import write_rejects
from ..runs import atomic_write_json, atomic_write_text, write_jsonl

logger = logging.getLogger(__name__)


from .config import CurationConfig, CurationResult
from .scoring import score_visual_gain, scoring_fingerprint
from .selection import _absolute_paths, _table_csv, answer_stratum, select_by_gain, summarize


def curate(
    model: Any,
    processor: Any,
    sft_path: str | Path,
    out_dir: str | Path,
    config: CurationConfig,
    *,
    video_root: str | Path | None = None,
    scores_path: str | Path | None = None,
    curated_name: str = "sft_curated.json",
    progress: bool = True,
) -> CurationResult:
    """Score, select and write: ``<out_dir>/{curated_name}`` (kept records' original JSON rows, source order),
    ``curation.jsonl`` / ``curation.csv`` (one :class:`Decision` per scored record), ``curation_summary.json``,
    ``scores.jsonl`` (resumable scores, unless ``scores_path``) and ``rejects.jsonl`` (records that failed to load
    or score). Relative media paths become absolute unless ``out_dir`` is the source file's folder. A world base
    built for another tokenizer or world version is refused (:func:`fl1_core.world_base.check_base_compatible`)."""
    from ..world_base import check_base_compatible

    sft_path, out_dir = Path(sft_path), Path(out_dir)
    check_base_compatible(model, processor, sft_path.parent)
    out_dir.mkdir(parents=True, exist_ok=True)
    scores_path = Path(scores_path) if scores_path is not None else out_dir / "scores.jsonl"
    loaded = load_sft_records(sft_path, video_root=video_root, on_error="skip")
    score_rejects = out_dir / "scoring_rejects.jsonl"
    fingerprint = scoring_fingerprint(config, model)
    t0 = time.perf_counter()
    scores = score_visual_gain(
        model, processor, loaded.records, config, scores_path, rejects_path=score_rejects, progress=progress,
        fingerprint=fingerprint,
    )
    wall = time.perf_counter() - t0
    decisions = select_by_gain(scores, config, {r.id: answer_stratum(r.answer) for r in loaded.records})
    kept = {d.id for d in decisions if d.kept}

    rows = {pos: row for pos, row, problem in read_json_rows(sft_path) if problem is None}
    root = Path(video_root) if video_root is not None else sft_path.parent
    same_dir = out_dir.resolve() == sft_path.parent.resolve() and video_root is None
    curated, written = [], set()
    for rec in loaded.records:
        if rec.id in kept and rec.id not in written:
            written.add(rec.id)
            curated.append(rows[rec.position] if same_dir else _absolute_paths(rows[rec.position], root))
    curated_path = atomic_write_json(out_dir / curated_name, curated, indent=1)
    table_path = write_jsonl(out_dir / "curation.jsonl", [dataclasses.asdict(d) for d in decisions])
    csv_path = atomic_write_text(out_dir / "curation.csv", _table_csv(decisions))
    if loaded.rejects:
        write_rejects(loaded.rejects, out_dir / "rejects.jsonl")
    summary = summarize(decisions, config)
    summary["counts"].update(candidates=len(loaded.records) + len(loaded.rejects), load_rejects=len(loaded.rejects),
                             score_rejects=len(loaded.records) - len(scores))
    summary.update(
        config=config.to_dict(), fingerprint=fingerprint, source=str(sft_path),
        curated=str(curated_path), paths="original rows" if same_dir else "absolute media paths",
        scoring_wall_s=round(wall, 3),
    )
    summary_path = atomic_write_json(out_dir / "curation_summary.json", summary)
    logger.info(
        "curation: kept %d / %d (mean gain kept %s vs dropped %s; needs_vision kept %s vs all %s)",
        len(kept), len(decisions), summary["kept"]["mean_gain"], summary["dropped"]["mean_gain"],
        summary["kept"]["needs_vision_share"], summary["all"]["needs_vision_share"],
    )
    return CurationResult(curated_path, table_path, csv_path, summary_path, scores_path, scores, decisions, summary)
