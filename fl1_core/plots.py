"""Every figure of the workbook (SPEC §7, issue 7) as pure functions from plain data to plotly figures.

Each ``*`` function below takes plain Python / pandas / numpy data and returns a ``plotly.graph_objects.Figure``;
nothing here reads or writes files except :func:`save_figure`, which writes ``<name>.html`` (interactive,
self-contained) and ``<name>.png`` (static, via kaleido + Chrome/Chromium; falls back to HTML only with one warning).

Figures:

- :func:`latent_span_donuts` — Fig. 4, latent-span usage by reasoning depth (one donut per hop split);
- :func:`rl_data_scaling` — Fig. 5, CoT / Ans / Avg judge scores per RL data size (bars + a line over Avg);
- :func:`reward_curves` — RL rewards per step, raw + EMA-smoothed, one colour per run;
- :func:`training_curves` — SFT losses per step;
- :func:`latent_tsne` — t-SNE of prompt text / prompt vision hidden states and latent spans;
- :func:`visual_gain_distribution` — visual gain ``P_v − P_t`` of kept vs dropped curation samples;
- :func:`results_table` — a results table with the paper's rows greyed out;
- :func:`accuracy_by_hop` — FutureBench MCQ accuracy per hop split for each model stage.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from fl1_core.runs import atomic_write_bytes, atomic_write_text

__all__ = [
    "BIN_COLORS",
    "BIN_LABELS",
    "COLORWAY",
    "FIG_HEIGHT",
    "FIG_WIDTH",
    "HOP_COLUMNS",
    "PAPER_ROW_COLOR",
    "PNG_HELP",
    "STAGE_COLORS",
    "TEMPLATE",
    "TSNE_EXACT_MAX",
    "accuracy_by_hop",
    "ema",
    "latent_span_donuts",
    "latent_tsne",
    "results_table",
    "reward_curves",
    "rl_data_scaling",
    "save_figure",
    "shared_plotlyjs",
    "training_curves",
    "visual_gain_distribution",
]

log = logging.getLogger(__name__)

# ----------------------------------------------------------------------------------------------------------- style
TEMPLATE = "plotly_white"
FIG_WIDTH = 900
FIG_HEIGHT = 450
# Okabe–Ito-like qualitative palette (colour-blind friendly), used in order for runs / groups without a fixed colour.
COLORWAY = (
    "#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000",
    "#8C564B", "#7F7F7F",
)
# Fixed colours of the model stages of the workbook (accuracy_by_hop, results).
STAGE_COLORS: dict[str, str] = {
    "base": "#7F7F7F",
    "text-only SFT": "#56B4E9",
    "latent SFT": "#0072B2",
    "GRPO": "#E69F00",
    "DAPO": "#D55E00",
    "LA-DAPO": "#009E73",
}
# Donut bins of Fig. 4 (keys = fl1_core.evaluation.latent_stats.DONUT_BINS).
BIN_LABELS: dict[str, str] = {"1": "1 span", "2": "2 spans", "3": "3 spans", ">3": ">3 spans"}
BIN_COLORS: dict[str, str] = {"1": "#C6DBEF", "2": "#6BAED6", "3": "#2171B5", ">3": "#08306B"}
SCORE_COLORS: dict[str, str] = {"CoT": "#56B4E9", "Ans": "#E69F00", "Avg": "#009E73"}
KEPT_COLOR = "#009E73"
DROPPED_COLOR = "#7F7F7F"
EMPTY_COLOR = "#E5E5E5"
PAPER_ROW_COLOR = "#E0E0E0"
PAPER_FONT_COLOR = "#555555"
WORKBOOK_ROW_COLORS = ("#FFFFFF", "#F3F8FC")
HEADER_COLOR = "#0072B2"

# FutureBench splits (raw question_type → display label), same as fl1_core.evaluation.futurebench.SPLIT_LABELS.
SPLIT_LABELS: dict[str, str] = {"hop1": "1-hop", "hop2": "2-hop", "hop3": "3-hop", "hop5": "Interp."}
HOP_COLUMNS = ("1-hop", "2-hop", "3-hop", "Interp.", "AVG")
from fl1_core.evaluation.tsne import TSNE_EXACT_MAX  # noqa: E402,F401  (its home; the earlier name stays)

PNG_HELP = (
    "static PNG export needs Chrome/Chromium: install it, e.g. `apt-get install chromium`, "
    "or set BROWSER_PATH to a Chrome/Chromium binary"
)
_png_warned = False


def _color(i: int) -> str:
    return COLORWAY[i % len(COLORWAY)]


def _style(fig: go.Figure, title: str, *, width: int = FIG_WIDTH, height: int = FIG_HEIGHT, **layout: Any) -> go.Figure:
    fig.update_layout(template=TEMPLATE, title={"text": title, "x": 0.01, "xanchor": "left"}, width=width,
                      height=height, margin={"l": 60, "r": 30, "t": 80, "b": 60}, **layout)
    return fig


def _is_missing(v: Any) -> bool:
    if v is None:
        return True
    try:
        return bool(isinstance(v, (float, np.floating)) and math.isnan(v))
    except TypeError:
        return False


# ------------------------------------------------------------------------------------------------------------ save
STATIC_DIR = "_static"  # beside a run's figures/ and report/: one plotly.js for both
PLOTLY_JS = "plotly.min.js"


def shared_plotlyjs(folder: str | Path) -> Path:
    """``<folder>/plotly.min.js`` (the installed plotly's bundle), written once; returns its path."""
    path = Path(folder) / PLOTLY_JS
    if not path.exists():
        from plotly.offline import get_plotlyjs

        atomic_write_text(path, get_plotlyjs())
    return path


def save_figure(
    fig: go.Figure,
    out_dir: str | Path,
    name: str,
    *,
    include_plotlyjs: bool | str = "shared",
    scale: float = 2.0,
) -> dict[str, Any]:
    """Write ``<out_dir>/<name>.html``, ``<name>.json`` (the figure, for the run report) and ``<name>.png``
    atomically.

    ``include_plotlyjs``: ``"shared"`` (default) writes plotly.js once per run into ``<out_dir>/../_static/`` and
    references it relatively (each HTML ~10 KB, works offline, one copy for the run's figures and its report);
    ``"directory"`` writes it once into ``out_dir``; ``True`` embeds it (~4.7 MB per file); ``"cdn"`` loads it from
    the internet. The PNG needs kaleido + Chrome/Chromium; if static export
    fails, one warning is logged per process (:data:`PNG_HELP`) and the PNG is skipped. Returns
    ``{"html": str, "png": str | None, "png_error": str | None}``.
    """
    global _png_warned
    if not name or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._\-]*", name):
        raise ValueError(f"figure name must be a plain file stem (letters, digits, . _ -), got {name!r}")
    out = Path(out_dir)
    html_path = out / f"{name}.html"
    png_path = out / f"{name}.png"
    if include_plotlyjs == "shared":
        shared_plotlyjs(out.parent / STATIC_DIR)
        include_plotlyjs = f"../{STATIC_DIR}/{PLOTLY_JS}"
    elif include_plotlyjs == "directory":
        shared_plotlyjs(out)
    atomic_write_text(html_path, fig.to_html(include_plotlyjs=include_plotlyjs, full_html=True))
    atomic_write_text(out / f"{name}.json", fig.to_json())
    try:
        data = fig.to_image(format="png", scale=scale)
    except Exception as exc:  # kaleido raises several types (no Chrome, no kaleido, browser crash)
        err = f"{type(exc).__name__}: {exc}".strip()
        if not _png_warned:
            log.warning("%s; PNG of figure %r skipped, HTML written to %s (%s)", PNG_HELP, name, html_path, err)
            _png_warned = True
        else:
            log.debug("PNG of figure %r skipped (%s)", name, err)
        return {"html": str(html_path), "png": None, "png_error": err}
    atomic_write_bytes(png_path, data)
    return {"html": str(html_path), "png": str(png_path), "png_error": None}


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
    "acc": "accuracy reward",
    "overall": "overall reward",
    "fmt": "format reward",
    "loss": "total loss (CE + λ·MSE)",
    "ce_loss": "cross-entropy loss",
    "latent_loss": "latent MSE loss",
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
    metrics: Sequence[str] = ("acc", "overall", "fmt"),
    smooth: float = 0.8,
    *,
    title: str = "RL rewards per step",
) -> go.Figure:
    """Reward curves per RL step: one subplot per metric, one colour per run (raw thin + EMA thick).

    ``runs``: ``{run/mode name: rows of its metrics.jsonl}`` (each row with ``step`` and metric keys such as
    ``acc``, ``overall``, ``fmt``); a plain list of rows is one run named ``"run"``. Rows missing a metric (or with
    ``None``/NaN) are skipped for that metric. ``smooth`` is the EMA weight (0 = raw only), see :func:`ema`.
    """
    return _curves(_as_runs(runs, "run"), metrics, smooth, title, "reward")


def training_curves(
    rows: Mapping[str, Sequence[Mapping[str, Any]]] | Sequence[Mapping[str, Any]],
    keys: Sequence[str] = ("loss", "ce_loss", "latent_loss"),
    smooth: float = 0.0,
    *,
    title: str = "SFT training curves",
) -> go.Figure:
    """SFT losses per optimizer step: one subplot per key; ``rows`` = one metrics.jsonl (list of rows, run named
    ``"SFT"``) or ``{run name: rows}`` to overlay runs. ``smooth`` > 0 adds EMA curves over translucent raw ones."""
    return _curves(_as_runs(rows, "SFT"), keys, smooth, title, "loss")


# ------------------------------------------------------------------------------------------------------- t-SNE
def latent_tsne(
    groups: Mapping[str, Any],
    seed: int = 0,
    perplexity: float = 30.0,
    *,
    normalize: bool = False,
    max_points_per_group: int | None = None,
    method: str = "auto",
    title: str = "t-SNE of prompt states and latent spans",
) -> tuple[go.Figure, np.ndarray]:
    """The t-SNE figure of hidden-state groups, one colour per group (the embedding:
    :func:`fl1_core.evaluation.tsne.tsne_embedding`, scikit-learn, 2-D, PCA init, ``random_state=seed``).

    ``groups``: ``{"prompt text": [N, H], "prompt vision": [M, H], "latent span 1": [K1, H], …}`` (numpy arrays,
    torch tensors or nested lists; all with the same H; empty groups are skipped). Span indices should be separate
    keys so each forms its own cluster. ``perplexity`` is lowered to ``max(1, (n − 1) / 3)`` for small ``n`` (it must
    be < n). ``normalize`` L2-normalises each vector first (hidden states of different sources differ in scale).
    ``max_points_per_group`` subsamples each group deterministically (seeded) when given. Returns the figure and the
    ``[n, 2]`` embedding, rows in the order of ``groups`` (after skipping/subsampling). Same seed → same result.
    ``method``: ``"exact"``, ``"barnes_hut"`` or ``"auto"`` (exact up to :data:`TSNE_EXACT_MAX` points — much
    faster than Barnes-Hut for the few hundred points of the demo — Barnes-Hut above).
    """
    from fl1_core.evaluation.tsne import tsne_embedding

    emb = tsne_embedding(groups, seed, perplexity, normalize=normalize, max_points_per_group=max_points_per_group,
                         method=method)
    names, blocks, coords, n, eff_perplexity = emb.names, emb.blocks, emb.coords, emb.n, emb.perplexity
    fig = go.Figure()
    offset = 0
    for i, (name, block) in enumerate(zip(names, blocks)):
        pts = coords[offset : offset + block.shape[0]]
        offset += block.shape[0]
        fig.add_trace(go.Scatter(x=pts[:, 0], y=pts[:, 1], mode="markers", name=f"{name} (n={block.shape[0]})",
                                 marker={"color": _color(i), "size": 7, "opacity": 0.8,
                                         "line": {"width": 0.5, "color": "#FFFFFF"}},
                                 meta={"group": name}, hovertemplate=f"{name}<extra></extra>"))
    sub = f"<br><sup>{n} vectors, perplexity {eff_perplexity:.3g}, seed {seed}</sup>" if n > 1 else ""
    _style(fig, title + sub, width=750, height=600, xaxis_title="t-SNE 1", yaxis_title="t-SNE 2",
           legend={"title": {"text": "source"}})
    fig.update_xaxes(showticklabels=False, zeroline=False)
    fig.update_yaxes(showticklabels=False, zeroline=False)
    return fig, coords


# ----------------------------------------------------------------------------------------------- visual gain
def _as_frame(table: pd.DataFrame | Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    if isinstance(table, pd.DataFrame):
        return table.copy()
    return pd.DataFrame([dict(r) for r in table])


def visual_gain_distribution(
    table: pd.DataFrame | Sequence[Mapping[str, Any]],
    *,
    bin_size: float = 0.05,
    title: str = "Visual gain P_v − P_t of kept vs dropped samples",
) -> go.Figure:
    """Overlaid histograms of the visual gain ``P_v − P_t`` for kept vs dropped samples, plus (when a
    ``needs_vision`` column has values) a panel with the share of kept / dropped samples that need vision.

    ``table``: DataFrame or rows with ``gain`` (float), ``kept`` (bool) and optionally ``needs_vision`` (bool/None),
    e.g. the curation decisions. Rows with a missing gain are left out of the histogram.
    """
    df = _as_frame(table)
    for col in ("gain", "kept"):
        if col not in df.columns:
            raise ValueError(f"visual_gain_distribution: missing column {col!r} (have {list(df.columns)})")
    kept_mask = df["kept"].astype(bool)
    gains = pd.to_numeric(df["gain"], errors="coerce")
    has_nv = "needs_vision" in df.columns and df["needs_vision"].notna().any()
    n_kept, n_dropped = int(kept_mask.sum()), int((~kept_mask).sum())
    if has_nv:
        fig = make_subplots(rows=1, cols=2, column_widths=[0.68, 0.32], horizontal_spacing=0.1,
                            subplot_titles=("gain distribution", "needs vision (ground truth)"))
    else:
        fig = make_subplots(rows=1, cols=1)
    xbins = {"start": -1.0 - bin_size / 2, "end": 1.0 + bin_size / 2, "size": bin_size}
    for label, mask, color in (("kept", kept_mask, KEPT_COLOR), ("dropped", ~kept_mask, DROPPED_COLOR)):
        g = gains[mask].dropna()
        fig.add_trace(go.Histogram(x=g.tolist(), name=f"{label} (n={int(mask.sum())})", xbins=xbins,
                                   marker_color=color, opacity=0.6, legendgroup=label, meta={"group": label},
                                   hovertemplate=f"{label}: %{{y}} samples<extra>gain %{{x}}</extra>"),
                      row=1, col=1)
    fig.add_vline(x=0.0, line={"color": "#000000", "dash": "dash", "width": 1}, row=1, col=1)
    if has_nv:
        nv = df["needs_vision"]
        shares_yes, shares_no, texts_yes, texts_no = [], [], [], []
        for mask in (kept_mask, ~kept_mask):
            known = nv[mask].dropna().astype(bool)
            k = len(known)
            yes = int(known.sum())
            shares_yes.append(100.0 * yes / k if k else None)
            shares_no.append(100.0 * (k - yes) / k if k else None)
            texts_yes.append(f"{yes}/{k}" if k else "")
            texts_no.append(f"{k - yes}/{k}" if k else "")
        x = ["kept", "dropped"]
        fig.add_trace(go.Bar(x=x, y=shares_yes, name="needs vision", marker_color="#D55E00", text=texts_yes,
                             textposition="inside", meta={"group": "needs_vision"},
                             hovertemplate="needs vision: %{y:.1f}%<extra>%{x}</extra>"), row=1, col=2)
        fig.add_trace(go.Bar(x=x, y=shares_no, base=[0.0 if v is None else v for v in shares_yes],
                             name="text suffices", marker_color="#56B4E9", text=texts_no, textposition="inside",
                             meta={"group": "text_suffices"},
                             hovertemplate="text suffices: %{y:.1f}%<extra>%{x}</extra>"), row=1, col=2)
        fig.update_yaxes(title_text="share of samples (%)", range=[0, 100], row=1, col=2)
    # overlay: the histograms share bins and overlap; the needs-vision bars are stacked by hand via ``base``
    _style(fig, f"{title}<br><sup>kept {n_kept} · dropped {n_dropped}</sup>", barmode="overlay")
    fig.update_xaxes(title_text="visual gain P_v − P_t", range=[-1.05, 1.05], row=1, col=1)
    fig.update_yaxes(title_text="samples", row=1, col=1)
    fig.update_layout(margin={"t": 100})
    return fig


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
