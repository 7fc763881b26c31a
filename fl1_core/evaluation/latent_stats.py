"""Latent-span statistics and inference cost of an evaluated checkpoint (docs/PAPER.md#paper-numbers: Fig. 4 and the cost table).

Everything here is computed from per-sample prediction rows (``predictions.jsonl`` of the evaluation runner), so a
summary can always be recomputed from its predictions. Fields read per row:

- ``split`` (else ``question_type``; rows without either fall in ``"all"``);
- ``span_counts`` (latents per closed span) or ``n_spans``; ``latent_tokens``;
- ``adjacent_span_cosines``: cosine between the mean latent vectors of spans k and k+1 (``None`` for a pair with a
  near-zero or empty span), computed during decoding with :func:`adjacent_span_cosines` so the vectors are not stored;
- ``new_tokens``, ``latency_s`` and, for FutureBench, ``correct_faithful`` / ``correct_strict``.

Donut data (Fig. 4): among responses with at least one span, the share with 1, 2, 3 and more than 3 spans; the
number of 0-span responses is reported separately (``n_zero``) and is not part of the donut.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch

__all__ = [
    "DONUT_BINS",
    "adjacent_span_cosines",
    "donut_bin",
    "inference_cost",
    "latent_statistics",
    "span_count_distribution",
]

DONUT_BINS = ("1", "2", "3", ">3")
_ALL = "all"


def adjacent_span_cosines(latents: torch.Tensor, span_counts: Sequence[int], eps: float = 1e-8) -> list[float | None]:
    """Cosine between the mean latent vectors of adjacent closed spans.

    ``latents`` [n, H] are a response's latent vectors in order; ``span_counts`` the latents per closed span (an
    unclosed trailing span, if any, is the remainder and is ignored). A pair involving an empty span or a mean with
    norm < ``eps`` gives ``None``. Fewer than two spans → ``[]``.
    """
    counts = [int(c) for c in span_counts]
    if len(counts) < 2:
        return []
    if sum(counts) > latents.shape[0]:
        raise ValueError(f"span_counts {counts} need {sum(counts)} latents, got {latents.shape[0]}")
    means: list[torch.Tensor | None] = []
    offset = 0
    for c in counts:
        block = latents[offset : offset + c].double()
        offset += c
        mean = block.mean(dim=0) if c else None
        means.append(mean if mean is not None and float(mean.norm()) >= eps else None)
    out: list[float | None] = []
    for a, b in zip(means[:-1], means[1:]):
        out.append(None if a is None or b is None else float(torch.nn.functional.cosine_similarity(a, b, dim=0)))
    return out


def donut_bin(n_spans: int) -> str | None:
    """``"1"``, ``"2"``, ``"3"`` or ``">3"``; ``None`` for 0 spans (reported separately)."""
    if n_spans <= 0:
        return None
    return str(n_spans) if n_spans <= 3 else ">3"


def _split_of(rec: Mapping[str, Any]) -> str:
    split = rec.get("split", rec.get("question_type"))
    return str(split) if split is not None else _ALL


def _n_spans(rec: Mapping[str, Any]) -> int:
    if rec.get("span_counts") is not None:
        return len(rec["span_counts"])
    return int(rec.get("n_spans") or 0)


def _mean(xs: Sequence[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def _group(records: Iterable[Mapping[str, Any]]) -> tuple[list[Mapping[str, Any]], dict[str, list[Mapping[str, Any]]]]:
    recs = list(records)
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for rec in recs:
        groups.setdefault(_split_of(rec), []).append(rec)
    return recs, dict(sorted(groups.items()))


def _distribution(recs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    spans = [_n_spans(r) for r in recs]
    counts = {b: 0 for b in DONUT_BINS}
    for s in spans:
        b = donut_bin(s)
        if b is not None:
            counts[b] += 1
    with_spans = sum(counts.values())
    nonzero = [s for s in spans if s > 0]
    return {
        "n": len(recs),
        "n_zero": sum(s == 0 for s in spans),
        "n_with_spans": with_spans,
        "counts": counts,
        "shares": {b: (c / with_spans if with_spans else None) for b, c in counts.items()},
        "mean_spans": _mean(spans),
        "mean_spans_with_latent": _mean(nonzero),
    }


def span_count_distribution(records: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Donut data per split and overall: ``{"per_split": {split: D}, "overall": D}``.

    ``D`` = ``n``, ``n_zero`` (0-span responses, outside the donut), ``n_with_spans``, ``counts`` and ``shares`` over
    the bins ``1, 2, 3, >3`` (shares of responses with ≥ 1 span; ``None`` when there are none), ``mean_spans``
    (over all responses, 0 included) and ``mean_spans_with_latent`` (over responses with ≥ 1 span — the paper's
    Fig. 4 convention, where every response uses latents).
    """
    recs, groups = _group(records)
    return {"per_split": {k: _distribution(v) for k, v in groups.items()}, "overall": _distribution(recs)}


def _cosine_block(recs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    pairs = [c for r in recs for c in (r.get("adjacent_span_cosines") or []) if c is not None]
    skipped = sum(c is None for r in recs for c in (r.get("adjacent_span_cosines") or []))
    per_response = [
        _mean([c for c in r["adjacent_span_cosines"] if c is not None])
        for r in recs
        if any(c is not None for c in (r.get("adjacent_span_cosines") or []))
    ]
    return {
        "mean_adjacent_cosine": _mean(pairs),
        "mean_adjacent_cosine_per_response": _mean([p for p in per_response if p is not None]),
        "n_pairs": len(pairs),
        "n_pairs_skipped": skipped,
    }


def _latent_block(recs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    tokens = [int(r.get("latent_tokens") or 0) for r in recs]
    span_sizes = [int(c) for r in recs for c in (r.get("span_counts") or [])]
    return {
        "mean_latent_tokens": _mean(tokens),
        "mean_latents_per_span": _mean(span_sizes),
        "n_spans_total": len(span_sizes),
        **_cosine_block(recs),
    }


def latent_statistics(records: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Span distributions (see :func:`span_count_distribution`) plus latent-token counts and adjacent-span cosines.

    ``mean_adjacent_cosine`` is pair-weighted over all defined adjacent pairs; ``…_per_response`` averages each
    response's mean first. Returned as ``{"distribution": …, "overall": {…}, "per_split": {split: {…}}}``.
    """
    recs, groups = _group(records)
    return {
        "donut_bins": list(DONUT_BINS),
        "distribution": span_count_distribution(recs),
        "overall": _latent_block(recs),
        "per_split": {k: _latent_block(v) for k, v in groups.items()},
    }


def inference_cost(records: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The paper's inference-cost table: mean new tokens, mean latency per sample (s) and accuracy per second.

    Accuracy (percent) is computed per extraction mode from ``correct_faithful`` / ``correct_strict`` when present,
    and ``accuracy_per_second_<mode>`` = accuracy / mean latency (percent points per second of latency per sample).
    """
    recs = list(records)
    latencies = [float(r["latency_s"]) for r in recs if r.get("latency_s") is not None]
    mean_latency = _mean(latencies)
    out: dict[str, Any] = {
        "n": len(recs),
        "mean_new_tokens": _mean([int(r.get("new_tokens") or 0) for r in recs]),
        "mean_latency_s": mean_latency,
        "total_latency_s": sum(latencies),
        "samples_per_second": (len(latencies) / sum(latencies)) if latencies and sum(latencies) > 0 else None,
    }
    for mode in ("faithful", "strict"):
        key = f"correct_{mode}"
        if recs and all(key in r for r in recs):
            acc = 100.0 * sum(bool(r[key]) for r in recs) / len(recs)
            out[f"accuracy_{mode}"] = acc
            out[f"accuracy_per_second_{mode}"] = acc / mean_latency if mean_latency else None
    return out
