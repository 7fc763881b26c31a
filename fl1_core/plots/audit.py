"""Figures of the audit: probe quality per span index, the ablation table as bars, and latent vs pause vs
text-only SFT per group of question kinds. Inputs are the plain dicts of :func:`fl1_core.audit.run_audit`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .style import STAGE_COLORS, _color, _style

SOURCE_COLORS = {"latent SFT": STAGE_COLORS["latent SFT"], "frame embedding": "#009E73",
                 "text-only SFT": STAGE_COLORS["text-only SFT"], "untrained": "#7F7F7F"}
GROUP_LABELS = {"all": "all kinds", "text": "text-solvable", "vision": "vision-dependent",
                "group=text": "text-solvable", "group=vision": "vision-dependent"}


def _error(rows: Sequence[Mapping[str, Any]], value: str, low: str, high: str) -> dict[str, Any]:
    return {"type": "data", "symmetric": False, "array": [r[high] - r[value] for r in rows],
            "arrayminus": [r[value] - r[low] for r in rows]}


def probe_quality(probes: Sequence[Mapping[str, Any]], title: str = "Linear probes: world state from span vectors "
                  "(out-of-fold, clip-grouped)") -> go.Figure:
    """One panel per target; x = span index, y = R² (regression) or accuracy (classes), one line per source."""
    targets = list(dict.fromkeys(r["target"] for r in probes))
    fig = make_subplots(rows=1, cols=len(targets), subplot_titles=[
        f"{t} ({next(r['metric'] for r in probes if r['target'] == t)})" for t in targets])
    for col, target in enumerate(targets, start=1):
        for i, row in enumerate(r for r in probes if r["target"] == target):
            spans = sorted(row["per_span"], key=int)
            fig.add_scatter(x=[int(s) for s in spans], y=[row["per_span"][s]["score"] for s in spans],
                            mode="lines+markers", name=row["source"], legendgroup=row["source"],
                            showlegend=col == 1, row=1, col=col,
                            line={"color": SOURCE_COLORS.get(row["source"], _color(i))})
        fig.update_xaxes(title_text="span", dtick=1, row=1, col=col)
    return _style(fig, title, width=max(900, 300 * len(targets)))


def ablation_bars(rows: Sequence[Mapping[str, Any]], title: str | None = None, metric: str = "letter") -> go.Figure:
    """Grouped bars: one group per condition, one bar per subset (rows of :func:`fl1_core.audit.ablation_rows`);
    ``metric``: ``letter`` accuracy or the concluded ``event``."""
    keys = {"letter": ("accuracy", "ci_low", "ci_high"), "event": ("event_accuracy", "event_ci_low", "event_ci_high")}
    if metric not in keys:
        raise ValueError(f"unknown metric {metric!r}; expected one of {sorted(keys)}")
    value, low, high = keys[metric]
    label = "held-out MCQ accuracy" if metric == "letter" else "held-out MCQ event accuracy"
    fig = go.Figure()
    for i, subset in enumerate(dict.fromkeys(r["subset"] for r in rows)):
        part = [r for r in rows if r["subset"] == subset]
        fig.add_bar(name=GROUP_LABELS.get(subset, subset), x=[r["condition"] for r in part],
                    y=[r[value] for r in part], marker_color=_color(i), error_y=_error(part, value, low, high))
    fig.add_hline(y=0.25, line_dash="dot", line_color="grey", annotation_text="chance")
    fig.update_layout(barmode="group", yaxis={"range": [0, 1], "title": label})
    return _style(fig, title or f"Causal ablations: {label.removeprefix('held-out MCQ ')} with the fed-back latents "
                  "replaced (Wilson 95 % CI)")


def control_bars(comparison: Mapping[str, Mapping[str, Any]], title: str = "Latent vs pause-token vs text-only SFT "
                 "(Wilson 95 % CI)") -> go.Figure:
    """Bars per group of kinds, one per model (``pause_comparison`` of :func:`fl1_core.audit.run_audit`)."""
    fig = go.Figure()
    models = [m for m in ("text-only SFT", "pause SFT", "latent SFT") if m in comparison.get("all", {})]
    for i, model in enumerate(models):
        rows = [{"group": g, **comparison[g][model]} for g in ("all", "text", "vision") if g in comparison]
        rows = [{**r, "low": r["ci95"][0], "high": r["ci95"][1]} for r in rows]
        fig.add_bar(name=model, x=[GROUP_LABELS[r["group"]] for r in rows], y=[r["accuracy"] for r in rows],
                    marker_color=STAGE_COLORS.get(model, _color(i + 3)), error_y=_error(rows, "accuracy", "low", "high"))
    fig.add_hline(y=0.25, line_dash="dot", line_color="grey", annotation_text="chance")
    fig.update_layout(barmode="group", yaxis={"range": [0, 1], "title": "held-out MCQ accuracy"})
    return _style(fig, title)
