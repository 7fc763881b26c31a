"""Every figure of the workbook (docs/PAPER.md#paper-numbers) as pure functions from plain data to plotly figures.

Each ``*`` function below takes plain Python / pandas / numpy data and returns a ``plotly.graph_objects.Figure``;
nothing here reads or writes files except :func:`save_figure`, which writes ``<name>.html`` (interactive,
self-contained) and ``<name>.png`` (static, via kaleido + Chrome/Chromium; falls back to HTML only with one warning).

Figures:

- :func:`latent_span_donuts` — Fig. 4, latent-span usage by reasoning depth (one donut per hop split);
- :func:`rl_data_scaling` — Fig. 5, CoT / Ans / Avg judge scores per RL data size (bars + a line over Avg);
- :func:`reward_curves` — RL rewards per step, raw + EMA-smoothed, one colour per run;
- :func:`training_curves` — SFT losses per step;
- :func:`pretraining_curves` — world pretraining's held-out measures against CPU minutes;
- :func:`latent_tsne` — t-SNE of prompt text / prompt vision hidden states and latent spans;
- :func:`visual_gain_distribution` — visual gain ``P_v − P_t`` of kept vs dropped curation samples;
- :func:`results_table` — a results table with the paper's rows greyed out;
- :func:`accuracy_by_hop` — FutureBench MCQ accuracy per hop split for each model stage;
- :func:`probe_quality`, :func:`ablation_bars`, :func:`control_bars` — the audit's figures.

The figures live in one module per family (style, saving, paper_figures, curves, pretraining, distributions, tables, audit);
this package exports the figure functions and the shared style constants.
"""

import logging

from .audit import ablation_bars, control_bars, probe_quality
from .curves import ema, reward_curves, training_curves
from .distributions import latent_tsne, visual_gain_distribution
from .paper_figures import latent_span_donuts, rl_data_scaling
from .pretraining import pretraining_curves
from .saving import save_figure, shared_plotlyjs
from .style import (
    BIN_COLORS, BIN_LABELS, COLORWAY, FIG_HEIGHT, FIG_WIDTH, HOP_COLUMNS, PAPER_ROW_COLOR, PNG_HELP, STAGE_COLORS,
    TEMPLATE,
)
from .tables import accuracy_by_hop, results_table

log = logging.getLogger(__name__)

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
    "ablation_bars",
    "accuracy_by_hop",
    "control_bars",
    "ema",
    "latent_span_donuts",
    "latent_tsne",
    "pretraining_curves",
    "probe_quality",
    "results_table",
    "reward_curves",
    "rl_data_scaling",
    "save_figure",
    "shared_plotlyjs",
    "training_curves",
    "visual_gain_distribution",
]

