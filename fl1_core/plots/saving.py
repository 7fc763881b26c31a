"""Saving a figure: HTML (plotly.js shared once per run), the figure's JSON and a PNG (kaleido + Chrome)."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import plotly.graph_objects as go

from fl1_core.runs import atomic_write_bytes, atomic_write_text

from .style import PNG_HELP

log = logging.getLogger(__name__)
_png_warned = False

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
