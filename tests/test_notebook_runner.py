"""The notebook runner: notebooks execute under papermill, resume, stop loudly on failure; sweeps isolate failures."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
import yaml

from fl1_core.data.world import WorldConfig
from fl1_core.notebook_runner import NotebookFailed, expand_sweep, run_sweep, run_workbook, workbook_notebooks


def _notebook(path: Path, body: str, params: str = "run_dir = ''\nfail = False\nvalue = 1") -> Path:
    nb = nbformat.v4.new_notebook()
    p = nbformat.v4.new_code_cell(params)
    p.metadata["tags"] = ["parameters"]
    nb.cells = [p, nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


BODY = """
from pathlib import Path
import json
if fail:
    raise RuntimeError("deliberate failure")
Path(run_dir, "metrics").mkdir(exist_ok=True)
Path(run_dir, "metrics", "summary.json").write_text(json.dumps({"value": value}))
"""


@pytest.fixture
def books(tmp_path):
    d = tmp_path / "nb"
    d.mkdir()
    return [_notebook(d / "00_first.ipynb", BODY), _notebook(d / "01_second.ipynb", BODY)]


def test_every_pipeline_notebook_has_one_tagged_parameters_cell_and_no_outputs():
    books = workbook_notebooks(include_benchmarks=True)
    assert [b.name for b in books][:2] == ["00_quickstart.ipynb", "01_data.ipynb"]
    for book in books:
        nb = nbformat.read(book, 4)
        tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, book
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert code.index(tagged[0]) == 0, f"{book}: the parameters cell must be the first code cell"
        assert "run_dir" in tagged[0].source
        assert all(not c.get("outputs") and not c.get("execution_count") for c in code), f"{book} has outputs"


def test_run_executes_in_order_and_resumes(books, tmp_path):
    res = run_workbook("r1", runs_root=tmp_path / "runs", notebooks=books, parameters={"value": 7}, progress=False)
    assert res.completed == ["00_first", "01_second"]
    assert json.loads((res.run_dir / "metrics" / "summary.json").read_text()) == {"value": 7}
    assert (res.run_dir / "00_first.ipynb").exists() and (res.run_dir / "manifest.json").exists()
    manifest = json.loads((res.run_dir / "manifest.json").read_text())
    assert manifest["parameters"] == {"value": 7} and manifest["packages"]["torch"]
    again = run_workbook("r1", runs_root=tmp_path / "runs", notebooks=books, parameters={"value": 7}, progress=False)
    assert again.completed == [] and again.skipped == ["00_first", "01_second"]
    with pytest.raises(ValueError, match="was started with parameters"):
        run_workbook("r1", runs_root=tmp_path / "runs", notebooks=books, parameters={"value": 8}, progress=False)
    (res.run_dir / "metrics" / "summary.json").unlink()  # rerun the last notebook without naming parameters:
    stages = json.loads((res.run_dir / "stages.json").read_text())  # it inherits the run's {"value": 7}
    del stages["completed"]["01_second"]
    (res.run_dir / "stages.json").write_text(json.dumps(stages))
    inherited = run_workbook("r1", runs_root=tmp_path / "runs", notebooks=books, progress=False)
    assert inherited.completed == ["01_second"]
    assert json.loads((res.run_dir / "metrics" / "summary.json").read_text()) == {"value": 7}


def test_a_failed_notebook_stops_the_chain_and_keeps_the_error_cell(books, tmp_path):
    bad = _notebook(books[0].parent / "00_bad.ipynb", BODY, params="run_dir = ''\nfail = True\nvalue = 1")
    with pytest.raises(NotebookFailed, match="00_bad.ipynb failed.*deliberate failure"):
        run_workbook("r2", runs_root=tmp_path / "runs", notebooks=[bad, books[1]], progress=False)
    executed = nbformat.read(tmp_path / "runs" / "r2" / "00_bad.ipynb", 4)
    errors = [o for c in executed.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert errors and "deliberate failure" in errors[0]["evalue"]
    assert not (tmp_path / "runs" / "r2" / "01_second.ipynb").exists()


def test_a_cell_over_the_time_limit_restarts_the_notebook_then_fails(tmp_path):
    slow_once = _notebook(
        tmp_path / "slow_once.ipynb",
        "import time\nfrom pathlib import Path\nmark = Path(run_dir) / 'tried'\n"
        "if not mark.exists():\n    mark.write_text('1')\n    time.sleep(60)",
    )
    res = run_workbook("t1", runs_root=tmp_path / "runs", notebooks=[slow_once], progress=False, cell_timeout_s=3)
    assert res.completed == ["slow_once"]  # the first attempt timed out, the restart finished
    always_slow = _notebook(tmp_path / "always_slow.ipynb", "import time\ntime.sleep(60)")
    with pytest.raises(NotebookFailed, match="longer than 3 s in each of 2 attempt"):
        run_workbook("t2", runs_root=tmp_path / "runs", notebooks=[always_slow], progress=False, cell_timeout_s=3)


def test_sweep_reports_a_failing_run_and_completes_the_others(books, tmp_path):
    spec = {"name": "sw", "base": {"value": 3}, "grid": {"fail": [False, True], "seed": [0, 1]}}
    assert len(expand_sweep(spec)) == 4
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(spec))
    results = run_sweep(path, runs_root=tmp_path / "runs", parallel=2, notebooks=[str(b) for b in books])
    status = {r["run_id"]: r["status"] for r in results}
    assert sorted(status.values()) == ["failed", "failed", "ok", "ok"]
    assert all(("fail=True" in rid) == (s == "failed") for rid, s in status.items())
    ok = [r for r in results if r["status"] == "ok"]
    assert all(r["metrics"] == {"value": 3} for r in ok)
    table = (tmp_path / "runs" / "sw-summary.md").read_text()
    assert table.count("| failed |") == 2 and "deliberate failure" in table


TINY_PARAMETERS = {
    "world_size": "small", "seed": 0, "sft_steps": 3, "sft_batch_size": 2, "format_prompts": 4, "rl_steps": 1,
    "max_new_tokens": 24, "scaling_sizes": [2, 4], "scaling_epochs": 0.5, "scaling_eval_limit": 2,
    "futurebench_limit": 4, "twiffbench_limit": 2, "tsne_prompts": 4, "audit_items": 6, "folds": 2,
}
EXPECTED_FIGURES = ("latent_span_donuts", "rl_data_scaling", "reward_curves", "latent_tsne", "visual_gain",
                    "training_curves", "results_table", "accuracy_by_hop", "audit_pause_control")


@pytest.mark.slow
def test_pipeline_notebooks_execute_end_to_end_with_tiny_parameters(tmp_path, monkeypatch):
    """Every pipeline notebook under papermill on the small world: no error outputs, every figure written, and a
    judge key set in the environment never reaches any file of the run folder."""
    sentinel = "sk-test-SENTINEL-0123456789abcdef"
    monkeypatch.setenv("FL1_JUDGE_API_KEY", sentinel)
    params = {**TINY_PARAMETERS, "data_dir": str(tmp_path / "world")}
    # a cell limit turns a rare papermill/jupyter_client hang (idle kernel, client never answered) into a retry
    res = run_workbook("nb", runs_root=tmp_path / "runs", parameters=params, progress=False, cell_timeout_s=600)
    assert res.completed == [b.stem for b in workbook_notebooks()]
    for book in workbook_notebooks():
        executed = nbformat.read(res.run_dir / book.name, 4)
        outputs = [o for c in executed.cells if c.cell_type == "code" for o in c.get("outputs", [])]
        assert not [o for o in outputs if o.output_type == "error"], book.name
        assert outputs, f"{book.name} produced no output"
    for name in EXPECTED_FIGURES:
        html = res.run_dir / "figures" / f"{name}.html"
        assert html.exists() and html.stat().st_size > 1000, name
    summary = json.loads((res.run_dir / "metrics" / "summary.json").read_text())
    assert {"base", "latent SFT", "LA-DAPO"} <= set(summary)
    assert json.loads((res.run_dir / "metrics" / "data.json").read_text())["counts"]["sft"]["rejects"] == 0
    heldout = json.loads((res.run_dir / "metrics" / "rl.json").read_text())["heldout_mcq"]
    assert set(heldout) == {"base", "base_chain", "text_sft", "sft_init", "grpo", "dapo", "la-dapo"}
    assert heldout["base_chain"]["assistant_prefix"].startswith("<reason>")  # the base on the chain route too
    small = WorldConfig.small()
    assert all(r["n"] == small.heldout_mcq_size + small.heldout_frame_size and 0 <= r["accuracy"] <= 1
               for r in heldout.values())
    rl_book = nbformat.read(res.run_dir / "04_rl.ipynb", 4)  # the event-kind conclusions' table (world kinds)
    rl_outputs = [o for c in rl_book.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert any("role swaps" in json.dumps(o) and "movers read right" in json.dumps(o) for o in rl_outputs)
    # the rollout log's table: answers rewarded against answers stating each event type, per mode
    assert any("answers rewarded / stating the event type" in json.dumps(o) for o in rl_outputs)
    leaks = [p for p in res.run_dir.rglob("*") if p.is_file() and sentinel.encode() in p.read_bytes()]
    assert not leaks, f"the judge key leaked into {leaks}"


def test_run_layout_names_every_checkpoint_once(tmp_path):
    from fl1_core.notebook_setup import RunLayout
    from fl1_core.run_summary import CHECKPOINT_LABELS

    layout = RunLayout(tmp_path)
    layout.set_base_model(tmp_path / "base", "shipped")
    for folder in (tmp_path / "base", layout.sft_model("latent"), layout.rl_model("la-dapo")):
        folder.mkdir(parents=True)
        (folder / "config.json").write_text("{}")
    assert list(layout.checkpoints()) == ["base", "sft_init", "la-dapo"]  # trained ones, in stage order
    everything = layout.checkpoints(existing=False)
    assert list(everything) == [k for k in CHECKPOINT_LABELS if k != "base_chain"]
    assert everything["pause_sft"] == tmp_path / "sft" / "pause" / "final"
    with pytest.raises(KeyError, match="unknown checkpoint 'latent SFT'"):
        layout.checkpoint("latent SFT")
