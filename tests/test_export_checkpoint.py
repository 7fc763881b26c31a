"""scripts/export_training_checkpoint.py: a training checkpoint's weights, exported as a model folder, load back
exactly; damaged, missing or sharded checkpoints and a taken output folder are refused."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fl1_core.checkpoints import save_checkpoint
from fl1_core.checkpoints.layout import checkpoint_path
from fl1_core.model import load_future_l1

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from export_training_checkpoint import export_checkpoint  # noqa: E402


def _run_with_checkpoint(saved_tiny, tmp_path, step=2):
    run = tmp_path / "run"
    shutil.copytree(saved_tiny, run / "final")
    model, _ = load_future_l1(run / "final", device=None)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    name = next(k for k, v in state.items() if k.startswith("base.") and v.is_floating_point() and v.ndim == 2)
    state[name] += 0.5
    save_checkpoint(run, step, identity={"stage": "test"}, tensors={"model.pt": state})
    return run, name, state[name]


def test_exported_step_holds_the_checkpoint_weights_not_the_final_ones(saved_tiny, tmp_path):
    run, name, moved = _run_with_checkpoint(saved_tiny, tmp_path)
    out = export_checkpoint(run, 2, tmp_path / "step2")
    exported, _ = load_future_l1(out, device=None)
    final, _ = load_future_l1(run / "final", device=None)
    assert torch.equal(exported.state_dict()[name], moved.to(exported.state_dict()[name].dtype))
    assert not torch.equal(final.state_dict()[name], exported.state_dict()[name])


def test_bad_checkpoints_and_a_taken_output_are_refused(saved_tiny, tmp_path):
    run, _, _ = _run_with_checkpoint(saved_tiny, tmp_path)
    script = [sys.executable, str(ROOT / "scripts" / "export_training_checkpoint.py")]
    missing = subprocess.run([*script, str(run), "7", str(tmp_path / "o")], capture_output=True, text=True)
    assert missing.returncode == 2 and "no complete checkpoint of step 7" in missing.stderr
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "x").write_text("x")
    with pytest.raises(ValueError, match="not empty"):
        export_checkpoint(run, 2, taken)
    model_file = checkpoint_path(run, 2) / "model.pt"
    model_file.write_bytes(model_file.read_bytes()[:-10])
    with pytest.raises(ValueError, match="fails its file check"):
        export_checkpoint(run, 2, tmp_path / "o")
    shutil.rmtree(run / "final")
    with pytest.raises(ValueError, match="no model folder"):
        export_checkpoint(run, 2, tmp_path / "o")
