"""After decoding: judging TwiFF-Bench predictions, the summary scores (also with load-time rejects counted as
wrong) and the one-line log of a summary."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any


from fl1_core.data.records import TwiffBenchItem
from fl1_core.evaluation.futurebench import score_futurebench
from fl1_core.judge.client import judge_many
from fl1_core.judge.config import JudgeConfig, TwiffJudgeItem
from fl1_core.evaluation.latent_stats import inference_cost, latent_statistics
from fl1_core.judge.sanitize import split_reasoning_answer
from fl1_core.evaluation.twiffbench import score_twiffbench


from fl1_core.evaluation.eval_config import _check_benchmark

log = logging.getLogger(__name__)

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------------- judging
def judge_predictions(
    records: Sequence[Mapping[str, Any]],
    items: Sequence[TwiffBenchItem],
    judge_config: JudgeConfig,
    *,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Judge TwiFF-Bench predictions; returns (records with judge fields, judge stats).

    Model reasoning/answer come from :func:`split_reasoning_answer` of the raw response; the reference chain, its
    reasoning images and the ground truth from the item. Every row gets ``cot_score``/``answer_score`` or a
    ``judge_error`` (never dropped).
    """
    by_id = {it.doc_id: it for it in items}
    judge_items = []
    for rec in records:
        item = by_id[rec["doc_id"]]
        reasoning, answer = split_reasoning_answer(rec.get("response") or "")
        judge_items.append(
            TwiffJudgeItem(
                doc_id=item.doc_id,
                question=item.question_text,
                reference_reasoning=item.reference_chain,
                ground_truth=item.ground_truth,
                model_reasoning=reasoning,
                model_answer=answer,
                reference_images=list(item.reasoning_images),
            )
        )
    results, stats = judge_many(judge_items, judge_config, cache_dir=cache_dir, progress=progress, desc="judge twiff")
    if len(results) != len(records) or any(r["doc_id"] != rec["doc_id"] for r, rec in zip(results, records)):
        raise RuntimeError("judge results do not line up with the predictions (lost or reordered samples)")
    judged = []
    for rec, res in zip(records, results):
        row = dict(rec)
        row.update(
            cot_score=res.get("cot_score"),
            answer_score=res.get("answer_score"),
            raw_scores=res.get("raw_scores"),
            clamped=bool(res.get("clamped")),
            judge_error=res.get("judge_error"),
            judge_attempts=res.get("attempts"),
            judge_cached=res.get("cached"),
        )
        judged.append(row)
    return judged, stats.to_dict()


# ---------------------------------------------------------------------------------------------------- summary
def summarize_predictions(records: Sequence[Mapping[str, Any]], benchmark: str) -> dict[str, Any]:
    """The recomputable part of ``summary.json``: ``scores``, ``latent_stats`` and ``inference_cost``."""
    _check_benchmark(benchmark)
    scores = score_futurebench(records) if benchmark == "futurebench" else score_twiffbench(records)
    return {
        "scores": scores,
        "latent_stats": latent_statistics(records),
        "inference_cost": inference_cost(records),
    }



def rejects_as_wrong(scores: Mapping[str, Any], benchmark: str, n_rejects: int) -> dict[str, Any]:
    """Scores over the benchmark as published: records rejected at load time count as wrong (0) in the
    denominator, ``score · n / (n + n_rejects)`` (FutureBench: strict and faithful overall accuracy; TwiFF-Bench:
    CoT / answer / average with judge failures as 0)."""
    n = int(scores.get("n") or 0)
    total = n + int(n_rejects)

    def scaled(v: Any) -> float | None:
        return None if v is None or total == 0 else float(v) * n / total

    if benchmark == "futurebench":
        out = {mode: scaled((scores.get(mode) or {}).get("overall")) for mode in ("strict", "faithful")}
    else:
        zero = scores.get("failures_as_zero") or {}
        out = {k: scaled(zero.get(k)) for k in ("cot", "answer", "avg")}
    return {**out, "n": total, "n_rejects": int(n_rejects)}


def _log_summary(summary: Mapping[str, Any]) -> None:
    scores = summary["scores"]
    cost = summary["inference_cost"]
    if summary["benchmark"] == "futurebench":
        log.info("FutureBench: n=%d acc faithful=%s strict=%s; %.1f new tokens, %.3f s/sample",
                 scores["n"], scores["faithful"]["overall"], scores["strict"]["overall"],
                 cost["mean_new_tokens"] or 0.0, cost["mean_latency_s"] or 0.0)
    else:
        log.info("TwiFF-Bench: n=%d judged=%d failed=%d CoT=%s Ans=%s Avg=%s", scores["n"], scores["n_judged"],
                 scores["n_failed"], scores["cot"], scores["answer"], scores["avg"])


