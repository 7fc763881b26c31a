"""FutureBench accuracy (docs/PAPER.md#evaluation): micro (sample-weighted) overall, per split, macro; both extraction modes.

All accuracies are PERCENTAGES (0–100), like the paper's tables. An empty split is reported with ``n = 0`` and
accuracy ``None`` (not 0) and is left out of the macro mean.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from fl1_core.answers import EXTRACTION_MODES, extract_answer_letter

__all__ = ["FUTUREBENCH_SPLITS", "SPLIT_LABELS", "score_futurebench"]

FUTUREBENCH_SPLITS = ("hop1", "hop2", "hop3", "hop5")
SPLIT_LABELS = {"hop1": "1-hop", "hop2": "2-hop", "hop3": "3-hop", "hop5": "Interp."}


def _pct(correct: int, n: int) -> float | None:
    return 100.0 * correct / n if n else None


def _gold(rec: Mapping[str, Any], idx: int) -> str:
    gold = rec.get("answer")
    if gold is None and isinstance(rec.get("qa"), Mapping):
        gold = rec["qa"].get("Answer")
    if not isinstance(gold, str) or gold.strip().upper() not in ("A", "B", "C", "D"):
        rid = rec.get("id", rec.get("doc_id", idx))
        raise ValueError(f"FutureBench record {rid!r}: field 'answer' must be one option letter A-D, got {gold!r}")
    return gold.strip().upper()


def _prediction(rec: Mapping[str, Any], mode: str, idx: int) -> str:
    pre = rec.get(f"pred_{mode}")
    if pre is not None:
        return str(pre).strip().upper()
    if "response" not in rec:
        rid = rec.get("id", rec.get("doc_id", idx))
        raise ValueError(f"FutureBench record {rid!r}: needs 'response' or 'pred_{mode}'")
    return extract_answer_letter(rec["response"] or "", mode=mode)


def score_futurebench(records: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Score FutureBench records (``question_type``, ``answer`` and ``response`` or ``pred_faithful``/``pred_strict``).

    Returns ``{"unit": "percent", "n": N, "split_labels": …, "faithful": M, "strict": M}`` where each ``M`` holds
    ``overall`` (micro accuracy), ``macro`` (mean over non-empty splits), ``per_split`` (``{split: {"label", "n",
    "correct", "accuracy"}}``), ``n``, ``correct``, ``n_empty`` (no letter extracted) and ``table`` (display row:
    ``{"1-hop", "2-hop", "3-hop", "Interp.", "AVG"}``).
    """
    recs = list(records)
    out: dict[str, Any] = {"unit": "percent", "n": len(recs), "split_labels": dict(SPLIT_LABELS)}
    types: list[str] = []
    golds: list[str] = []
    for i, rec in enumerate(recs):
        qt = rec.get("question_type")
        if qt not in SPLIT_LABELS:
            rid = rec.get("id", rec.get("doc_id", i))
            raise ValueError(
                f"FutureBench record {rid!r}: field 'question_type' must be one of {FUTUREBENCH_SPLITS}, got {qt!r}"
            )
        types.append(qt)
        golds.append(_gold(rec, i))
    for mode in EXTRACTION_MODES:
        preds = [_prediction(rec, mode, i) for i, rec in enumerate(recs)]
        per_split: dict[str, dict[str, Any]] = {}
        for split in FUTUREBENCH_SPLITS:
            idx = [i for i, t in enumerate(types) if t == split]
            correct = sum(preds[i] == golds[i] for i in idx)
            per_split[split] = {
                "label": SPLIT_LABELS[split],
                "n": len(idx),
                "correct": int(correct),
                "accuracy": _pct(correct, len(idx)),
            }
        total_correct = sum(p == g for p, g in zip(preds, golds))
        non_empty = [s["accuracy"] for s in per_split.values() if s["n"]]
        overall = _pct(total_correct, len(recs))
        table: dict[str, float | None] = {SPLIT_LABELS[k]: v["accuracy"] for k, v in per_split.items()}
        table["AVG"] = overall
        out[mode] = {
            "overall": overall,
            "macro": sum(non_empty) / len(non_empty) if non_empty else None,
            "per_split": per_split,
            "n": len(recs),
            "correct": int(total_correct),
            "n_empty": sum(p == "" for p in preds),
            "table": table,
        }
    return out
