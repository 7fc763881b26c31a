"""The real data formats of docs/PAPER.md#data-formats, as validated frozen records, and their loaders.

Formats: TwiFF / Future-L1-50K SFT records (:class:`SFTRecord`), RL records (:class:`RLRecord`), FutureBench items
(:class:`FutureBenchItem`) and TwiFF-Bench items (:class:`TwiffBenchItem`). Field-by-field rules: ``data/FORMATS.md``.

Every loader takes ``on_error``: ``"raise"`` stops at the first bad record with a :class:`RecordError` naming the record
id, the field and what was expected (``record 'sft_00012': field 'image': index 9 outside 1..8``); ``"skip"`` keeps
every good record and reports each bad one as a :class:`Reject` (write them with :func:`write_rejects`). Loaders
return a :class:`LoadResult`, which also behaves as the sequence of its records.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from fl1_core.data.records import (
    POOL_SIZE,
    DataFileError,
    FutureBenchItem,
    LoadResult,
    OnError,
    RecordError,
    Reject,
    RLRecord,
    SFTRecord,
    TwiffBenchItem,
    _Invalid,
)
from fl1_core.data.validation import (
    _mapping,
    _MediaChecker,
    _parse_futurebench_item,
    _parse_rl_record,
    _parse_sft_record,
    _parse_twiffbench_item,
    _record_id,
    _type_name,
)

logger = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------------------------------
# File readers
# ---------------------------------------------------------------------------------------------------------------------


def _decode(data: bytes) -> str:
    # surrogateescape keeps bad bytes as lone surrogates so only the records that contain them are rejected
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    return data.decode("utf-8", errors="surrogateescape")


def read_json_rows(path: str | os.PathLike) -> Iterator[tuple[int, Any, str | None]]:
    """Yield ``(position, row, problem)`` from a ``.json`` list or a ``.jsonl`` file.

    ``problem`` is set (and ``row`` is ``None``) for a JSONL line that is not valid JSON; a ``.json`` file that is not
    a list of records raises :class:`DataFileError`. Blank JSONL lines are skipped and do not count as positions.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"data file not found: {path}")
    text = _decode(path.read_bytes())
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        pos = 0
        for lineno, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                yield pos, json.loads(line), None
            except json.JSONDecodeError as exc:
                yield pos, None, f"line {lineno} is not valid JSON ({exc.msg})"
            pos += 1
        return
    if not text.strip():
        raise DataFileError(f"data file is empty: {path}")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataFileError(f"{path} is not valid JSON ({exc.msg} at line {exc.lineno}); expected a list") from None
    if isinstance(data, Mapping) and isinstance(data.get("data"), list):
        data = data["data"]
    if not isinstance(data, list):
        raise DataFileError(f"{path}: expected a JSON list of records, got {_type_name(data)}")
    for pos, row in enumerate(data):
        yield pos, row, None


def _find_bad_utf8(value: Any, label: str = "") -> str | None:
    """The field path of the first string holding undecodable bytes (lone surrogates), or ``None``."""
    if isinstance(value, str):
        return (label or "<record>") if any("\udc80" <= ch <= "\udcff" for ch in value) else None
    if isinstance(value, Mapping):
        for k, v in value.items():
            key = str(k)
            if any("\udc80" <= ch <= "\udcff" for ch in key):
                return f"{label}.{key}" if label else key
            found = _find_bad_utf8(v, f"{label}.{key}" if label else key)
            if found:
                return found
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            found = _find_bad_utf8(v, f"{label}[{i}]")
            if found:
                return found
    return None


def _check_on_error(on_error: str) -> None:
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")


def _run(
    rows: Iterator[tuple[int, Any, str | None]],
    parse: Any,
    on_error: str,
    source: str,
    id_of: Any = _record_id,
) -> LoadResult:
    records, rejects, seen = [], [], {}
    for pos, row, problem in rows:
        rid = id_of(row, pos)
        try:
            if problem is not None:
                raise _Invalid("<record>", problem)
            bad_utf8 = _find_bad_utf8(row)
            if bad_utf8 is not None:
                raise _Invalid(bad_utf8, "not valid UTF-8 text")
            rec = parse(row, pos)
        except _Invalid as bad:
            if on_error == "raise":
                raise RecordError(rid, bad.field, bad.reason) from None
            rejects.append(Reject(rid, bad.field, bad.reason, position=pos, source=source))
            continue
        if rec.id in seen:
            logger.warning("%s: record id %r repeats (positions %d and %d)", source, rec.id, seen[rec.id], pos)
        seen.setdefault(rec.id, pos)
        records.append(rec)
    level = logging.WARNING if rejects else logging.INFO
    logger.log(level, "%s: %d records loaded, %d rejected", source, len(records), len(rejects))
    return LoadResult(records, rejects)


def load_sft_records(
    path: str | os.PathLike,
    video_root: str | os.PathLike | None = None,
    on_error: OnError = "raise",
    check_videos: bool = True,
    pool_size: int = POOL_SIZE,
) -> LoadResult[SFTRecord]:
    """Load and validate TwiFF / Future-L1-50K SFT records from ``.json`` (list) or ``.jsonl``.

    Relative ``video`` / image paths resolve against ``video_root`` (default: the data file's directory).
    ``check_videos`` opens every unique video once (and checks image files in the image-path variant).
    """
    _check_on_error(on_error)
    path = Path(path)
    root = Path(video_root) if video_root is not None else path.parent
    media = _MediaChecker() if check_videos else None
    return _run(
        read_json_rows(path),
        lambda row, pos: _parse_sft_record(row, pos, root, pool_size, media),
        on_error,
        str(path),
    )


def load_rl_records(
    path: str | os.PathLike,
    video_root: str | os.PathLike | None = None,
    on_error: OnError = "raise",
    check_videos: bool = True,
    pool_size: int = POOL_SIZE,
) -> LoadResult[RLRecord]:
    """Load and validate RL records (``id``, ``video``, ``image``, ``conversations``, ``answer``, ``problem_type``)."""
    _check_on_error(on_error)
    path = Path(path)
    root = Path(video_root) if video_root is not None else path.parent
    media = _MediaChecker() if check_videos else None
    return _run(
        read_json_rows(path),
        lambda row, pos: _parse_rl_record(row, pos, root, pool_size, media),
        on_error,
        str(path),
    )


def _is_hf_dataset_dir(path: Path) -> bool:
    return path.is_dir() and any(
        (path / name).is_file() for name in ("dataset_info.json", "state.json", "dataset_dict.json")
    )


def _hf_rows(path: Path, split: str | None) -> Iterator[tuple[int, Any, str | None]]:
    try:
        import datasets  # type: ignore[import-not-found]
    except ImportError:
        raise ImportError(
            f"{path} is a Hugging Face `save_to_disk` directory; reading it needs the `datasets` package "
            "(pip install datasets), or export it to JSON/JSONL first"
        ) from None
    ds = datasets.load_from_disk(str(path))
    if isinstance(ds, datasets.DatasetDict):
        names = list(ds.keys())
        if split is None:
            if len(names) != 1:
                raise DataFileError(f"{path} holds splits {names}; pass split=...")
            split = names[0]
        if split not in ds:
            raise DataFileError(f"{path} has no split {split!r}; it holds {names}")
        ds = ds[split]
    for pos, row in enumerate(ds):
        yield pos, row, None


def load_futurebench(
    path: str | os.PathLike,
    video_root: str | os.PathLike | None = None,
    on_error: OnError = "raise",
    check_videos: bool = True,
    split: str | None = None,
) -> LoadResult[FutureBenchItem]:
    """Load FutureBench from JSON (list) / JSONL, or an HF ``save_to_disk`` directory (needs ``datasets``).

    Relative ``video_path`` values resolve against ``video_root`` (default: the file's directory, or the dataset
    directory itself).
    """
    _check_on_error(on_error)
    path = Path(path)
    if path.is_dir():
        if not _is_hf_dataset_dir(path):
            raise DataFileError(f"{path} is a directory but not a Hugging Face save_to_disk dataset")
        rows, default_root = _hf_rows(path, split), path
    else:
        rows, default_root = read_json_rows(path), path.parent
    root = Path(video_root) if video_root is not None else default_root
    media = _MediaChecker() if check_videos else None
    return _run(rows, lambda row, pos: _parse_futurebench_item(row, pos, root, media), on_error, str(path))


def twiffbench_shards(path: str | os.PathLike) -> list[Path]:
    """The parquet shard(s) of TwiFF-Bench: ``path`` itself, or the sorted ``*.parquet`` files of a directory."""
    path = Path(path)
    if path.is_file():
        return [path]
    if path.is_dir():
        shards = sorted(path.glob("*.parquet"))
        if not shards:
            raise DataFileError(f"no *.parquet shards in {path}")
        return shards
    raise DataFileError(f"TwiFF-Bench path not found: {path}")


def load_twiffbench(
    path: str | os.PathLike,
    on_error: OnError = "raise",
    check_images: bool = True,
) -> LoadResult[TwiffBenchItem]:
    """Load TwiFF-Bench parquet shard(s); row order over the sorted shards is the ``doc_id``.

    Each reference ``answer`` is parsed into ``reference_chain`` and ``ground_truth``; ``check_images`` decodes every
    image header once.
    """
    import pyarrow.parquet as pq

    _check_on_error(on_error)
    shards = twiffbench_shards(path)

    shard_of: dict[int, str] = {}

    def rows() -> Iterator[tuple[int, Any, str | None]]:
        doc_id = 0
        for shard in shards:
            try:
                table = pq.read_table(shard)
            except Exception as exc:
                raise DataFileError(f"cannot read parquet shard {shard}: {exc}") from exc
            for row in table.to_pylist():
                shard_of[doc_id] = str(shard)
                yield doc_id, row, None
                doc_id += 1

    def id_of(row: Any, doc_id: int) -> str:
        rid = _record_id(row, doc_id)
        if rid.startswith("#") and isinstance(row, Mapping):
            try:
                meta = _mapping(row.get("meta_data"), "meta_data")
            except _Invalid:
                meta = None
            if meta and meta.get("id") not in (None, ""):
                rid = str(meta["id"])
        return rid

    return _run(
        rows(),
        lambda row, doc_id: _parse_twiffbench_item(row, doc_id, shard_of.get(doc_id), check_images),
        on_error,
        str(path),
        id_of=id_of,
    )


__all__ = [
    "load_futurebench",
    "load_rl_records",
    "load_sft_records",
    "load_twiffbench",
    "read_json_rows",
    "spread_limit",
    "twiffbench_shards",
]


T = TypeVar("T")


def spread_limit(items: Sequence[T], limit: int | None) -> list[T]:
    """``limit`` items spread evenly over ``items`` in doc order (indices ⌊i·n / limit⌋, i = 0 … limit−1), so a file
    grouped by split (the world's FutureBench-style file lists 1-hop, 2-hop, 3-hop, then interpolation) keeps every
    split in its share; ``None`` or ``limit ≥ n`` keeps all."""
    n = len(items)
    if limit is None or limit >= n:
        return list(items)
    return [items[i * n // limit] for i in range(limit)]
