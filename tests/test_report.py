"""``fl1 report``: the offline run report, opened in a real headless Chromium from a file URL with the network off."""

from __future__ import annotations

import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest
from nbformat import v4

from fl1_core.report import build_report, metric_files
from fl1_core.runs import atomic_write_json, write_manifest

go = pytest.importorskip("plotly.graph_objects")
CHROME = next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)
needs_chrome = pytest.mark.skipif(CHROME is None, reason="needs Chromium (make install runs scripts/ensure_chromium.sh)")
PLOTLY_MIME = "application/vnd.plotly.v1+json"


def _notebook(path: Path, *, fail: bool = False) -> None:
    fig = go.Figure(go.Bar(x=["a", "b"], y=[1, 3], name="nb-bars"))
    cells = [
        v4.new_markdown_cell("# Loss\nThe latent loss is $\\lVert h_t - e_{t+1} \\rVert^2$ and\n"
                             "$$\\mathcal{L} = \\mathrm{CE} + \\lambda \\, \\mathrm{MSE}$$"),
        v4.new_code_cell("fig", outputs=[v4.new_output("display_data", data={PLOTLY_MIME: fig.to_plotly_json()})]),
        v4.new_code_cell("print('trained')", outputs=[v4.new_output("stream", name="stdout", text="trained\n")]),
    ]
    if fail:
        cells.append(v4.new_code_cell("1 / 0", outputs=[v4.new_output(
            "error", ename="ZeroDivisionError", evalue="division by zero",
            traceback=["\x1b[0;31mZeroDivisionError\x1b[0m: division by zero"])]))
    nbformat.write(v4.new_notebook(cells=cells), path)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, small_world):
    from fl1_core.plots import save_figure

    root = tmp_path_factory.mktemp("report")
    world = small_world
    run = root / "runs" / "demo"
    run.mkdir(parents=True)
    for name in ("00_quickstart", "03_sft"):
        _notebook(run / f"{name}.ipynb")
    save_figure(go.Figure(go.Scatter(x=[0, 1, 2], y=[3, 1, 2], name="loss")), run / "figures", "training_curves")
    atomic_write_json(run / "metrics" / "sft.json", {"latent": {"final_loss": 0.5}, "text": {"final_loss": 0.7}})
    (run / "sft" / "latent").mkdir(parents=True)
    (run / "sft" / "latent" / "metrics.jsonl").write_text('{"step": 1, "loss": 2.0}\n{"step": 2, "loss": 1.5}\n')
    write_manifest(run, parameters={"seed": 0}, data_files=[world / "sft.json"],
                   extra={"run_id": "demo", "notebooks": ["00_quickstart.ipynb", "03_sft.ipynb"]})
    write_manifest(run / "rl" / "la-dapo", flags={"rl_implementation": "corrected", "rl_replay_latents": True})
    return run


class _Text(HTMLParser):
    """Visible text inside markdown cells (scripts, styles and MathJax's own markup excluded)."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[tuple[str, bool, bool]] = []
        self.parts: list[str] = []

    def handle_starttag(self, tag, attrs):
        cls = dict(attrs).get("class") or ""
        md = "text_cell_render" in cls or (self.stack and self.stack[-1][1])
        hidden = tag in ("script", "style") or (self.stack and self.stack[-1][2])
        if tag not in ("br", "img", "meta", "link", "input", "hr"):
            self.stack.append((tag, bool(md), bool(hidden)))

    def handle_endtag(self, tag):
        while self.stack:
            if self.stack.pop()[0] == tag:
                break

    def handle_data(self, data):
        if self.stack and self.stack[-1][1] and not self.stack[-1][2]:
            self.parts.append(data)


def _render(index: Path) -> str:
    """The DOM after scripts ran, from a file URL, with every network request refused."""
    cmd = [CHROME, "--headless=new", "--no-sandbox", "--disable-gpu", "--proxy-server=127.0.0.1:9",
           "--host-resolver-rules=MAP * ~NOTFOUND", "--virtual-time-budget=20000", "--dump-dom", index.as_uri()]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert res.returncode == 0 and "<html" in res.stdout, res.stderr[-2000:]
    return res.stdout


def test_report_collects_every_metric_file(run_dir):
    found = {p.relative_to(run_dir).as_posix() for p in metric_files(run_dir)}
    assert found == {"metrics/sft.json", "sft/latent/metrics.jsonl"}


@needs_chrome
def test_report_opens_offline_with_notebooks_math_figures_and_clips(run_dir):
    index = build_report(run_dir)
    page = index.read_text()
    assert not re.search(r'(src|href)="(https?:)?//', page)  # nothing is fetched from the network
    dom = _render(index)
    for anchor in ("nb-00_quickstart", "nb-03_sft", "manifest", "metrics", "figures", "clips"):
        assert f'id="{anchor}"' in dom, anchor
    assert dom.count("trained") >= 2  # both notebooks' outputs
    assert "rl_implementation" in dom and "corrected" in dom and "sft.json" in dom  # flags and data hashes
    # math typeset by the local MathJax: no raw $ left in the rendered markdown
    assert 'data-mathjax="done"' in dom
    text = _Text()
    text.feed(dom)
    rendered = "".join(text.parts)
    assert "Loss" in rendered and "$" not in rendered
    assert len(re.findall(r'class="MathJax(_Display)?"', dom)) >= 4 and 'class="MathJax_Error"' not in dom
    # figures drawn by the one shared plotly.js: the saved figure and the notebook outputs
    assert len(re.findall(r'class="main-svg"', dom)) >= 3
    assert re.search(r'id="figure-0"[^>]*class="fl1-plot[^"]*js-plotly-plot', dom) or \
        re.search(r'class="fl1-plot[^"]*js-plotly-plot[^"]*"[^>]*id="figure-0"', dom)
    # clips: animated images that loaded
    loaded = re.findall(r'<img class="fl1-clip"[^>]*data-loaded="1"', dom)
    assert len(loaded) >= 2, len(loaded)


@needs_chrome
def test_failed_run_shows_the_failing_cell_first(run_dir, tmp_path):
    failed = tmp_path / "failed"
    shutil.copytree(run_dir, failed)
    _notebook(failed / "03_sft.ipynb", fail=True)
    index = build_report(failed)
    dom = _render(index)
    assert "(FAILED)" in dom
    first_section = re.search(r"<section id=\"([^\"]+)\"", dom).group(1)
    assert first_section == "failure"
    failure = dom[dom.index('id="failure"'): dom.index('id="manifest"')]
    assert "ZeroDivisionError" in failure and "1 / 0" in failure and 'href="#nb-03_sft"' in failure


def test_figures_folder_shrinks_with_one_shared_plotlyjs(tmp_path, monkeypatch):
    """The issue's 10x: the same figures saved self-contained (the old default) vs sharing the run's plotly.js."""
    from fl1_core.plots import save_figure

    monkeypatch.setattr(go.Figure, "to_image", lambda *a, **k: b"\x89PNG\r\n\x1a\n" + b"0" * 50_000)
    sizes = {}
    for mode in (True, "shared"):
        figures = tmp_path / str(mode) / "figures"
        for i in range(4):
            save_figure(go.Figure(go.Bar(x=list(range(20)), y=list(range(20)))), figures, f"fig{i}",
                        include_plotlyjs=mode)
        sizes[mode] = sum(p.stat().st_size for p in figures.iterdir())
    assert sizes[True] > 10 * sizes["shared"], sizes


def test_a_folder_that_is_not_a_run_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a run folder"):
        build_report(tmp_path)
    with pytest.raises(FileNotFoundError, match="no such run folder"):
        build_report(tmp_path / "missing")
