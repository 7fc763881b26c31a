"""Our numbers next to the paper's (docs/PAPER.md#paper-numbers), each row labelled with its setting so nobody mistakes one for the other.

Paper rows are Qwen3-VL-8B-based models on the real FutureBench / TwiFF-Bench; workbook rows are whatever
checkpoint was evaluated here (by default: the tiny Qwen3-VL on the synthetic world). One row per
(setting, model, benchmark); FutureBench rows carry accuracies (percent) and the inference cost, TwiFF-Bench rows the
judge scores (0–5). Cells that a source does not report are empty (``None``), never 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

__all__ = [
    "COLUMNS",
    "PAPER_BASELINE_SETTING",
    "PAPER_FUTUREBENCH_SETTING",
    "PAPER_TWIFFBENCH_SETTING",
    "PAPER_FUTUREBENCH",
    "PAPER_INFERENCE_COST",
    "PAPER_TWIFFBENCH",
    "WORKBOOK_SETTING",
    "comparison_table",
    "paper_rows",
    "to_markdown",
    "workbook_rows",
]

PAPER_FUTUREBENCH_SETTING = "paper: Qwen3-VL-8B on FutureBench (real benchmark)"
PAPER_BASELINE_SETTING = "paper: reported baseline on FutureBench (real benchmark)"
PAPER_TWIFFBENCH_SETTING = "paper: Qwen3-VL-8B on TwiFF-Bench (real benchmark)"
WORKBOOK_SETTING = "workbook: tiny Qwen3-VL on the synthetic world"

# The paper's headline numbers (docs/PAPER.md#paper-numbers). FutureBench accuracies in percent; per-hop numbers are only given for Future-L1-RL.
PAPER_FUTUREBENCH: dict[str, dict[str, float]] = {
    "Qwen3-VL-8B": {"AVG": 61.0},
    "Video-CoE": {"AVG": 75.0},
    "Future-L1-SFT": {"AVG": 73.2},
    "Future-L1-RL": {"1-hop": 83.2, "2-hop": 86.5, "3-hop": 86.6, "Interp.": 85.1, "AVG": 85.4},
}
# TwiFF-Bench judge scores (0–5); CoT / Ans only given for Future-L1-RL.
PAPER_TWIFFBENCH: dict[str, dict[str, float]] = {
    "Qwen3-VL-8B": {"TwiFF Avg": 2.44},
    "Future-L1-SFT": {"TwiFF Avg": 2.52},
    "Future-L1-RL": {"TwiFF CoT": 3.11, "TwiFF Ans": 2.97, "TwiFF Avg": 3.04},
}
# Inference cost on FutureBench: mean new tokens and seconds per sample.
PAPER_INFERENCE_COST: dict[str, dict[str, float]] = {
    "Qwen3-VL-8B": {"tokens": 288.8, "latency_s": 1.18},
    "Future-L1-RL": {"tokens": 195.3, "latency_s": 0.91},
}

COLUMNS = (
    "setting",
    "source",
    "model",
    "benchmark",
    "extraction",
    "n",
    "1-hop",
    "2-hop",
    "3-hop",
    "Interp.",
    "AVG",
    "TwiFF CoT",
    "TwiFF Ans",
    "TwiFF Avg",
    "judge failures",
    "tokens",
    "latency_s",
    "acc_per_s",
)


def _row(**values: Any) -> dict[str, Any]:
    row = {c: None for c in COLUMNS}
    unknown = set(values) - set(COLUMNS)
    if unknown:
        raise ValueError(f"unknown comparison column(s) {sorted(unknown)}")
    row.update(values)
    return row


def paper_rows() -> list[dict[str, Any]]:
    """The paper's rows (docs/PAPER.md#paper-numbers). FutureBench extraction is the release's ("faithful"); ``acc_per_s`` is derived
    here as AVG / latency where the paper gives a latency."""
    rows = []
    for model, acc in PAPER_FUTUREBENCH.items():
        cost = PAPER_INFERENCE_COST.get(model, {})
        acc_per_s = acc["AVG"] / cost["latency_s"] if cost else None
        setting = PAPER_BASELINE_SETTING if model == "Video-CoE" else PAPER_FUTUREBENCH_SETTING
        rows.append(_row(setting=setting, source="paper", model=model, benchmark="FutureBench",
                         extraction="faithful (release)", **acc, tokens=cost.get("tokens"),
                         latency_s=cost.get("latency_s"), acc_per_s=acc_per_s))
    for model, scores in PAPER_TWIFFBENCH.items():
        rows.append(_row(setting=PAPER_TWIFFBENCH_SETTING, source="paper", model=model, benchmark="TwiFF-Bench",
                         **scores))
    return rows


def workbook_rows(
    futurebench: Mapping[str, Mapping[str, Any]] | None = None,
    twiffbench: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    setting: str = WORKBOOK_SETTING,
    mode: str = "strict",
) -> list[dict[str, Any]]:
    """Rows from runner summaries: ``{model label: summary.json dict}`` per benchmark (``mode`` = extraction)."""
    rows = []
    for model, summary in (futurebench or {}).items():
        scores = summary["scores"][mode]
        cost = summary.get("inference_cost", {})
        table = scores["table"]
        rows.append(_row(
            setting=f"{setting} (FutureBench-style)", source="workbook", model=model, benchmark="FutureBench",
            extraction=mode, n=scores["n"], **{k: table.get(k) for k in ("1-hop", "2-hop", "3-hop", "Interp.", "AVG")},
            tokens=cost.get("mean_new_tokens"), latency_s=cost.get("mean_latency_s"),
            acc_per_s=cost.get(f"accuracy_per_second_{mode}"),
        ))
    for model, summary in (twiffbench or {}).items():
        scores = summary["scores"]
        cost = summary.get("inference_cost", {})
        rows.append(_row(
            setting=f"{setting} (TwiFF-Bench-style)", source="workbook", model=model, benchmark="TwiFF-Bench",
            n=scores["n"], **{"TwiFF CoT": scores["cot"], "TwiFF Ans": scores["answer"], "TwiFF Avg": scores["avg"],
                              "judge failures": scores["n_failed"]},
            tokens=cost.get("mean_new_tokens"), latency_s=cost.get("mean_latency_s"),
        ))
    return rows


def _fmt(value: Any, digits: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value).replace("|", "\\|")


def to_markdown(df: pd.DataFrame, digits: int = 2, drop_empty: bool = True) -> str:
    """A GitHub-style markdown table of ``df`` (empty cells for missing values; all-empty columns dropped)."""
    if drop_empty:
        df = df.loc[:, [c for c in df.columns if df[c].notna().any()]]
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for _, row in df.iterrows():
        lines.append("| " + " | ".join(_fmt(None if pd.isna(row[c]) else row[c], digits) for c in cols) + " |")
    return "\n".join(lines)


def comparison_table(
    futurebench: Mapping[str, Mapping[str, Any]] | None = None,
    twiffbench: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    setting: str = WORKBOOK_SETTING,
    mode: str = "strict",
    include_paper: bool = True,
    extra_rows: Sequence[Mapping[str, Any]] = (),
    digits: int = 2,
) -> tuple[pd.DataFrame, str]:
    """Paper rows then ours → ``(DataFrame with COLUMNS, markdown string)``.

    ``futurebench`` / ``twiffbench`` map a model label (e.g. ``"latent SFT"``) to the summary returned by
    :func:`fl1_core.evaluation.runner.evaluate_futurebench` / ``evaluate_twiffbench``. ``setting`` names where our
    numbers come from (change it for a real checkpoint on the real benchmarks). ``extra_rows`` are appended as given
    (keys from :data:`COLUMNS`).
    """
    rows = paper_rows() if include_paper else []
    rows += workbook_rows(futurebench, twiffbench, setting=setting, mode=mode)
    rows += [_row(**dict(r)) for r in extra_rows]
    df = pd.DataFrame(rows, columns=list(COLUMNS), dtype=object)
    return df, to_markdown(df, digits=digits)
