"""Loading a benchmark for evaluation (real format or the world's; rejects kept), its fingerprint, and sharding
its items over processes with resumable per-shard prediction files."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any


from fl1_core.data.formats import load_futurebench, load_twiffbench, spread_limit
from fl1_core.data.records import FutureBenchItem, Reject, TwiffBenchItem
from fl1_core.runs import read_jsonl


from fl1_core.evaluation.eval_config import PREDICTIONS, SHARD_DIR, EvalConfig, _check_benchmark

log = logging.getLogger(__name__)

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------------- loading
Item = FutureBenchItem | TwiffBenchItem


def doc_id_of(item: Item) -> Any:
    """The doc id: FutureBench ``id`` (str), TwiFF-Bench ``doc_id`` (row number, int)."""
    return item.doc_id if isinstance(item, TwiffBenchItem) else item.id


def _load_all(benchmark: str, data_path: str | os.PathLike, config: EvalConfig) -> tuple[list[Item], list[Reject]]:
    _check_benchmark(benchmark)
    if benchmark == "futurebench":
        result = load_futurebench(
            data_path, video_root=config.video_root, on_error=config.on_error  # type: ignore[arg-type]
        )
    else:
        result = load_twiffbench(data_path, on_error=config.on_error)  # type: ignore[arg-type]
    items = list(result.records)
    seen: set[Any] = set()
    for item in items:
        did = doc_id_of(item)
        if did in seen:
            raise ValueError(f"{data_path}: duplicate doc id {did!r} (field 'id'); doc ids must be unique")
        seen.add(did)
    return items, list(result.rejects)


def load_benchmark(benchmark: str, data_path: str | os.PathLike, config: EvalConfig) -> tuple[list[Item], list[Reject]]:
    """Load a benchmark in doc order (``limit`` applied, :func:`spread_limit`) → ``(items, rejects)``; duplicate doc
    ids are an error."""
    items, rejects = _load_all(benchmark, data_path, config)
    return spread_limit(items, config.limit), rejects


def data_fingerprint(items: Sequence[Item]) -> str:
    """sha256 over what defines each item (doc id, question, options/answer or reference) of the whole benchmark
    (before ``limit``): a resumed run must not reuse predictions of other data that happens to share doc ids."""
    h = hashlib.sha256()
    for item in items:
        if isinstance(item, FutureBenchItem):
            key = [item.id, item.question_type, item.prompt_text(), item.answer, Path(item.video_path).name]
        else:
            key = [item.doc_id, item.question, item.answer_raw, len(item.question_images)]
        h.update(json.dumps(key, default=str).encode("utf-8"))
    return h.hexdigest()


def shard_items(items: Sequence[Item], rank: int, world_size: int) -> list[Item]:
    """Process ``rank``'s deterministic share of the doc order: items ``rank, rank + w, rank + 2w, …``."""
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"bad shard rank={rank} world_size={world_size}")
    return list(items[rank::world_size])


def shard_path(out_dir: str | os.PathLike, rank: int, world_size: int) -> Path:
    """``out_dir/shards/predictions.rank{r:03d}-of-{w:03d}.jsonl``."""
    return Path(out_dir) / SHARD_DIR / f"predictions.rank{rank:03d}-of-{world_size:03d}.jsonl"


def _existing_rows(out_dir: Path) -> list[dict[str, Any]]:
    """Rows of ``predictions.jsonl`` then every shard file (sorted by name); may contain repeats."""
    rows = read_jsonl(out_dir / PREDICTIONS)
    for path in sorted((out_dir / SHARD_DIR).glob("*.jsonl")):
        rows.extend(read_jsonl(path))
    return rows


def _finished_doc_ids(out_dir: Path) -> set[Any]:
    return {row["doc_id"] for row in _existing_rows(out_dir) if "doc_id" in row}


