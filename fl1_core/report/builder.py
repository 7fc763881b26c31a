"""``fl1 report RUN_DIR``: one offline HTML page per run, ``RUN_DIR/report/index.html``.

It holds, with a table of contents linking them: a failed run's failing cell (first), the headline
(:mod:`fl1_core.report.headline`: held-out accuracy per checkpoint, the audit's differences), the manifest (commit,
parameters, package versions, data hashes, release/corrected flags), a table of every metric file, every figure
(drawn by the run's one plotly.js), a few of the world's clips playing beside their event timelines, and every
executed notebook. Math is typeset by a local MathJax. Nothing is fetched from the network.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from ..runs import atomic_write_text, resolve_data_path
from .assets import MATHJAX_CONFIG, install_assets
from .headline import headline_section
from .notebook_html import NotebookHTML, notebook_fragment

REPORT_DIR = "report"
CLIPS_SHOWN = 3
_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#222;line-height:1.45}
nav{position:fixed;top:0;left:0;bottom:0;width:210px;overflow:auto;background:#f5f5f8;padding:12px;font-size:13px}
nav a{display:block;color:#335;text-decoration:none;padding:2px 0} main{margin-left:240px;padding:12px 24px;max-width:1100px}
section{border-top:1px solid #ddd;margin-top:18px;padding-top:6px} table{border-collapse:collapse;font-size:13px}
td,th{border:1px solid #ddd;padding:2px 6px;text-align:left;vertical-align:top} th{background:#f0f0f4}
pre{background:#f7f7f7;padding:6px;overflow:auto;font-size:12px} .input_area pre{background:#eef2f8}
.fl1-traceback{background:#fff0f0;border-left:4px solid #c33} .fl1-fail{border:2px solid #c33;padding:8px}
.prompt{display:none} .cell{margin:6px 0} .output_area img{max-width:100%} .fl1-note{color:#777;font-style:italic}
"""


def _table(rows: list[tuple[str, Any]], head: tuple[str, str] = ("key", "value")) -> str:
    body = "".join(f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(_short(v))}</td></tr>" for k, v in rows)
    return f"<table><tr><th>{head[0]}</th><th>{head[1]}</th></tr>{body}</table>"


def _short(v: Any, limit: int = 160) -> str:
    text = v if isinstance(v, str) else json.dumps(v, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _flat(obj: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Scalar leaves of nested dicts as ``a.b.c`` keys (lists are shown whole)."""
    if isinstance(obj, dict):
        out = []
        for k, v in obj.items():
            out += _flat(v, f"{prefix}.{k}" if prefix else str(k))
        return out
    return [(prefix, obj)]


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


# ------------------------------------------------------------------------------------------------------ sections
def manifest_section(run_dir: Path) -> str:
    m = _read_json(run_dir / "manifest.json") or {}
    flags = {}
    for sub in sorted(run_dir.glob("**/manifest.json")):
        f = (_read_json(sub) or {}).get("flags")
        if f:
            flags[str(sub.parent.relative_to(run_dir))] = f
    parts = ["<h2>Manifest</h2>", _table([(k, m.get(k)) for k in ("run_id", "git_commit", "python", "platform",
                                                                  "updated")])]
    parts += ["<h3>Parameters</h3>", _table(sorted((m.get("parameters") or {}).items()))]
    parts += ["<h3>Package versions</h3>", _table(sorted((m.get("packages") or {}).items()), ("package", "version"))]
    parts += ["<h3>Data hashes (sha256)</h3>", _table(sorted((m.get("data_hashes") or {}).items()), ("file", "sha256"))]
    if flags:
        rows = [(f"{where}: {k}", v) for where, f in flags.items() for k, v in sorted(f.items())]
        parts += ["<h3>Release / corrected flags</h3>", _table(rows, ("stage: flag", "value"))]
    stages = m.get("stages") or {}
    if stages:
        parts += ["<h3>Stages</h3>", _table([(k, f"{v.get('wall_s')} s, {v.get('finished')}")
                                             for k, v in stages.items()], ("notebook", "wall time, finished"))]
    return '<section id="manifest">' + "".join(parts) + "</section>"


def metric_files(run_dir: Path) -> list[Path]:
    """Every metric file of a run: ``metrics/*``, evaluation summaries and per-stage ``metrics.jsonl`` / results."""
    found = set(run_dir.glob("metrics/*.json")) | set(run_dir.glob("metrics/*.jsonl"))
    found |= set(run_dir.glob("**/summary.json")) | set(run_dir.glob("**/metrics.jsonl"))
    found |= set(run_dir.glob("**/result.json"))
    return sorted(p for p in found if REPORT_DIR not in p.relative_to(run_dir).parts)


def metrics_section(run_dir: Path) -> str:
    rows = []
    for path in metric_files(run_dir):
        rel = path.relative_to(run_dir).as_posix()
        if path.suffix == ".jsonl":
            lines = [x for x in path.read_text(encoding="utf-8", errors="replace").splitlines() if x.strip()]
            last = _read_json_line(lines[-1]) if lines else {}
            shown = ", ".join(f"{k}={_short(v, 24)}" for k, v in list(_flat(last))[:8] if not isinstance(v, (list,
                                                                                                              dict)))
            rows.append(f"<tr><td><a href=\"../{rel}\">{html.escape(rel)}</a></td><td>{len(lines)} rows</td>"
                        f"<td>last: {html.escape(shown)}</td></tr>")
        else:
            flat = [(k, v) for k, v in _flat(_read_json(path)) if not isinstance(v, (list, dict))]
            shown = ", ".join(f"{k}={_short(v, 24)}" for k, v in flat[:10])
            rows.append(f"<tr><td><a href=\"../{rel}\">{html.escape(rel)}</a></td><td>{len(flat)} values</td>"
                        f"<td>{html.escape(shown)}</td></tr>")
    table = "<table><tr><th>file</th><th>size</th><th>values</th></tr>" + "".join(rows) + "</table>"
    return f'<section id="metrics"><h2>Metric files ({len(rows)})</h2>{table}</section>'


def _read_json_line(line: str) -> dict:
    try:
        row = json.loads(line)
    except ValueError:
        return {}
    return row if isinstance(row, dict) else {}


def figures_section(run_dir: Path) -> str:
    figs = sorted((run_dir / "figures").glob("*.json"))
    parts = [f"<h2>Figures ({len(figs)})</h2>"]
    for i, path in enumerate(figs):
        fig = _read_json(path) or {}
        stem = path.stem
        links = [f'<a href="../figures/{stem}.{ext}">{ext}</a>' for ext in ("html", "png")
                 if (path.parent / f"{stem}.{ext}").exists()]
        div = f"figure-{i}"
        parts.append(f'<h3 id="fig-{html.escape(stem)}">{html.escape(stem)} <small>({" · ".join(links)})</small></h3>'
                     f'<div id="{div}" class="fl1-plot" style="width:100%;min-height:420px"></div>'
                     f'<script>Plotly.newPlot("{div}", {json.dumps(fig.get("data", []))}, '
                     f'{json.dumps(fig.get("layout", {}))}, {{"responsive": true}});</script>')
    return '<section id="figures">' + "".join(parts) + "</section>"


def clips_section(run_dir: Path) -> str:
    """A few SFT records of the run's world, playing, with their events (skipped, saying why, without a world)."""
    from ..clips import world_clip_html
    from ..data.formats import load_sft_records

    hashes = (_read_json(run_dir / "manifest.json") or {}).get("data_hashes") or {}
    sft = next((resolve_data_path(p, run_dir) for p in hashes if Path(p).name == "sft.json"), None)
    if sft is None or not sft.exists() or not (sft.parent / "events.jsonl").exists():
        return ('<section id="clips"><h2>Clips</h2><p class="fl1-note">No world clips: the run\'s data has no '
                "events.jsonl (real data), so there is no event timeline to show.</p></section>")
    records = list(load_sft_records(sft, on_error="skip").records)[:CLIPS_SHOWN]
    players = [world_clip_html(sft.parent, r) for r in records]
    return '<section id="clips"><h2>Clips of the world</h2>' + "".join(players) + "</section>"


def _notebooks(run_dir: Path) -> list[Path]:
    listed = (_read_json(run_dir / "manifest.json") or {}).get("notebooks") or []
    found = [run_dir / n for n in listed if (run_dir / n).exists()]
    return found + sorted(p for p in run_dir.glob("*.ipynb") if p not in found)


# --------------------------------------------------------------------------------------------------------- build
def build_report(run_dir: str | Path) -> Path:
    """Write ``<run_dir>/report/index.html`` (see the module docstring); returns its path."""
    run_dir = Path(run_dir).resolve()
    if not run_dir.is_dir():
        raise FileNotFoundError(f"{run_dir}: no such run folder")
    books = _notebooks(run_dir)
    if not books and not (run_dir / "manifest.json").exists():
        raise FileNotFoundError(f"{run_dir}: neither executed notebooks nor a manifest.json: not a run folder")
    assets = install_assets(run_dir)
    rendered: list[NotebookHTML] = [notebook_fragment(p) for p in books]
    failed = [r for r in rendered if r.error_cell]
    toc = [("headline", "Headline"), ("manifest", "Manifest"), ("metrics", "Metric files"), ("figures", "Figures"), ("clips", "Clips")]
    toc += [(r.anchor, r.name) for r in rendered]
    body = []
    if failed:
        toc.insert(0, ("failure", "Failure"))
        f = failed[0]
        body.append(f'<section id="failure" class="fl1-fail"><h2>Failed: {html.escape(f.name)}</h2>'
                    f"<p>{html.escape(f.error_summary or '')} — <a href=\"#{f.anchor}\">the whole notebook</a></p>"
                    f"{f.error_cell}</section>")
    body += [headline_section(run_dir), manifest_section(run_dir), metrics_section(run_dir), figures_section(run_dir), clips_section(run_dir)]
    for r in rendered:
        body.append(f'<section id="{r.anchor}" class="fl1-notebook"><h2>{html.escape(r.name)}</h2>{r.body}</section>')
    nav = "".join(f'<a href="#{a}">{html.escape(t)}</a>' for a, t in toc)
    title = f"Run {run_dir.name}" + (" (FAILED)" if failed else "")
    page = (f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{_CSS}</style><script src=\"{assets['plotly']}\"></script>{MATHJAX_CONFIG}"
            f"<script src=\"{assets['mathjax']}\"></script></head><body><nav><b>{html.escape(title)}</b>{nav}</nav>"
            f"<main><h1>{html.escape(title)}</h1>{''.join(body)}</main></body></html>")
    out = run_dir / REPORT_DIR / "index.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, page)
    return out


__all__ = ["REPORT_DIR", "build_report", "clips_section", "figures_section", "manifest_section", "metric_files",
           "metrics_section"]
