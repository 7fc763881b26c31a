"""Tests of fl1_core.plots: each figure built from small hand-made inputs, checked on its data."""

from __future__ import annotations

import json
import logging
import shutil

import numpy as np
import pandas as pd
import pytest

go = pytest.importorskip("plotly.graph_objects")

from fl1_core import plots  # noqa: E402
from fl1_core.evaluation.compare import comparison_table  # noqa: E402
from fl1_core.evaluation.futurebench import score_futurebench  # noqa: E402
from fl1_core.evaluation.latent_stats import span_count_distribution  # noqa: E402


# ----------------------------------------------------------------------------------------------------- donuts
def _span_records():
    recs = []
    # hop1: spans 1,1,2,0 -> with-latent mean 4/3, n_zero 1
    for n in (1, 1, 2, 0):
        recs.append({"split": "hop1", "n_spans": n})
    # hop2: spans 2,3 -> mean 2.5
    for n in (2, 3):
        recs.append({"split": "hop2", "span_counts": [1] * n})
    # hop3: spans 4,5,3 -> bins >3,>3,3 ; mean 4
    for n in (4, 5, 3):
        recs.append({"question_type": "hop3", "n_spans": n})
    # hop5: only 0-span responses
    recs.append({"split": "hop5", "n_spans": 0})
    return recs


def test_donuts_values_means_and_zero_counts():
    dist = span_count_distribution(_span_records())
    fig = plots.latent_span_donuts(dist)
    pies = [t for t in fig.data if isinstance(t, go.Pie)]
    assert [p.name for p in pies] == ["1-hop", "2-hop", "3-hop", "Interp."]
    assert list(pies[0].labels) == ["1 span", "2 spans", "3 spans", ">3 spans"]
    assert list(pies[0].values) == [2, 1, 0, 0]
    assert list(pies[1].values) == [0, 1, 1, 0]
    assert list(pies[2].values) == [0, 0, 1, 2]
    assert all(p.hole and p.hole > 0 for p in pies)
    # Interp. has no responses with spans: an empty grey ring
    assert list(pies[3].labels) == ["no latent spans"]
    means = {a.name: a.text for a in fig.layout.annotations if a.name and a.name.startswith("mean:")}
    assert "1.33" in means["mean:1-hop"]
    assert "2.50" in means["mean:2-hop"]
    assert "4.00" in means["mean:3-hop"]
    assert means["mean:Interp."] == "–"
    # the annotation sits in the hole: the centre of the pie's domain
    ann = next(a for a in fig.layout.annotations if a.name == "mean:2-hop")
    assert ann.x == pytest.approx(sum(pies[1].domain.x) / 2)
    titles = [a.text for a in fig.layout.annotations if not a.name]
    assert any("1-hop" in t and "n = 4" in t and "0-span responses: 1" in t for t in titles)
    assert any("Interp." in t and "0-span responses: 1" in t for t in titles)


def test_donuts_mean_over_all_and_empty_split():
    dist = {
        "per_split": {
            "hop1": {"n": 4, "n_zero": 1, "counts": {"1": 2, "2": 1, "3": 0, ">3": 0},
                     "mean_spans": 1.0, "mean_spans_with_latent": 4 / 3},
            "hop2": {"n": 0, "n_zero": 0, "counts": {"1": 0, "2": 0, "3": 0, ">3": 0},
                     "mean_spans": None, "mean_spans_with_latent": None},
        },
        "overall": {"n": 4, "n_zero": 1, "counts": {"1": 2, "2": 1, "3": 0, ">3": 0},
                    "mean_spans": 1.0, "mean_spans_with_latent": 4 / 3},
    }
    fig = plots.latent_span_donuts(dist, mean_over="all", include_overall=True)
    assert [t.name for t in fig.data] == ["1-hop", "2-hop", "All"]
    means = {a.name: a.text for a in fig.layout.annotations if a.name}
    assert "1.00" in means["mean:1-hop"]
    assert means["mean:2-hop"] == "n = 0"
    with pytest.raises(ValueError):
        plots.latent_span_donuts(dist, mean_over="bogus")


# ---------------------------------------------------------------------------------------------- data scaling
def test_rl_data_scaling_bars_and_line():
    rows = [
        {"size": 20000, "cot": 3.11, "answer": 2.97, "avg": 3.04},
        {"size": 5000, "cot": 2.8, "answer": 2.76, "avg": 2.78},
        {"size": 10000, "cot": 2.9, "answer": 2.88, "avg": 2.89},
    ]
    fig = plots.rl_data_scaling(rows)
    assert [type(t).__name__ for t in fig.data] == ["Bar", "Bar", "Bar", "Scatter"]
    assert [t.name for t in fig.data[:3]] == ["CoT", "Ans", "Avg"]
    assert list(fig.layout.xaxis.ticktext) == ["5K", "10K", "20K"]
    assert list(fig.data[0].customdata) == ["5K", "10K", "20K"]
    assert list(fig.data[1].y) == [2.76, 2.88, 2.97]
    assert list(fig.data[3].y) == [2.78, 2.89, 3.04]
    assert "lines" in fig.data[3].mode
    # the trend line sits over the Avg bars (3rd bar of each group), right of the group centre
    assert all(lx > bx for lx, bx in zip(fig.data[3].x, fig.data[2].x))
    assert fig.layout.barmode == "group"
    assert fig.layout.xaxis.title.text and fig.layout.yaxis.title.text
    # string sizes keep their order; a missing score is a gap
    fig = plots.rl_data_scaling([{"size": "b", "cot": 1.0, "answer": 2.0, "avg": 1.5},
                                 {"size": "a", "cot": 1.0, "answer": None, "avg": 1.0}])
    assert list(fig.layout.xaxis.ticktext) == ["b", "a"]
    assert list(fig.data[1].y) == [2.0, None]


# ------------------------------------------------------------------------------------------------- curves
def _hand_ema(xs, a):
    s = xs[0]
    for x in xs[1:]:
        s = a * s + (1 - a) * x
    return s


def test_reward_curves_raw_and_smoothed():
    grpo = [{"step": s, "reward/acc": a, "reward/overall": a + 0.5, "reward/fmt": 1.0}
            for s, a in enumerate([0.1, 0.5, 0.3, 0.9])]
    dapo = [{"step": 2, "reward/acc": 0.4}, {"step": 1, "reward/acc": 0.2, "reward/fmt": 0.5},
            {"step": 3, "reward/acc": None, "reward/fmt": 1.0}]
    fig = plots.reward_curves({"GRPO": grpo, "DAPO": dapo}, smooth=0.6)
    by = {(t.meta["run"], t.meta["metric"], t.meta["kind"]): t for t in fig.data}
    # GRPO: 3 metrics × (raw + smoothed); DAPO: acc (2 pts, sorted by step) + fmt (2 pts), no overall
    assert len(fig.data) == 6 + 4
    raw = by[("GRPO", "reward/acc", "raw")]
    sm = by[("GRPO", "reward/acc", "smoothed")]
    assert list(raw.y) == [0.1, 0.5, 0.3, 0.9]
    assert raw.opacity < 1 and raw.line.width < sm.line.width
    assert sm.y[-1] == pytest.approx(_hand_ema([0.1, 0.5, 0.3, 0.9], 0.6))
    assert list(by[("DAPO", "reward/acc", "raw")].x) == [1.0, 2.0]
    assert ("DAPO", "reward/overall", "raw") not in by
    # one legend entry per run, same colour across metrics
    shown = [t.name for t in fig.data if t.showlegend is not False]
    assert sorted(shown) == ["DAPO", "GRPO"]
    assert by[("GRPO", "reward/fmt", "smoothed")].line.color == sm.line.color != by[("DAPO", "reward/acc", "smoothed")].line.color
    assert [a.text for a in fig.layout.annotations][:3] == ["accuracy reward", "overall reward", "format reward"]


def test_ema_and_validation():
    assert plots.ema([1.0, 3.0], 0.5) == [1.0, 2.0]
    assert plots.ema([], 0.9) == []
    with pytest.raises(ValueError):
        plots.ema([1.0], 1.0)


def test_training_curves_list_and_overlay():
    rows = [{"step": i, "loss/total": 2.0 - i * 0.1, "loss/ce": 1.5 - i * 0.1, "loss/latent": 0.5} for i in range(1, 6)]
    fig = plots.training_curves(rows)
    assert len(fig.data) == 3
    assert {t.name for t in fig.data} == {"SFT"}
    assert list(fig.data[0].y) == [r["loss/total"] for r in rows]
    assert len(plots.training_curves([{"step": 1, "loss": 2.0}]).data) == 0  # only the grouped names are read
    fig = plots.training_curves({"latent SFT": rows, "text-only SFT": rows[:2]}, keys=("loss/total",), smooth=0.5)
    assert len(fig.data) == 4
    assert fig.data[1].line.color == plots.STAGE_COLORS["latent SFT"]


# --------------------------------------------------------------------------------------------------- t-SNE
def test_latent_tsne_shape_groups_and_determinism():
    rng = np.random.default_rng(0)
    groups = {
        "prompt text": rng.normal(0, 1, (12, 8)),
        "prompt vision": rng.normal(5, 1, (10, 8)),
        "latent span 1": rng.normal(-5, 1, (6, 8)),
        "latent span 2": rng.normal(10, 1, (4, 8)),
        "latent span 3": np.zeros((0, 8)),
    }
    fig, coords = plots.latent_tsne(groups, seed=3, perplexity=30)
    assert coords.shape == (32, 2)
    assert [t.meta["group"] for t in fig.data] == ["prompt text", "prompt vision", "latent span 1", "latent span 2"]
    assert [len(t.x) for t in fig.data] == [12, 10, 6, 4]
    assert len({t.marker.color for t in fig.data}) == 4
    _, again = plots.latent_tsne(groups, seed=3, perplexity=30)
    np.testing.assert_allclose(coords, again)
    np.testing.assert_allclose(fig.data[2].x, coords[22:28, 0])


def test_latent_tsne_small_n_and_errors():
    _, coords = plots.latent_tsne({"a": np.ones((1, 4)), "b": np.zeros((2, 4))}, seed=0)
    assert coords.shape == (3, 2)
    _, one = plots.latent_tsne({"a": np.ones((1, 4))})
    assert one.shape == (1, 2)
    with pytest.raises(ValueError, match="hidden size"):
        plots.latent_tsne({"a": np.ones((3, 4)), "b": np.ones((3, 5))})
    with pytest.raises(ValueError):
        plots.latent_tsne({"a": np.zeros((0, 4))})


# ---------------------------------------------------------------------------------------------- visual gain
def test_visual_gain_distribution_with_needs_vision():
    rows = [
        {"gain": 0.6, "kept": True, "needs_vision": True},
        {"gain": 0.4, "kept": True, "needs_vision": True},
        {"gain": 0.2, "kept": True, "needs_vision": False},
        {"gain": -0.1, "kept": False, "needs_vision": False},
        {"gain": 0.0, "kept": False, "needs_vision": True},
        {"gain": 0.1, "kept": False, "needs_vision": None},
    ]
    fig = plots.visual_gain_distribution(rows)
    hists = [t for t in fig.data if isinstance(t, go.Histogram)]
    bars = [t for t in fig.data if isinstance(t, go.Bar)]
    assert [h.meta["group"] for h in hists] == ["kept", "dropped"]
    assert sorted(hists[0].x) == [0.2, 0.4, 0.6]
    assert sorted(hists[1].x) == [-0.1, 0.0, 0.1]
    assert hists[0].xbins.size == hists[1].xbins.size
    assert [b.meta["group"] for b in bars] == ["needs_vision", "text_suffices"]
    assert bars[0].y[0] == pytest.approx(200 / 3) and bars[0].y[1] == pytest.approx(50.0)  # None not counted
    assert bars[1].base[0] == pytest.approx(200 / 3)
    assert "kept 3" in fig.layout.title.text and "dropped 3" in fig.layout.title.text


def test_visual_gain_distribution_dataframe_without_needs_vision():
    df = pd.DataFrame({"gain": [0.5, -0.2, 0.1], "kept": [True, False, False]})
    fig = plots.visual_gain_distribution(df)
    assert len(fig.data) == 2 and all(isinstance(t, go.Histogram) for t in fig.data)
    with pytest.raises(ValueError, match="kept"):
        plots.visual_gain_distribution(pd.DataFrame({"gain": [0.1]}))


# --------------------------------------------------------------------------------------------- results table
def _fb_records(correct_by_split):
    recs = []
    for split, (n, k) in correct_by_split.items():
        for i in range(n):
            recs.append({"question_type": split, "answer": "A",
                         "response": "<answer>A</answer>" if i < k else "<answer>B</answer>"})
    return recs


def test_results_table_paper_rows_grey_and_formatting():
    summary = {"scores": score_futurebench(_fb_records({"hop1": (4, 3), "hop2": (2, 1)})),
               "inference_cost": {"mean_new_tokens": 12.5, "mean_latency_s": 0.5}}
    df, _ = comparison_table(futurebench={"latent SFT": summary})
    fig = plots.results_table(df, "FutureBench")
    table = fig.data[0]
    assert isinstance(table, go.Table)
    header = [h.replace("<b>", "").replace("</b>", "") for h in table.header.values]
    assert "setting" in header and "AVG" in header
    assert "judge failures" not in header  # all-empty column dropped
    n_rows = len(df)
    fills = table.cells.fill.color[0]
    assert len(fills) == n_rows
    for setting, fill in zip(df["setting"], fills):
        assert (fill == plots.PAPER_ROW_COLOR) == setting.startswith("paper")
    assert fills[-1] != plots.PAPER_ROW_COLOR
    avg_col = table.cells.values[header.index("AVG")]
    assert avg_col[0] == "61.00"  # paper Qwen3-VL-8B AVG, two decimals
    assert avg_col[-1] == "66.67"  # workbook: 4/6 correct
    assert table.cells.values[header.index("n")][-1] == "6"
    assert table.cells.values[header.index("1-hop")][0] == ""  # not reported by the paper: empty, not 0
    fig = plots.results_table(df, "t", columns=["model", "AVG"], digits=1)
    assert len(fig.data[0].cells.values) == 2
    assert fig.data[0].cells.fill.color[0][0] == plots.PAPER_ROW_COLOR  # flags survive column selection


# -------------------------------------------------------------------------------------------- accuracy by hop
def test_accuracy_by_hop_stages_and_modes():
    base = score_futurebench(_fb_records({"hop1": (2, 1), "hop2": (2, 0), "hop3": (2, 2)}))
    rl = score_futurebench(_fb_records({"hop1": (2, 2), "hop2": (2, 2), "hop3": (2, 1), "hop5": (2, 2)}))
    # the faithful extractor reads "Answer: B" inside the tags as A (a release defect): modes must differ
    tricky = [{"question_type": "hop1", "answer": "B", "response": "<answer>Answer: B</answer>"}]
    tr = score_futurebench(tricky)
    fig = plots.accuracy_by_hop({"base": base, "LA-DAPO": rl, "x": {"scores": tr}},
                                paper={"Future-L1-RL": {"1-hop": 83.2, "AVG": 85.4}})
    bars = [t for t in fig.data if isinstance(t, go.Bar)]
    assert [b.name for b in bars] == ["base", "LA-DAPO", "x"]
    assert list(bars[0].x) == list(plots.HOP_COLUMNS)
    assert list(bars[0].y) == [50.0, 0.0, 100.0, None, 50.0]
    assert list(bars[1].y) == [100.0, 100.0, 50.0, 100.0, 87.5]
    assert bars[0].marker.color == plots.STAGE_COLORS["base"]
    assert bars[2].y[0] == 100.0
    faithful = plots.accuracy_by_hop({"x": tr}, mode="faithful")
    assert faithful.data[0].y[0] == 0.0
    ref = [t for t in fig.data if isinstance(t, go.Scatter)]
    assert ref[0].name == "paper: Future-L1-RL" and ref[0].y[0] == 83.2 and ref[0].y[1] is None
    assert fig.layout.yaxis.title.text == "accuracy (%)"


# ---------------------------------------------------------------------------------------------------- saving
def _small_fig():
    return go.Figure(go.Bar(x=["a", "b"], y=[1.25, 7.5], name="probe-trace"))


def test_save_figure_png_failure_falls_back(tmp_path, monkeypatch, caplog):
    def boom(*args, **kwargs):
        raise RuntimeError("Kaleido requires Google Chrome to be installed.")

    monkeypatch.setattr(go.Figure, "to_image", boom)
    monkeypatch.setattr(plots.saving, "_png_warned", False)
    with caplog.at_level(logging.WARNING, logger="fl1_core.plots"):
        out = plots.save_figure(_small_fig(), tmp_path / "figs", "probe")
        out2 = plots.save_figure(_small_fig(), tmp_path / "figs", "probe2")
    assert out["png"] is None and "Chrome" in out["png_error"]
    assert out2["png"] is None
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # warned once
    assert "apt-get install chromium" in warnings[0].getMessage() and "BROWSER_PATH" in warnings[0].getMessage()
    html = (tmp_path / "figs" / "probe.html").read_text()
    assert "probe-trace" in html and "7.5" in html
    assert not (tmp_path / "figs" / "probe.png").exists()
    assert not [p for p in (tmp_path / "figs").iterdir() if p.name.endswith(".tmp")]
    with pytest.raises(ValueError):
        plots.save_figure(_small_fig(), tmp_path, "../escape")


def _chrome_available() -> bool:
    import os

    return bool(os.environ.get("BROWSER_PATH") or shutil.which("chromium") or shutil.which("google-chrome")
                or shutil.which("chrome") or shutil.which("chromium-browser"))


@pytest.mark.skipif(not _chrome_available(), reason="static export needs Chrome/Chromium")
def test_save_figure_writes_html_and_png(tmp_path):
    pytest.importorskip("kaleido")
    out = plots.save_figure(_small_fig(), tmp_path, "bars")
    assert out["png_error"] is None, out
    assert (tmp_path / "bars.html").read_text().count("probe-trace") >= 1
    assert (tmp_path / "bars.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out["png"] == str(tmp_path / "bars.png")


def test_save_figure_directory_mode_writes_plotlyjs_once(tmp_path, monkeypatch):
    monkeypatch.setattr(go.Figure, "to_image", lambda *a, **k: b"\x89PNG\r\n\x1a\nfake")
    out = plots.save_figure(_small_fig(), tmp_path, "small", include_plotlyjs="directory")
    html = (tmp_path / "small.html").read_text()
    assert 'src="plotly.min.js"' in html and len(html) < 100_000
    assert (tmp_path / "plotly.min.js").stat().st_size > 1_000_000
    assert out["png"] == str(tmp_path / "small.png")
    assert (tmp_path / "small.png").read_bytes().startswith(b"\x89PNG")


def test_save_figure_shares_one_plotlyjs_per_run(tmp_path, monkeypatch):
    """Default: plotly.js once in <run>/_static, every figure HTML small and pointing at it, plus the figure JSON."""
    monkeypatch.setattr(go.Figure, "to_image", lambda *a, **k: b"\x89PNG\r\n\x1a\nfake")
    figures = tmp_path / "run" / "figures"
    for name in ("a", "b"):
        plots.save_figure(_small_fig(), figures, name)
        html = (figures / f"{name}.html").read_text()
        assert 'src="../_static/plotly.min.js"' in html and len(html) < 100_000
        assert json.loads((figures / f"{name}.json").read_text())["data"][0]["name"] == "probe-trace"
    assert (tmp_path / "run" / "_static" / "plotly.min.js").stat().st_size > 1_000_000
    assert not (figures / "plotly.min.js").exists()
