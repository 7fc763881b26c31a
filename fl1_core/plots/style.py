"""The workbook's figure style: palette, fixed colours of stages / bins / scores, the layout helper."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go


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
    "pause SFT": "#CC79A7",
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

PNG_HELP = (
    "static PNG export needs Chrome/Chromium: install it, e.g. `apt-get install chromium`, "
    "or set BROWSER_PATH to a Chrome/Chromium binary"
)


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


def _as_frame(table: pd.DataFrame | Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    if isinstance(table, pd.DataFrame):
        return table.copy()
    return pd.DataFrame([dict(r) for r in table])
