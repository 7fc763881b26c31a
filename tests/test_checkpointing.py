"""One checkpoint layout and one model fingerprint for every stage."""

from __future__ import annotations

import torch

from fl1_core.checkpointing import (
    STATE_FILE, checkpoint_dirs, checkpoint_path, latest_checkpoint, model_fingerprint, prune_checkpoints,
)


def _complete(path):
    path.mkdir(parents=True)
    (path / STATE_FILE).write_text("{}")
    return path


def test_layout_lists_complete_checkpoints_in_step_order_and_finds_earlier_rl_names(tmp_path):
    assert checkpoint_path(tmp_path, 12).name == "step-00000012"
    _complete(checkpoint_path(tmp_path, 100))
    _complete(tmp_path / "checkpoints" / "step_000007")  # an RL folder of an earlier version
    (checkpoint_path(tmp_path, 200)).mkdir()  # no state file: not complete
    (tmp_path / "checkpoints" / ".step-00000300.tmp-1").mkdir()
    assert [p.name for p in checkpoint_dirs(tmp_path)] == ["step_000007", "step-00000100"]
    assert latest_checkpoint(tmp_path).name == "step-00000100"
    _complete(checkpoint_path(tmp_path, 150))
    prune_checkpoints(tmp_path, keep=2)
    assert [p.name for p in checkpoint_dirs(tmp_path)] == ["step-00000100", "step-00000150"]
    assert latest_checkpoint(tmp_path / "none") is None


def test_fingerprint_follows_the_weights_not_a_wrapper():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    wrapped = torch.nn.ModuleDict({"module": net})  # every name gets a "module." prefix, like DDP
    assert model_fingerprint(net) == model_fingerprint(wrapped)
    with torch.no_grad():
        net[1].bias[0] += 1e-3
    assert model_fingerprint(net) != model_fingerprint(torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2)))
    before = model_fingerprint(net)
    with torch.no_grad():
        net[0].weight[2, 1] += 1e-4
    assert model_fingerprint(net) != before
