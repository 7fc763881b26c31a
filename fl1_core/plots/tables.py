"""Tables: results with the paper's rows greyed out; FutureBench accuracy by hop per model stage."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go


from .style import (
    FIG_WIDTH,
    HEADER_COLOR,
    HOP_COLUMNS,
    PAPER_FONT_COLOR,
    PAPER_ROW_COLOR,
    STAGE_COLORS,
    WORKBOOK_ROW_COLORS,
    _as_frame,
    _color,
    _is_missing,
    _style,
)

# ----------------------------------------------------------------------------------------------- results table
def _is_paper_row(row: Mapping[str, Any]) -> bool:
    setting, source = row.get("setting"), row.get("source")
    return (isinstance(setting, str) and setting.strip().lower().startswith("paper")) or (
        isinstance(source, str) and source.strip().lower() == "paper")


def _format_cell(value: Any, digits: int) -> str:
    if _is_missing(value) or value is pd.NA:
        return ""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return str(int(v)) if v.is_integer() and abs(v) >= 1e3 else f"{v:.{digits}f}"
    return str(value)


def results_table(
    df: pd.DataFrame | Sequence[Mapping[str, Any]],
    title: str = "Results: workbook vs paper",
    *,
    digits: int = 2,
    drop_empty: bool = True,
    columns: Sequence[str] | None = None,
) -> go.Figure:
    """A plotly Table of a results DataFrame (e.g. :func:`fl1_core.evaluation.compare.comparison_table`'s first
    output). Paper rows (``setting`` starting with ``"paper"`` or ``source == "paper"``) get a grey fill
    (:data:`PAPER_ROW_COLOR`) and grey text; workbook rows alternate white / light blue. Floats are
    shown with ``digits`` decimals, missing cells empty; all-empty columns are dropped unless ``drop_empty=False``;
    ``columns`` selects and orders columns."""
    full = _as_frame(df)
    frame = full
    if columns is not None:
        missing = [c for c in columns if c not in full.columns]
        if missing:
            raise ValueError(f"results_table: unknown column(s) {missing} (have {list(full.columns)})")
        frame = full.loc[:, list(columns)]
    if drop_empty:
        frame = frame.loc[:, [c for c in frame.columns if frame[c].notna().any()]]
    records = full.to_dict("records")  # paper flags come from all columns, even ones not shown
    is_paper = [_is_paper_row(r) for r in records]
    fills, fonts = [], []
    k = 0
    for p in is_paper:
        if p:
            fills.append(PAPER_ROW_COLOR)
            fonts.append(PAPER_FONT_COLOR)
        else:
            fills.append(WORKBOOK_ROW_COLORS[k % 2])
            fonts.append("#000000")
            k += 1
    cols = [str(c) for c in frame.columns]
    cells = [[_format_cell(v, digits) for v in frame[c].tolist()] for c in frame.columns]
    numeric = [bool(pd.to_numeric(frame[c], errors="coerce").notna().sum()) and c not in ("setting", "model")
               for c in frame.columns]
    widths = [3.2 if c == "setting" else 1.6 if c in ("model", "benchmark", "extraction") else 1.0 for c in cols]
    fig = go.Figure(go.Table(
        columnwidth=widths,
        header={"values": [f"<b>{c}</b>" for c in cols], "fill_color": HEADER_COLOR,
                "font": {"color": "#FFFFFF", "size": 12}, "align": "center"},
        cells={"values": cells, "fill_color": [fills] * len(cols), "font": {"color": [fonts] * len(cols), "size": 11},
               "align": ["right" if n else "left" for n in numeric], "height": 24},
    ))
    n_paper = sum(is_paper)
    n_ours = len(is_paper) - n_paper
    sub = f"<br><sup>grey rows: paper's numbers ({n_paper}); other rows: this workbook ({n_ours})</sup>"
    longest = max([len(v) for col in cells for v in col] + [0])
    row_px = 26 if longest <= 40 else 44  # the setting column wraps to two lines
    _style(fig, title + sub, width=max(FIG_WIDTH, 95 * len(cols) + 200), height=130 + row_px * (len(records) + 1))
    fig.update_layout(margin={"l": 10, "r": 10, "t": 80, "b": 10})
    return fig


# ---------------------------------------------------------------------------------------------- accuracy by hop
def _hop_table(score: Mapping[str, Any], mode: str, stage: str) -> Mapping[str, Any]:
    if "scores" in score and isinstance(score["scores"], Mapping):  # a runner summary.json
        score = score["scores"]
    if mode in score and isinstance(score[mode], Mapping):
        block = score[mode]
        if "table" not in block:
            raise ValueError(f"stage {stage!r}: score[{mode!r}] has no 'table'")
        return block["table"]
    if "table" in score:
        return score["table"]
    if any(c in score for c in HOP_COLUMNS):
        return score
    raise ValueError(f"stage {stage!r}: expected a score_futurebench output with mode {mode!r} "
                     f"(keys {sorted(score)})")


def accuracy_by_hop(
    results: Mapping[str, Mapping[str, Any]],
    mode: str = "strict",
    *,
    paper: Mapping[str, Mapping[str, float]] | None = None,
    title: str = "FutureBench-style MCQ accuracy per hop split",
) -> go.Figure:
    """Grouped bars of MCQ accuracy (%) per split (1-hop, 2-hop, 3-hop, Interp., AVG), one bar per model stage.

    ``results``: ``{stage name: score_futurebench(...) output}`` (the ``mode`` block's ``table`` is used; a runner
    summary with ``"scores"`` or a bare table ``{"1-hop": …, "AVG": …}`` also works), in display order. Missing or
    ``None`` accuracies (empty splits) are gaps. ``paper`` optionally adds reference markers, e.g.
    ``{"paper: Future-L1-RL": {"1-hop": 83.2, …}}``, drawn as grey diamonds labelled as the paper's numbers.
    """
    if not results:
        raise ValueError("accuracy_by_hop needs at least one stage")
    fig = go.Figure()
    for i, (stage, score) in enumerate(results.items()):
        table = _hop_table(score, mode, stage)
        ys = [None if _is_missing(table.get(c)) else float(table[c]) for c in HOP_COLUMNS]
        fig.add_trace(go.Bar(x=list(HOP_COLUMNS), y=ys, name=stage, marker_color=STAGE_COLORS.get(stage, _color(i)),
                             text=[None if y is None else f"{y:.1f}" for y in ys], textposition="outside",
                             textfont={"size": 10}, meta={"stage": stage},
                             hovertemplate=f"{stage}: %{{y:.1f}}%<extra>%{{x}}</extra>"))
    symbols = ("diamond", "star", "triangle-up", "square")
    for j, (name, table) in enumerate((paper or {}).items()):
        label = name if name.lower().startswith("paper") else f"paper: {name}"
        ys = [None if _is_missing(table.get(c)) else float(table[c]) for c in HOP_COLUMNS]
        fig.add_trace(go.Scatter(x=list(HOP_COLUMNS), y=ys, name=label, mode="markers",
                                 marker={"symbol": symbols[j % len(symbols)], "size": 12, "color": "#555555",
                                         "line": {"width": 1, "color": "#FFFFFF"}},
                                 meta={"paper": name}, hovertemplate=f"{label}: %{{y:.1f}}%<extra>%{{x}}</extra>"))
    _style(fig, f"{title}<br><sup>extraction: {mode}; AVG = sample-weighted over all questions</sup>",
           barmode="group", xaxis_title="question split", yaxis_title="accuracy (%)",
           legend={"title": {"text": "model stage"}})
    fig.update_yaxes(range=[0, 105])
    fig.update_xaxes(type="category")
    return fig
