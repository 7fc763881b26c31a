"""The SFT anchor's drift draw (fl1_core.rl.anchor_drift): the weights' formula, the seeded draw, the anchor's
switch from the uniform order to the groups whose loss rose, and the trainer's probes, logs and resume."""

from __future__ import annotations

import copy
import json
import shutil
from collections import Counter
from types import SimpleNamespace

import numpy as np
import pytest

from fl1_core.data.formats import load_rl_records
from fl1_core.rl.anchor_drift import NO_GROUP, drawable, drift_weights, group_indices, probe_indices, weighted_draw
from fl1_core.rl.config import RLConfig
from fl1_core.rl.sft_anchor import SFTAnchor, load_anchor_records
from fl1_core.rl.trainer import RLTrainer
from fl1_core.runs import read_jsonl

pytestmark = pytest.mark.usefixtures("one_thread")


def test_the_weights_are_the_normalised_rises_and_zero_when_nothing_rose():
    w = drift_weights({"a": 1.0, "b": 2.0, "c": 0.5}, {"a": 1.3, "b": 2.1, "c": 0.4})
    assert w == pytest.approx({"a": 0.75, "b": 0.25, "c": 0.0})
    assert drift_weights({"a": 1.0}, {"a": 0.9}) == {"a": 0.0}
    with pytest.raises(ValueError, match="probe groups differ"):
        drift_weights({"a": 1.0}, {"b": 1.0})


def test_groups_and_the_fixed_probe():
    records = [SimpleNamespace(meta={"kind": k}) for k in "abab"] + [SimpleNamespace(meta={}),
                                                                   SimpleNamespace(meta=None)]
    groups = group_indices(records, "kind")
    assert groups == {NO_GROUP: [4, 5], "a": [0, 2], "b": [1, 3]}
    big = {"x": list(range(100)), "y": [7], "z": [1, 2, 3]}
    probe = probe_indices(big, 5, seed=3)
    assert len(probe["x"]) == 5 and set(probe["x"]) <= set(range(100))
    assert len(probe["z"]) == 1 and "y" not in probe  # at most half a group; a group of one has no probe
    left = drawable(big, probe)
    assert set(left) == {"x", "z"} and len(left["x"]) == 95 and not set(left["x"]) & set(probe["x"])
    assert probe == probe_indices(big, 5, seed=3) and probe != probe_indices(big, 5, seed=4)
    with pytest.raises(ValueError, match="sft_anchor_probe"):
        probe_indices(big, 0, seed=3)


def test_the_draw_is_seeded_by_update_and_follows_the_weights():
    groups = {"a": [0, 1, 2], "b": [3, 4], "c": [5]}
    weights = {"a": 0.8, "b": 0.2, "c": 0.0}
    one = weighted_draw(groups, weights, seed=1, update=4, batch=6, rank=0)
    assert one == weighted_draw(groups, weights, seed=1, update=4, batch=6, rank=0)  # a resumed run draws the same
    assert 5 not in one
    many = [i for u in range(400) for i in weighted_draw(groups, weights, seed=1, update=u, batch=5, rank=0)]
    share_a = np.mean([i < 3 for i in many])
    assert 0.75 < share_a < 0.85
    with pytest.raises(ValueError, match="positive weight"):
        weighted_draw(groups, {"a": 0.0}, seed=1, update=0, batch=2, rank=0)


@pytest.fixture(scope="module")
def anchor_file(small_world, tmp_path_factory):
    rows = json.loads((small_world / "sft.json").read_text())[:12]
    for row in rows:
        row["video"] = str(small_world / row["video"])
    path = tmp_path_factory.mktemp("drift") / "sft_anchor.json"
    path.write_text(json.dumps(rows))
    return path


def test_the_anchor_never_draws_its_probe_and_then_only_from_risen_groups(tiny, anchor_file):
    records = load_anchor_records(anchor_file)
    anchor = SFTAnchor(records, tiny[1], tiny[0].latent_config, weight=1.0, batch=3, seed=5,
                       system_prompt="interleaved", draw="drift", probe_size=2)
    probed = {i for ix in anchor.probe.values() for i in ix}
    drawn = [i for u in range(60) for i in anchor.indices(u)]
    assert probed and not probed & set(drawn)
    assert set(drawn) == {i for ix in anchor.groups.values() for i in ix}  # before any rise: every other record
    uniform = anchor.indices(0)
    losses = anchor.probe_losses(anchor_model := copy.deepcopy(tiny[0]), anchor_model)
    assert set(losses) == set(anchor.groups) and all(np.isfinite(v) and v > 0 for v in losses.values())
    assert losses == anchor.probe_losses(anchor_model, anchor_model)  # the same records each time
    assert anchor.observe(losses) == {} and anchor.indices(0) == uniform  # the init's losses
    target = sorted(losses)[0]
    risen = {g: v + (0.5 if g == target else -0.1) for g, v in losses.items()}
    assert anchor.observe(risen)[target] == 1.0
    assert all(i in anchor.groups[target] for u in range(5) for i in anchor.indices(u))
    again = SFTAnchor(records, tiny[1], tiny[0].latent_config, weight=1.0, batch=3, seed=5,
                      system_prompt="interleaved", draw="drift", probe_size=2)
    again.load_state(json.loads(json.dumps(anchor.state())))  # what a checkpoint keeps
    assert again.indices(3) == anchor.indices(3)
    one_each = [records[ix[0]] for ix in group_indices(records, "question_kind").values()]
    assert len(one_each) >= 3
    with pytest.raises(ValueError, match="no group"):  # every kind a single record: nothing to probe
        SFTAnchor(one_each, tiny[1], tiny[0].latent_config, weight=1.0, batch=3, seed=5,
                  system_prompt="interleaved", draw="drift")
    with pytest.raises(ValueError, match="sft_anchor_draw"):
        RLConfig(sft_anchor_draw="kinds")
    with pytest.raises(ValueError, match="sft_anchor_draw"):
        RLConfig(sft_anchor_probe_every=0)


def test_a_probe_record_whose_video_is_gone_leaves_the_probe_and_an_all_bad_batch_is_named(tiny, small_world,
                                                                                          tmp_path):
    every = json.loads((small_world / "sft.json").read_text())
    kinds = Counter(r["meta"]["question_kind"] for r in every)
    two = [k for k, n in kinds.most_common(2)]
    assert all(kinds[k] >= 4 for k in two)
    rows = [dict(r, video=str(small_world / r["video"])) for k in two
            for r in [r for r in every if r["meta"]["question_kind"] == k][:4]]
    path = tmp_path / "anchor.json"
    path.write_text(json.dumps(rows))
    anchor = SFTAnchor(load_anchor_records(path), tiny[1], tiny[0].latent_config, weight=1.0, batch=3, seed=5,
                       system_prompt="interleaved", draw="drift", probe_size=2)
    model = copy.deepcopy(tiny[0])
    before = anchor.probe_losses(model, model)
    group, (gone, _) = two[0], anchor.probe[two[0]]
    moved = tmp_path / "moved.mp4"
    shutil.copy(rows[gone]["video"], moved)
    broken = [dict(r, video=str(moved)) if i == gone else r for i, r in enumerate(rows)]
    path = tmp_path / "anchor.json"
    path.write_text(json.dumps(broken))
    again = SFTAnchor(load_anchor_records(path), tiny[1], tiny[0].latent_config, weight=1.0, batch=3, seed=5,
                      system_prompt="interleaved", draw="drift", probe_size=2,
                      rejects_out=tmp_path / "rejects.jsonl")
    assert again.probe == anchor.probe
    moved.unlink()
    after = again.probe_losses(model, model)
    assert set(after) == set(before) and np.isfinite(after[group])
    assert after[group] != before[group]  # scored on the record that is left
    assert {g: v for g, v in after.items() if g != group} == {g: v for g, v in before.items() if g != group}

    bad = tmp_path / "bad.mp4"
    shutil.copy(rows[0]["video"], bad)
    only_bad = tmp_path / "only_bad.json"
    only_bad.write_text(json.dumps([dict(r, video=str(bad)) for r in rows[:3]]))
    uniform = SFTAnchor(load_anchor_records(only_bad), tiny[1], tiny[0].latent_config, weight=1.0, batch=3, seed=0,
                        system_prompt="interleaved", rejects_out=tmp_path / "bad_rejects.jsonl")
    bad.unlink()
    with pytest.raises(RuntimeError, match="every record of the SFT anchor batch of update 0"):
        uniform.backward(model, model, 0, no_sync=False)
    assert uniform.rejected == 3 and len(read_jsonl(tmp_path / "bad_rejects.jsonl")) == 3


def test_the_trainer_probes_logs_and_resumes_the_drift_draw(tiny, small_world, anchor_file, tmp_path):
    def trainer(steps: int) -> RLTrainer:
        cfg = RLConfig(group_size=4, prompts_per_step=2, max_new_tokens=12, latent={"loose_cap": 4},
                       max_steps=steps, max_rounds=1, progress_bar=False, mode="grpo", learning_rate=1e-2,
                       kl_beta=0.0, save_every=1, sft_anchor=1.0, sft_anchor_data=str(anchor_file),
                       sft_anchor_batch=2, sft_anchor_draw="drift", sft_anchor_probe=2, sft_anchor_probe_every=2)
        return RLTrainer(copy.deepcopy(tiny[0]), tiny[1], load_rl_records(small_world / "rl.jsonl").records[:4],
                         cfg, tmp_path / "run")

    first = trainer(3)
    first.train()
    rows = read_jsonl(tmp_path / "run" / "sft_anchor_drift.jsonl")
    assert sorted({r["step"] for r in rows}) == [0, 2]  # the init, then every 2 steps
    init = {r["group"]: r["ce"] for r in rows if r["step"] == 0}
    assert all(r["init_ce"] == init[r["group"]] for r in rows)
    later = [r for r in rows if r["step"] == 2]
    assert any(r["ce"] != init[r["group"]] for r in later)  # the policy moved
    total = sum(r["weight"] for r in later)
    assert total == pytest.approx(1.0) or total == 0.0
    assert all((r["weight"] > 0) == (r["ce"] > r["init_ce"]) for r in later)
    resumed = trainer(4)
    resumed.train()
    assert resumed.resumed_from == 3
    assert resumed.sft_anchor.init_losses == pytest.approx(init)
    assert resumed.sft_anchor.weights == pytest.approx({r["group"]: r["weight"] for r in later})
    assert sorted(r["step"] for r in read_jsonl(tmp_path / "run" / "sft_anchor_drift.jsonl")) == \
        sorted(r["step"] for r in rows)  # no probe before step 3; nothing written twice
