"""Per-step curves: RL rewards and SFT losses, raw + EMA-smoothed, one colour per run."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .style import FIG_HEIGHT, FIG_WIDTH, STAGE_COLORS, _color, _is_missing, _style

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------------ step curves
def ema(values: Sequence[float], smooth: float) -> list[float]:
    """Exponential moving average: ``s_0 = x_0``, ``s_t = a·s_{t−1} + (1 − a)·x_t`` with ``a = smooth`` ∈ [0, 1)."""
    if not 0.0 <= smooth < 1.0:
        raise ValueError(f"smooth must be in [0, 1), got {smooth}")
    out: list[float] = []
    for v in values:
        out.append(float(v) if not out else smooth * out[-1] + (1.0 - smooth) * float(v))
    return out


def _series(rows: Sequence[Mapping[str, Any]], key: str) -> tuple[list[float], list[float]]:
    pts = []
    for i, r in enumerate(rows):
        v = r.get(key)
        if _is_missing(v) or isinstance(v, (str, bool, list, dict)):
            continue
        step = r.get("step", i)
        pts.append((float(step), float(v)))
    pts.sort(key=lambda p: p[0])
    return [p[0] for p in pts], [p[1] for p in pts]


def _as_runs(runs: Mapping[str, Sequence[Mapping[str, Any]]] | Sequence[Mapping[str, Any]],
             default: str) -> dict[str, list[Mapping[str, Any]]]:
    if isinstance(runs, Mapping):
        return {str(k): list(v) for k, v in runs.items()}
    return {default: list(runs)}


_METRIC_TITLES = {
    "reward/acc": "accuracy reward",
    "reward/overall": "overall reward",
    "reward/fmt": "format reward",
    "reward/acc_all": "accuracy reward (all drawn)",
    "reward/overall_all": "overall reward (all drawn)",
    "reward/fmt_all": "format reward (all drawn)",
    "loss/total": "total loss (CE + λ·MSE)",
    "loss/ce": "cross-entropy loss",
    "loss/latent": "latent MSE loss",
}


def _curves(
    runs: dict[str, list[Mapping[str, Any]]],
    keys: Sequence[str],
    smooth: float,
    title: str,
    y_title: str,
) -> go.Figure:
    keys = list(keys)
    if not keys:
        raise ValueError("need at least one metric key")
    ema([], smooth)  # validates smooth
    fig = make_subplots(rows=1, cols=len(keys), subplot_titles=[_METRIC_TITLES.get(k, k) for k in keys],
                        horizontal_spacing=0.08 if len(keys) > 1 else 0.0)
    for i, (name, rows) in enumerate(runs.items()):
        color = STAGE_COLORS.get(name, _color(i))
        legend_shown = False
        any_data = False
        for col, key in enumerate(keys, start=1):
            steps, vals = _series(rows, key)
            if not vals:
                continue
            any_data = True
            if smooth > 0:
                fig.add_trace(go.Scatter(x=steps, y=vals, mode="lines", name=f"{name} (raw)", legendgroup=name,
                                         showlegend=False, opacity=0.3, line={"color": color, "width": 1},
                                         meta={"run": name, "metric": key, "kind": "raw"},
                                         hovertemplate=f"{name} raw {key}: %{{y:.4f}}<extra>step %{{x}}</extra>"),
                              row=1, col=col)
                ys, kind, width = ema(vals, smooth), "smoothed", 2.5
            else:
                ys, kind, width = vals, "raw", 2.0
            fig.add_trace(go.Scatter(x=steps, y=ys, mode="lines", name=name, legendgroup=name,
                                     showlegend=not legend_shown, line={"color": color, "width": width},
                                     meta={"run": name, "metric": key, "kind": kind},
                                     hovertemplate=f"{name} {key}: %{{y:.4f}}<extra>step %{{x}}</extra>"),
                          row=1, col=col)
            legend_shown = True
        if not any_data:
            log.warning("run %r has no values for any of %s; not plotted", name, keys)
    sub = f"<br><sup>thin: raw per step; thick: EMA (smoothing {smooth:g})</sup>" if smooth > 0 else ""
    _style(fig, title + sub, width=max(FIG_WIDTH, 330 * len(keys)), height=FIG_HEIGHT,
           legend={"title": {"text": "run"}})
    fig.update_layout(margin={"t": 100})
    fig.update_xaxes(title_text="step")
    fig.update_yaxes(title_text=y_title, row=1, col=1)
    return fig


def reward_curves(
    runs: Mapping[str, Sequence[Mapping[str, Any]]] | Sequence[Mapping[str, Any]],
    metrics: Sequence[str] = ("reward/acc", "reward/overall", "reward/fmt"),
    smooth: float = 0.8,
    *,
    title: str = "RL rewards per step",
) -> go.Figure:
    """Reward curves per RL step: one subplot per metric, one colour per run (raw thin + EMA thick).

    ``runs``: ``{run/mode name: rows of its metrics.jsonl}`` (each row with ``step`` and metric keys such as
    ``reward/acc``, ``reward/overall``, ``reward/fmt``: :mod:`fl1_core.metrics`); a plain list of rows is one run named ``"run"``. Rows missing a metric (or with
    ``None``/NaN) are skipped for that metric. ``smooth`` is the EMA weight (0 = raw only), see :func:`ema`.
    """
    return _curves(_as_runs(runs, "run"), metrics, smooth, title, "reward")


def training_curves(
    rows: Mapping[str, Sequence[Mapping[str, Any]]] | Sequence[Mapping[str, Any]],
    keys: Sequence[str] = ("loss/total", "loss/ce", "loss/latent"),
    smooth: float = 0.0,
    *,
    title: str = "SFT training curves",
) -> go.Figure:
    """SFT losses per optimizer step: one subplot per key; ``rows`` = one metrics.jsonl (list of rows, run named
    ``"SFT"``) or ``{run name: rows}`` to overlay runs. ``smooth`` > 0 adds EMA curves over translucent raw ones."""
    return _curves(_as_runs(rows, "SFT"), keys, smooth, title, "loss")
