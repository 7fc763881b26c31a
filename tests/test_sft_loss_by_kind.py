"""scripts/sft_loss_by_kind.py: each kind's SFT loss on the drift draw's probe, the same records for every folder;
a model moved away from the reference raises it, the reference itself does not."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fl1_core.checkpoints import save_model
from fl1_core.model import load_future_l1

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from sft_loss_by_kind import loss_by_kind  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def moved(saved_tiny, tmp_path_factory):
    model, processor = load_future_l1(saved_tiny, device=None)
    with torch.no_grad():
        model.base.lm_head.weight.add_(0.5 * torch.randn_like(model.base.lm_head.weight))
    return save_model(model, processor, tmp_path_factory.mktemp("moved") / "ckpt")


def test_the_same_probe_scores_every_folder_and_a_moved_model_loses_more(saved_tiny, moved, small_world):
    probe, ce = loss_by_kind(small_world / "sft.json", [saved_tiny, moved], probe=2, seed=0, key="question_kind")
    kinds = {r["meta"]["question_kind"] for r in json.loads((small_world / "sft.json").read_text())}
    assert set(probe) <= kinds and len(probe) >= 3 and all(1 <= len(ids) <= 2 for ids in probe.values())
    assert loss_by_kind(small_world / "sft.json", [saved_tiny], probe=2, seed=0, key="question_kind") == \
        (probe, {str(saved_tiny): ce[str(saved_tiny)]})  # the same records and values on every call
    reference, other = ce[str(saved_tiny)], ce[str(moved)]
    assert set(reference) == set(probe) and all(v > 0 for v in reference.values())
    assert sum(other[g] - reference[g] for g in probe) > 0  # noise on the LM head raises the chains' CE


def test_the_command_prints_each_kind_and_refuses_a_missing_file(saved_tiny, moved, small_world, tmp_path):
    out = tmp_path / "ce.json"
    res = subprocess.run([sys.executable, str(ROOT / "scripts" / "sft_loss_by_kind.py"), str(small_world / "sft.json"),
                          str(saved_tiny), str(moved), "--probe", "2", "--out", str(out)],
                         capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, cwd=ROOT)
    assert res.returncode == 0, res.stderr[-2000:]
    table = [line for line in res.stdout.splitlines() if " | " in line]
    saved = json.loads(out.read_text())
    assert len(table) == 1 + len(saved["probe"])
    assert set(saved["ce"]) == {str(saved_tiny), str(moved)}
    bad = subprocess.run([sys.executable, str(ROOT / "scripts" / "sft_loss_by_kind.py"), str(tmp_path / "none.json"),
                          str(saved_tiny), str(moved)], capture_output=True, text=True)
    assert bad.returncode == 2 and "no such SFT file" in bad.stderr
