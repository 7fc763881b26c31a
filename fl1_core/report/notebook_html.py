"""Executed notebooks → HTML fragments for the run report (nbconvert's ``basic`` template: body only).

Plotly outputs (``application/vnd.plotly.v1+json``, which nbconvert cannot show) become a ``div`` drawn by the
report's one shared plotly.js; math in markdown stays ``$…$`` for the report's local MathJax. The first cell with an
error output is found so a failed run's report can show it first.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass
from pathlib import Path

PLOTLY_MIME = "application/vnd.plotly.v1+json"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


@dataclass
class NotebookHTML:
    """One notebook's fragment, its anchor, and its first failing cell (``None`` when it ran clean)."""

    name: str
    anchor: str
    body: str
    error_cell: str | None = None
    error_summary: str | None = None


def _plotly_div(figure: dict, key: str) -> str:
    data = json.dumps(figure.get("data", []))
    layout = json.dumps(figure.get("layout", {}))
    div = f"fig-{key}"
    return (f'<div id="{div}" class="fl1-plot" style="width:100%;min-height:420px"></div>'
            f'<script>Plotly.newPlot("{div}", {data}, {layout}, {{"responsive": true}});</script>')


def _prepare(nb, key: str) -> None:
    """In place: plotly outputs → HTML divs; widget outputs → a note (their state is not saved by papermill)."""
    for i, cell in enumerate(nb.cells):
        for j, out in enumerate(cell.get("outputs", [])):
            data = out.get("data", {})
            if PLOTLY_MIME in data:
                out["data"] = {"text/html": _plotly_div(data[PLOTLY_MIME], f"{key}-{i}-{j}")}
            elif WIDGET_MIME in data:
                out["data"] = {"text/html": '<p class="fl1-note">(an interactive widget: open the notebook in '
                                            "Jupyter to use it)</p>"}


def _first_error(nb) -> tuple[int, str] | None:
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                return i, f"{out.get('ename', 'Error')}: {out.get('evalue', '')}"
    return None


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def error_cell_html(nb, index: int) -> str:
    """The failing cell as HTML: its source and its traceback (ANSI colours stripped)."""
    cell = nb.cells[index]
    parts = [f'<pre class="fl1-source">{html.escape(cell.source)}</pre>']
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            tb = _ANSI.sub("", "\n".join(out.get("traceback", [])))
            parts.append(f'<pre class="fl1-traceback">{html.escape(tb)}</pre>')
    return "".join(parts)


def notebook_fragment(path: str | Path) -> NotebookHTML:
    """Render one executed notebook (see the module docstring)."""
    import nbformat
    from nbconvert import HTMLExporter

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    anchor = "nb-" + re.sub(r"[^A-Za-z0-9_-]+", "-", path.stem)
    error = _first_error(nb)
    error_html = error_cell_html(nb, error[0]) if error else None
    _prepare(nb, anchor)
    exporter = HTMLExporter(template_name="basic", exclude_input_prompt=False)
    body, _ = exporter.from_notebook_node(nb)
    return NotebookHTML(path.stem, anchor, body, error_html, error[1] if error else None)


__all__ = ["NotebookHTML", "error_cell_html", "notebook_fragment"]
