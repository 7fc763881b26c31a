"""Learning curves of world pretraining: held-out measures against the CPU minutes spent training.

Reads the ``eval.jsonl`` rows that :func:`fl1_core.pretrain.pretrain_world_base` writes; used by the recipe sweep
(``scripts/world_base_sweep.py``) and notebook 06.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..plots.style import _color, _style

Getter = Callable[[Mapping[str, Any]], Mapping[str, Any] | None]

MEASURES: dict[str, Getter] = {
    "scene exact": lambda r: r["scene"]["exact"],
    "colour slots": lambda r: r["scene"]["colour_slots"],
    "option look-up": lambda r: r.get("lookup"),
    "MCQ text-solvable": lambda r: (r.get("mcq") or {}).get("text"),
    "MCQ vision-dependent": lambda r: (r.get("mcq") or {}).get("vision"),
}


def pretraining_curves(runs: Mapping[str, Sequence[Mapping[str, Any]]], *, chance: float = 0.25,
                       title: str = "World pretraining: held-out accuracy against CPU minutes") -> go.Figure:
    """One subplot per measure of :data:`MEASURES`; one line per run with its Wilson 95 % band as error bars; the
    MCQ and look-up subplots carry the chance level (``chance``) as a dotted line."""
    fig = make_subplots(rows=1, cols=len(MEASURES), subplot_titles=list(MEASURES), shared_yaxes=True)
    for i, (name, rows) in enumerate(runs.items()):
        for j, (measure, get) in enumerate(MEASURES.items()):
            pts = [(r["cpu_minutes"], get(r)) for r in rows if get(r)]
            if not pts:
                continue
            y = [m["accuracy"] for _, m in pts]
            fig.add_trace(go.Scatter(
                x=[x for x, _ in pts], y=y, mode="lines+markers", name=name, legendgroup=name, showlegend=j == 0,
                line={"color": _color(i)},
                error_y={"type": "data", "symmetric": False, "array": [m["ci95"][1] - a for (_, m), a in zip(pts, y)],
                         "arrayminus": [a - m["ci95"][0] for (_, m), a in zip(pts, y)], "thickness": 1},
            ), row=1, col=j + 1)
    for j, measure in enumerate(MEASURES):
        if measure.startswith(("MCQ", "option")):
            fig.add_hline(y=chance, line_dash="dot", line_color="grey", row=1, col=j + 1)
    fig.update_xaxes(title_text="CPU minutes")
    fig.update_yaxes(range=[0, 1.02])
    return _style(fig, title, width=1500, height=420)
