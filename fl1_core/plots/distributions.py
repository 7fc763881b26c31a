"""Distributions: t-SNE of hidden states and latent spans; visual gain of kept vs dropped samples."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots


from .style import DROPPED_COLOR, KEPT_COLOR, _as_frame, _color, _style

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
