"""The paper's figures: Fig. 4 latent-span donuts by reasoning depth, Fig. 5 RL data scaling."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots


from .style import BIN_COLORS, BIN_LABELS, EMPTY_COLOR, FIG_WIDTH, SCORE_COLORS, SPLIT_LABELS, _is_missing, _style

# ------------------------------------------------------------------------------------------------ Fig. 4 donuts
def _split_order(per_split: Mapping[str, Any]) -> list[str]:
    known = [s for s in SPLIT_LABELS if s in per_split]
    known += [s for s in per_split if s in SPLIT_LABELS.values() and s not in known]
    others = [s for s in per_split if s not in known and s != "all"]
    order = known + others
    if not order and "all" in per_split:
        order = ["all"]
    return order


def latent_span_donuts(
    dist: Mapping[str, Any],
    *,
    mean_over: str = "with_latent",
    include_overall: bool = False,
    title: str = "Latent-span usage by reasoning depth",
) -> go.Figure:
    """Fig. 4: one donut per hop split with the share of responses using 1, 2, 3, >3 latent spans.

    ``dist`` is :func:`fl1_core.evaluation.latent_stats.span_count_distribution`'s output
    (``{"per_split": {split: D}, "overall": D}``, ``D`` with ``n``, ``n_zero``, ``counts`` {"1","2","3",">3"},
    ``mean_spans``, ``mean_spans_with_latent``). The donut hole shows the mean spans per response —
    ``mean_over="with_latent"`` (responses with ≥ 1 span, the paper's convention) or ``"all"`` (0-span included);
    each donut's subtitle reports ``n`` and the 0-span responses left out of the donut. A split without responses
    (or without any span) is drawn as an empty grey ring.
    """
    if mean_over not in ("with_latent", "all"):
        raise ValueError(f"mean_over must be 'with_latent' or 'all', got {mean_over!r}")
    per_split = dict(dist.get("per_split") or {})
    panels: list[tuple[str, Mapping[str, Any]]] = [
        (SPLIT_LABELS.get(s, s), per_split[s]) for s in _split_order(per_split)
    ]
    if (include_overall or not panels) and dist.get("overall") is not None:
        panels.append(("All", dist["overall"]))
    if not panels:
        raise ValueError("span distribution has no splits and no 'overall' entry")

    subtitles = []
    for label, d in panels:
        subtitles.append(f"<b>{label}</b><br><sup>n = {int(d.get('n') or 0)} · 0-span responses: "
                         f"{int(d.get('n_zero') or 0)}</sup>")
    fig = make_subplots(rows=1, cols=len(panels), specs=[[{"type": "domain"}] * len(panels)],
                        subplot_titles=subtitles)
    key = "mean_spans_with_latent" if mean_over == "with_latent" else "mean_spans"
    empty_legend_shown = False
    for col, (label, d) in enumerate(panels, start=1):
        counts = d.get("counts") or {}
        values = [int(counts.get(b) or 0) for b in BIN_LABELS]
        if sum(values) == 0:
            fig.add_trace(go.Pie(labels=["no latent spans"], values=[1], hole=0.6, sort=False,
                                 marker={"colors": [EMPTY_COLOR]}, textinfo="none", name=label,
                                 hovertemplate=f"{label}: no responses with latent spans<extra></extra>",
                                 showlegend=not empty_legend_shown), row=1, col=col)
            empty_legend_shown = True
        else:
            fig.add_trace(go.Pie(labels=list(BIN_LABELS.values()), values=values, hole=0.6, sort=False,
                                 direction="clockwise", marker={"colors": list(BIN_COLORS.values())},
                                 texttemplate=[("%{percent:.0%}" if v else "") for v in values], name=label,
                                 hovertemplate=f"{label}<br>%{{label}}: %{{value}} responses (%{{percent}})"
                                 "<extra></extra>"), row=1, col=col)
        mean = d.get(key)
        trace = fig.data[-1]
        x0, x1 = trace.domain.x
        y0, y1 = trace.domain.y
        text = "n = 0" if not d.get("n") else ("–" if mean is None else f"<b>{mean:.2f}</b><br>spans / resp.")
        fig.add_annotation(x=(x0 + x1) / 2, y=(y0 + y1) / 2, xref="paper", yref="paper", text=text,
                           xanchor="center", yanchor="middle", showarrow=False, font={"size": 15}, name=f"mean:{label}")
    suffix = "responses with ≥ 1 span" if mean_over == "with_latent" else "all responses"
    _style(fig, f"{title}<br><sup>shares among responses with ≥ 1 latent span; hole: mean spans per response "
                f"({suffix})</sup>", width=max(FIG_WIDTH, 260 * len(panels)), height=420,
           legend={"orientation": "h", "y": -0.08, "x": 0.5, "xanchor": "center", "traceorder": "normal"})
    fig.update_layout(margin={"t": 120})
    return fig


# --------------------------------------------------------------------------------------------- Fig. 5 scaling
def _size_label(size: Any) -> str:
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        s = int(size)
        if s >= 1000 and s % 1000 == 0:
            return f"{s // 1000}K"
        if s >= 1000 and s % 100 == 0:
            return f"{s / 1000:.1f}K"
        return str(s)
    return str(size)


def rl_data_scaling(
    rows: Sequence[Mapping[str, Any]],
    *,
    title: str = "RL data scaling",
    y_range: tuple[float, float] | None = None,
) -> go.Figure:
    """Fig. 5: grouped CoT / Ans / Avg bars per RL data size with a line over Avg.

    ``rows``: ``[{"size": int | str, "cot": float, "answer": float, "avg": float}, …]`` (judge scores, 0–5). Rows
    with integer sizes are sorted by size; string sizes keep the given order. Missing scores are gaps.
    """
    rows = list(rows)
    if not rows:
        raise ValueError("rl_data_scaling needs at least one row")
    for i, r in enumerate(rows):
        if "size" not in r:
            raise ValueError(f"rl_data_scaling row {i}: missing field 'size'")
    if all(isinstance(r["size"], (int, np.integer)) for r in rows):
        rows = sorted(rows, key=lambda r: int(r["size"]))
    labels = [_size_label(r["size"]) for r in rows]
    # a linear x axis with one tick per size, so the Avg line can sit exactly over the Avg bars
    x = list(range(len(rows)))
    bargap, n_bars = 0.2, 3
    avg_offset = (1 - bargap) / n_bars  # centre of the 3rd bar of a group relative to the group centre
    fig = go.Figure()
    for key, label in (("cot", "CoT"), ("answer", "Ans"), ("avg", "Avg")):
        ys = [None if _is_missing(r.get(key)) else float(r[key]) for r in rows]
        fig.add_trace(go.Bar(x=x, y=ys, name=label, marker_color=SCORE_COLORS[label], customdata=labels,
                             text=[None if y is None else f"{y:.2f}" for y in ys], textposition="inside",
                             insidetextanchor="middle", textfont={"color": "#FFFFFF"},
                             hovertemplate=f"{label}: %{{y:.3f}}<extra>%{{customdata}}</extra>"))
    avg = [None if _is_missing(r.get("avg")) else float(r["avg"]) for r in rows]
    fig.add_trace(go.Scatter(x=[i + avg_offset for i in x], y=avg, name="Avg (trend)", mode="lines+markers+text",
                             text=[None if y is None else f"{y:.2f}" for y in avg], textposition="top center",
                             customdata=labels, line={"color": "#000000", "width": 2, "dash": "dot"},
                             marker={"size": 8}, hovertemplate="Avg: %{y:.3f}<extra>%{customdata}</extra>"))
    _style(fig, title, barmode="group", bargap=bargap, bargroupgap=0.0, xaxis_title="RL training samples",
           yaxis_title="judge score (0–5)",
           legend={"orientation": "h", "y": 1.02, "x": 1, "xanchor": "right", "yanchor": "bottom"})
    fig.update_xaxes(tickmode="array", tickvals=x, ticktext=labels, range=[-0.5, len(rows) - 0.5])
    top = max([v for r in rows for v in (r.get("cot"), r.get("answer"), r.get("avg")) if not _is_missing(v)],
              default=5.0)
    fig.update_yaxes(range=[0, top * 1.15 if top > 0 else 1.0])
    if y_range is not None:
        fig.update_yaxes(range=list(y_range))
    return fig
