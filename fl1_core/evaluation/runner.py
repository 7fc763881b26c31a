"""The evaluation runner: FutureBench- and TwiFF-Bench-style evaluation of a Future-L1 checkpoint (docs/PAPER.md#evaluation).

One call per benchmark::

    summary = evaluate_futurebench(model, processor, "data/world/futurebench.jsonl", "runs/x/eval_fb", EvalConfig())
    summary = evaluate_twiffbench(model, processor, "data/world/twiffbench", "runs/x/eval_tw", cfg, judge_config)

What happens:

1. The benchmark is loaded (real format or the world's; bad records are skipped into ``rejects.jsonl``), optionally
   cut to ``limit`` items spread evenly over the doc order (FutureBench file order / TwiFF-Bench ``doc_id``), so
   every split keeps its share (:func:`fl1_core.data.formats.spread_limit`).
2. Prompts follow docs/PAPER.md#evaluation: system prompt, the observed video (FutureBench, ``num_frames`` frames at the real fps) or
   the question frames (TwiFF-Bench), the question; FutureBench adds the ``A. …`` option lines and the single-letter
   instruction.
3. Items are decoded in batches with :func:`fl1_core.decoding.decode_batches` (greedy by default). After
   every batch its rows are appended to this process's shard file ``shards/predictions.rank{r}-of-{w}.jsonl``, so a
   killed evaluation restarts where it stopped: doc ids found in any shard file (or in ``predictions.jsonl``) are not
   decoded again.
4. Data-parallel: with ``accelerate`` (an ``Accelerator``, or ``WORLD_SIZE > 1``) process ``r`` of ``w`` decodes the
   items ``r, r + w, r + 2w, …`` of the doc order; the main process merges all shard files BY DOC ID (never by
   completion order) into ``predictions.jsonl``, so one process without ``accelerate`` writes the same rows (except
   the timing fields :data:`TIMING_FIELDS`).
5. TwiFF-Bench only: every prediction is judged with :func:`fl1_core.judge.client.judge_many` (disk cache in
   ``judge_cache/``, so a rerun re-queries nothing it has); each row ends with scores or a ``judge_error``.
6. ``summary.json`` = scores (:func:`score_futurebench` / :func:`score_twiffbench`), latent statistics and
   inference cost (:mod:`fl1_core.evaluation.latent_stats`), all recomputable from ``predictions.jsonl`` with
   :func:`summarize_predictions`, plus a ``run`` section (timings, process count) that is not.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from fl1_core.config import LatentConfig
from fl1_core.data.collator import PromptExample
from fl1_core.data.examples import futurebench_prompt, twiffbench_prompt
from fl1_core.data.formats import spread_limit
from fl1_core.data.records import FutureBenchItem, write_rejects
from fl1_core.decoding import DecodedBatch, decode_batches
from fl1_core.answers import EXTRACTION_MODES, extract_answer_letter
from fl1_core.distributed import ProcessGroup
from fl1_core.evaluation.eval_config import (
    _DECODE_KEYS,
    PREDICTIONS,
    RUN_CONFIG,
    SHARD_DIR,
    SUMMARY,
    TIMING_FIELDS,
    EvalConfig,
    _check_benchmark,
)
from fl1_core.evaluation.latent_stats import adjacent_span_cosines
from fl1_core.evaluation.loading import (
    Item,
    _existing_rows,
    _finished_doc_ids,
    _load_all,
    data_fingerprint,
    doc_id_of,
    shard_items,
    shard_path,
)
from fl1_core.evaluation.summary import _log_summary, judge_predictions, rejects_as_wrong, summarize_predictions
from fl1_core.judge.config import JudgeConfig
from fl1_core.judge.sanitize import split_reasoning_answer
from fl1_core.runs import atomic_write_json, read_jsonl, write_jsonl

__all__ = ["decode_shard", "evaluate", "evaluate_futurebench", "evaluate_twiffbench", "merge_predictions"]

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------------- decoding
def _prompt(item: Item, config: EvalConfig) -> PromptExample:
    if isinstance(item, FutureBenchItem):
        return futurebench_prompt(item, num_frames=config.num_frames)
    return twiffbench_prompt(item)


def _split(item: Item) -> str:
    if isinstance(item, FutureBenchItem):
        return item.question_type
    hops = (item.meta_data or {}).get("hops")
    return f"hop{hops}" if isinstance(hops, int) else "all"


def _item_fields(item: Item, index: int) -> dict[str, Any]:
    row: dict[str, Any] = {"doc_id": doc_id_of(item), "index": index, "split": _split(item)}
    if isinstance(item, FutureBenchItem):
        row.update(question_type=item.question_type, answer=item.answer)
    else:
        meta = item.meta_data or {}
        row.update(id=item.id, question_kind=meta.get("question_kind"), hops=meta.get("hops"),
                   ground_truth=item.ground_truth)
    return row


def _answer_fields(item: Item, text: str) -> dict[str, Any]:
    if isinstance(item, FutureBenchItem):
        out: dict[str, Any] = {}
        for mode in EXTRACTION_MODES:
            pred = extract_answer_letter(text, mode=mode)
            out[f"pred_{mode}"] = pred
            out[f"correct_{mode}"] = pred == item.answer
        return out
    reasoning, answer = split_reasoning_answer(text)
    return {"model_reasoning": reasoning, "model_answer": answer}


def _rows_of(model: torch.nn.Module, batch: DecodedBatch, items: Sequence[tuple[int, Item]], rank: int
             ) -> list[dict[str, Any]]:
    """One prediction row per decoded item of ``batch`` (``items``: (position in the file, item) of every row)."""
    gen, n = batch.generation, len(batch.rows)
    eos = set(_as_list(model.base.generation_config.eos_token_id))
    rows = []
    for b, r in enumerate(batch.rows):
        index, item = items[r]
        length = int(gen.lengths[b])
        last = int(gen.sequences[b, length - 1]) if length else None
        spans = [int(c) for c in gen.span_counts[b]]
        row = _item_fields(item, index)
        row.update(
            response=gen.texts[b],
            **_answer_fields(item, gen.texts[b]),
            new_tokens=length,
            stopped=last in eos,
            span_counts=spans,
            n_spans=len(spans),
            latent_tokens=int(gen.latents[b].shape[0]),
            adjacent_span_cosines=adjacent_span_cosines(gen.latents[b], spans),
            latency_s=(batch.encode_s + batch.decode_s) / n,
            decode_s=batch.decode_s / n,
            batch_size=n,
            rank=rank,
        )
        rows.append(row)
    return rows


def _as_list(x: Any) -> list[int]:
    if x is None:
        return []
    return [int(x)] if isinstance(x, int) else [int(v) for v in x]


def decode_shard(
    model: torch.nn.Module,
    processor: Any,
    items: Sequence[Item],
    out_dir: str | os.PathLike,
    config: EvalConfig,
    *,
    rank: int = 0,
    world_size: int = 1,
    positions: dict[str, int] | None = None,
) -> int:
    """Decode process ``rank``'s share of ``items`` (all items in doc order) into its shard file.

    Each row's ``index`` is the item's position in the whole benchmark file (``positions``: doc id → position;
    default: its position in ``items``), so rows decoded under different ``limit`` values agree.

    Doc ids already in ``out_dir`` (any shard file or ``predictions.jsonl``) are skipped; rows are appended after
    every batch. Returns the number of samples decoded by this call.
    """
    out = Path(out_dir)
    benchmark = "futurebench" if items and isinstance(items[0], FutureBenchItem) else "twiffbench"
    index_of = positions or {doc_id_of(it): i for i, it in enumerate(items)}
    finished = _finished_doc_ids(out)
    todo = [
        (index_of[doc_id_of(it)], it)
        for it in shard_items(items, rank, world_size)
        if doc_id_of(it) not in finished
    ]
    path = shard_path(out, rank, world_size)
    kept = read_jsonl(path)
    if path.exists():
        write_jsonl(path, kept)  # drop a torn last line before appending to the file
    if not todo:
        log.info("rank %d/%d: nothing to decode (%d finished)", rank, world_size, len(finished))
        return 0
    latent_config = model.latent_config.overridden(config.latent)
    max_new = config.resolved_max_new_tokens(benchmark)
    log.info("rank %d/%d: decoding %d of %d items (%d already done), max_new_tokens=%d",
             rank, world_size, len(todo), len(items), len(finished), max_new)
    path.parent.mkdir(parents=True, exist_ok=True)
    batches = decode_batches(
        model, processor, todo, prompt_of=lambda pair: _prompt(pair[1], config), batch_size=config.batch_size,
        system_prompt=config.system_prompt, max_new_tokens=max_new, latent_config=latent_config,
        do_sample=config.do_sample, temperature=config.temperature, top_p=config.top_p,
        seed_of=(lambda rows: config.seed + todo[rows[0]][0]) if config.do_sample else None,
        progress=config.progress_bar, desc=f"eval {benchmark} [rank {rank}]")
    decoded = 0
    for batch in batches:
        rows = _rows_of(model, batch, todo, rank)
        _append_rows(path, rows)
        decoded += len(rows)
    return decoded


def _append_rows(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    """Append a batch's rows with one write + fsync (a kill leaves at most a torn last line, dropped on resume)."""
    data = "".join(json.dumps(r, default=str) + "\n" for r in rows)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def merge_predictions(out_dir: str | os.PathLike, items: Sequence[Item]) -> list[dict[str, Any]]:
    """Merge ``predictions.jsonl`` and all shard files by doc id into ``predictions.jsonl`` (doc order).

    The first row found per doc id wins (``predictions.jsonl`` first, then shard files by name); rows of doc ids not
    in ``items`` are left out. Raises if a doc id of ``items`` has no row.
    """
    out = Path(out_dir)
    by_id: dict[Any, dict[str, Any]] = {}
    for row in _existing_rows(out):
        by_id.setdefault(row.get("doc_id"), row)
    order = [doc_id_of(it) for it in items]
    missing = [d for d in order if d not in by_id]
    if missing:
        raise RuntimeError(f"{len(missing)} doc id(s) have no prediction after decoding, e.g. {missing[:5]}")
    merged = [by_id[d] for d in order]
    write_jsonl(out / PREDICTIONS, merged)
    return merged


def _run_config(
    benchmark: str, data_path: Any, items: Sequence[Item], config: EvalConfig, latent_config: LatentConfig
) -> dict[str, Any]:
    decode = {k: getattr(config, k) for k in _DECODE_KEYS}
    decode["max_new_tokens"] = config.resolved_max_new_tokens(benchmark)
    return {
        "benchmark": benchmark,
        "data_path": str(data_path),
        "data_fingerprint": data_fingerprint(items),
        "limit": config.limit,
        "decode": decode,
        "latent_config": latent_config.to_dict(),
    }


def _prepare_out_dir(out: Path, run_config: dict[str, Any], resume: bool) -> None:
    """Check a resumed run used the same decoding settings, or clear earlier outputs when not resuming."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / RUN_CONFIG
    if not resume:
        for name in (PREDICTIONS, SUMMARY):
            (out / name).unlink(missing_ok=True)
        shutil.rmtree(out / SHARD_DIR, ignore_errors=True)
    elif path.exists():
        old = json.loads(path.read_text())
        keys = ("benchmark", "data_fingerprint", "decode", "latent_config")
        diff = [k for k in keys if old.get(k) != run_config.get(k)]
        if diff:
            raise ValueError(
                f"{out} holds predictions made with different {diff}; use another out_dir or EvalConfig(resume=False)"
            )
    atomic_write_json(path, run_config)


def _Dist(accelerator: Any | None) -> ProcessGroup:
    """The shared process group; with ``WORLD_SIZE > 1`` and no accelerator, one is created (every process decodes
    its shard)."""
    if accelerator is None and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        from accelerate import Accelerator

        accelerator = Accelerator()
    return ProcessGroup(accelerator)


def evaluate(
    benchmark: str,
    model: torch.nn.Module,
    processor: Any,
    data_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    config: EvalConfig | None = None,
    *,
    judge_config: JudgeConfig | None = None,
    accelerator: Any | None = None,
) -> dict[str, Any]:
    """Evaluate ``model`` on ``benchmark`` (``"futurebench"`` or ``"twiffbench"``); returns the summary dict.

    Writes ``out_dir/{predictions.jsonl, summary.json, eval_config.json, rejects.jsonl, shards/…}`` (and
    ``judge_cache/`` for TwiFF-Bench). See the module docstring for resume and data-parallel behaviour.
    """
    _check_benchmark(benchmark)
    config = config or EvalConfig()
    out = Path(out_dir)
    if benchmark == "twiffbench":
        judge_config = judge_config or JudgeConfig.from_env()
        judge_config.resolved_base_url()  # fail before decoding, not after
        judge_config.resolved_model()
    dist = _Dist(accelerator)
    model = dist.place(model)
    t0 = time.perf_counter()
    all_items, rejects = _load_all(benchmark, data_path, config)
    items = spread_limit(all_items, config.limit)
    latent_config = model.latent_config.overridden(config.latent)
    if dist.is_main:
        _prepare_out_dir(out, _run_config(benchmark, data_path, all_items, config, latent_config), config.resume)
        write_rejects(rejects, out / "rejects.jsonl")
        if rejects:
            log.warning("%s: %d record(s) rejected, see %s", data_path, len(rejects), out / "rejects.jsonl")
    dist.barrier()
    t_decode = time.perf_counter()
    was_training = model.training
    model.eval()
    try:
        decoded = decode_shard(model, processor, items, out, config, rank=dist.rank, world_size=dist.world_size,
                               positions={doc_id_of(it): i for i, it in enumerate(all_items)})
    finally:
        model.train(was_training)
    decode_wall = time.perf_counter() - t_decode
    dist.barrier()
    summary: dict[str, Any] = {}
    if dist.is_main:
        records = merge_predictions(out, items)
        judge_stats = None
        if benchmark == "twiffbench":
            assert judge_config is not None
            records, judge_stats = judge_predictions(
                records, items, judge_config, cache_dir=out / "judge_cache", progress=config.progress_bar
            )
            write_jsonl(out / PREDICTIONS, records)
        summary = {
            "benchmark": benchmark,
            "data_path": str(data_path),
            "n_items": len(items),
            "n_predictions": len(records),
            "n_rejects": len(rejects),
            **summarize_predictions(records, benchmark),
            "config": config.to_dict(),
            "latent_config": latent_config.to_dict(),
            "run": {
                "world_size": dist.world_size,
                "decoded_this_run_rank0": decoded,
                "decode_wall_s_rank0": decode_wall,
                "wall_s": time.perf_counter() - t0,
                "device": str(getattr(model, "device", "cpu")),
                "timing_fields": list(TIMING_FIELDS),
            },
        }
        summary["scores_rejects_as_wrong"] = rejects_as_wrong(summary["scores"], benchmark, len(rejects))
        if judge_stats is not None:
            summary["judge"] = {"stats": judge_stats, "config": judge_config.to_dict()}  # type: ignore[union-attr]
        atomic_write_json(out / SUMMARY, summary)
        _log_summary(summary)
    dist.barrier()
    if not dist.is_main:
        summary = json.loads((out / SUMMARY).read_text())
    return summary


def evaluate_futurebench(
    model: torch.nn.Module,
    processor: Any,
    data_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    config: EvalConfig | None = None,
    *,
    accelerator: Any | None = None,
) -> dict[str, Any]:
    """Evaluate on FutureBench (JSON/JSONL or an HF dataset dir); see :func:`evaluate`."""
    return evaluate("futurebench", model, processor, data_path, out_dir, config, accelerator=accelerator)


def evaluate_twiffbench(
    model: torch.nn.Module,
    processor: Any,
    data_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    config: EvalConfig | None = None,
    judge_config: JudgeConfig | None = None,
    *,
    accelerator: Any | None = None,
) -> dict[str, Any]:
    """Evaluate on TwiFF-Bench (parquet shard(s)) and judge (``judge_config`` None → from the environment)."""
    return evaluate(
        "twiffbench", model, processor, data_path, out_dir, config, judge_config=judge_config, accelerator=accelerator
    )

