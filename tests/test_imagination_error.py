"""The base's imagination measure: per-slot alignment error, teacher-forced and own-fed, beside its baselines."""

from __future__ import annotations

import pytest
import torch

from fl1_core.pretrain.imagination import imagination_error

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def shipped():
    from fl1_core.model import load_future_l1
    from fl1_core.world_base import world_base_path

    return load_future_l1(world_base_path())


def test_the_shipped_base_imagines_better_than_both_baselines_and_a_random_head_does_not(shipped):
    model, processor = shipped
    measured = imagination_error(model, processor, n=8)
    assert measured["n_chains"] == 8 and measured["n_slots"] >= 8 * 9
    assert set(measured["model"]["by_row"]) == {"top", "middle", "bottom"}
    for name in ("model", "own"):  # teacher-forced and own-fed predictions beat the slot means
        assert measured[name]["all"] < measured["slot_mean"]["all"]
    assert measured["model"]["all"] <= measured["own"]["all"] + 1e-6  # own-fed slots see worse inputs
    # a fresh projection head knows nothing: it is worse than the slot means
    head = model.latent_head
    saved = {k: v.clone() for k, v in head.state_dict().items()}
    try:
        torch.manual_seed(0)
        for p in head.parameters():
            torch.nn.init.normal_(p, std=0.02)
        fresh = imagination_error(model, processor, n=8)
    finally:
        head.load_state_dict(saved)
    assert fresh["model"]["all"] > measured["slot_mean"]["all"]
    assert fresh["slot_mean"] == measured["slot_mean"] and fresh["present"] == measured["present"]


def test_bad_sizes_are_refused(shipped):
    model, processor = shipped
    with pytest.raises(ValueError, match="n >= 1"):
        imagination_error(model, processor, n=0)
