"""scripts/interpolate_checkpoints.py: init + α·(tuned − init), weight by weight; a different architecture, an
adapter folder, a non-finite α and a taken output folder are refused."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fl1_core.checkpoints import save_model
from fl1_core.model import load_future_l1
from fl1_core.tiny import build_tiny_future_l1

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from interpolate_checkpoints import interpolate_checkpoints  # noqa: E402


@pytest.fixture(scope="module")
def tuned(saved_tiny, tmp_path_factory):
    model, processor = load_future_l1(saved_tiny, device=None)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    return save_model(model, processor, tmp_path_factory.mktemp("tuned") / "ckpt")


@pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0])
def test_every_weight_moves_alpha_of_the_way(saved_tiny, tuned, tmp_path, alpha):
    out = interpolate_checkpoints(saved_tiny, tuned, tmp_path / "mix", alpha)
    start, end = (load_future_l1(d, device=None)[0].state_dict() for d in (saved_tiny, tuned))
    mixed = load_future_l1(out, device=None)[0].state_dict()
    moved = [k for k in end if end[k].is_floating_point() and not torch.equal(start[k], end[k])]
    assert len(moved) > 10
    for k in moved:
        torch.testing.assert_close(mixed[k], start[k] + alpha * (end[k] - start[k]))


def test_bad_inputs_are_refused(saved_tiny, tuned, tmp_path):
    headed, processor = build_tiny_future_l1(seed=0)
    headed.add_projection_head(headed.base.config.get_text_config().hidden_size)
    with pytest.raises(ValueError, match="differ in architecture"):
        interpolate_checkpoints(saved_tiny, save_model(headed, processor, tmp_path / "headed"), tmp_path / "o", 0.5)
    with pytest.raises(ValueError, match="finite"):
        interpolate_checkpoints(saved_tiny, tuned, tmp_path / "o", float("nan"))
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "x").write_text("x")
    with pytest.raises(ValueError, match="not empty"):
        interpolate_checkpoints(saved_tiny, tuned, taken, 0.5)
    with pytest.raises(ValueError, match="no model folder"):
        interpolate_checkpoints(tmp_path, tuned, tmp_path / "o", 0.5)
    script = [sys.executable, str(ROOT / "scripts" / "interpolate_checkpoints.py")]
    usage = subprocess.run([*script, str(saved_tiny), str(tuned), str(tmp_path / "o"), "half"],
                           capture_output=True, text=True)
    assert usage.returncode == 2 and "invalid float value" in usage.stderr


def test_a_permuted_update_keeps_each_weights_values_in_another_order(saved_tiny, tuned, tmp_path):
    out = interpolate_checkpoints(saved_tiny, tuned, tmp_path / "perm", 1.0, permute_seed=0)
    again = interpolate_checkpoints(saved_tiny, tuned, tmp_path / "perm_again", 1.0, permute_seed=0)
    other = interpolate_checkpoints(saved_tiny, tuned, tmp_path / "perm_other", 1.0, permute_seed=1)
    start, end, mixed, same, diff = (load_future_l1(d, device=None)[0].state_dict()
                                     for d in (saved_tiny, tuned, out, again, other))
    moved = [k for k in end if end[k].is_floating_point() and end[k].numel() > 1 and not torch.equal(start[k], end[k])]
    assert len(moved) > 10
    for k in moved:
        update, shuffled = (end[k] - start[k]).flatten(), (mixed[k] - start[k]).flatten()
        torch.testing.assert_close(shuffled.sort().values, update.sort().values)  # the same values, so the same norm
        assert not torch.allclose(shuffled, update)  # in another order
        assert torch.equal(mixed[k], same[k]) and not torch.equal(mixed[k], diff[k])  # fixed by the seed
