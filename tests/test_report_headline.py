"""The run report opens with its headline (held-out accuracy per checkpoint, the audit's differences), and the
manifest records data paths relative to the run or the checkout."""

from __future__ import annotations

import json
import os

import pytest

from fl1_core.report import build_report
from fl1_core.report.headline import audit_headline, heldout_headline
from fl1_core.runs import REPO_ROOT, portable_path, resolve_data_path, write_manifest


def _heldout(run, name, flags, frame=0):
    rows = [{"id": f"q{i}", "kind": "k", "group": "frame" if i < frame else "vision", "answer": "x",
             "correct": ok, "concluded": "x" if ok else "y"} for i, ok in enumerate(flags)]
    (run / "metrics").mkdir(parents=True, exist_ok=True)
    (run / "metrics" / f"rl_heldout.{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.fixture
def run(tmp_path):
    run = tmp_path / "runs" / "r"
    _heldout(run, "sft_init", [True] * 6 + [False] * 4, frame=4)
    _heldout(run, "base", [True] * 2 + [False] * 8)
    audit = {"contrasts": {"oracle - oracle_shuffled": {"all": {
                 "event": {"n": 10, "delta": 0.2, "ci95": [0.05, 0.35]},
                 "letter": {"n": 10, "delta": -0.1, "ci95": [-0.3, 0.1]}}}},
             "pause_comparison": {"all (event)": {"latent SFT − pause SFT": {"n": 10, "delta": 0.0,
                                                                            "ci95": [-0.1, 0.1]}}}}
    (run / "audit").mkdir()
    (run / "audit" / "audit.json").write_text(json.dumps(audit))
    write_manifest(run, parameters={"seed": 0})
    return run


def test_heldout_headline_counts_each_checkpoint_in_order(run):
    rows = heldout_headline(run)
    assert [(r["checkpoint"], r["items"]) for r in rows] == [("base", "all"), ("latent SFT", "all"),
                                                            ("latent SFT", "frame")]
    latent = rows[1]
    assert latent["n"] == 10 and latent["letter"]["accuracy"] == pytest.approx(0.6)
    lo, hi = latent["letter"]["ci95"]
    assert lo < 0.6 < hi and hi - lo > 0.3  # a Wilson interval over 10 items is wide
    assert rows[2]["n"] == 4 and rows[2]["event"]["accuracy"] == 1.0


def test_audit_headline_reads_both_differences(run):
    rows = {(r["difference"], r["score"]): r for r in audit_headline(run)}
    assert rows[("oracle − shuffled latents", "event")]["delta"] == 0.2
    assert rows[("oracle − shuffled latents", "letter")]["ci95"] == [-0.3, 0.1]
    assert rows[("latent − pause-token SFT", "event")]["audit"] == "audit"
    assert ("latent − pause-token SFT", "letter") not in rows


def test_report_opens_with_the_headline(run):
    page = build_report(run).read_text()
    assert page.index('id="headline"') < page.index('id="manifest"')
    assert "60.0 % [" in page and "+20.0 [+5.0, +35.0]" in page


def test_report_says_which_notebook_writes_a_missing_headline(tmp_path):
    run = tmp_path / "bare"
    write_manifest(run, parameters={"seed": 1})
    page = build_report(run).read_text()
    assert "notebook 04 writes it" in page and "notebook 07 writes them" in page


def test_manifest_paths_are_relative_to_the_run_or_checkout(tmp_path):
    run = tmp_path / "run"
    inside = run / "world" / "sft.json"
    inside.parent.mkdir(parents=True)
    inside.write_text("[]")
    readme = REPO_ROOT / "README.md"
    manifest = write_manifest(run, parameters={"data_dir": str(run / "world"), "seed": 3},
                              data_files=[inside, readme])
    assert set(manifest["data_hashes"]) == {"run:world/sft.json", "README.md"}
    assert manifest["parameters"] == {"data_dir": "run:world", "seed": 3}
    assert resolve_data_path("run:world/sft.json", run) == run / "world" / "sft.json"
    assert resolve_data_path("README.md", run) == readme
    assert portable_path("/elsewhere/x.json", run) == "/elsewhere/x.json"


def test_the_manifest_records_the_cpu_and_its_kernels(run):
    import torch

    cpu = json.loads((run / "manifest.json").read_text())["cpu"]
    assert cpu["torch_kernels"] == torch.backends.cpu.get_cpu_capability()
    assert cpu["logical_cores"] == os.cpu_count() and cpu["model"]
