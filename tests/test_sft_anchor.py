"""The SFT anchor of RL (fl1_core.rl.sft_anchor): its settings, its seeded draw of SFT records, and that its term in
the optimiser step pulls the policy toward the SFT data."""

from __future__ import annotations

import copy
import json
import shutil
from types import SimpleNamespace
from typing import get_args

import numpy as np
import pytest
import torch

from fl1_core.data.examples import sft_example
from fl1_core.data.formats import load_rl_records
from fl1_core.rl.config import AnchorRecords, RLConfig
from fl1_core.rl.sft_anchor import ANCHOR_RECORD_RULES, SFTAnchor, load_anchor_records
from fl1_core.rl.trainer import RLTrainer
from fl1_core.rl.trainer_state import TrainerState
from fl1_core.runs import read_jsonl, write_jsonl

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def anchor_file(small_world, tmp_path_factory):
    rows = json.loads((small_world / "sft.json").read_text())[:8]
    for row in rows:  # absolute media paths, as a run's curated file has them
        row["video"] = str(small_world / row["video"])
    path = tmp_path_factory.mktemp("anchor") / "sft_anchor.json"
    path.write_text(json.dumps(rows))
    return path


def _trainer(tiny, small_world, out, **kw) -> RLTrainer:
    model = copy.deepcopy(tiny[0])
    cfg = RLConfig(group_size=4, prompts_per_step=2, max_new_tokens=12, latent={"loose_cap": 4}, max_steps=1,
                   max_rounds=1, progress_bar=False, mode="grpo", learning_rate=1e-3, kl_beta=0.0, **kw)
    return RLTrainer(model, tiny[1], load_rl_records(small_world / "rl.jsonl").records[:4], cfg, out)


def test_an_anchor_weight_needs_an_sft_file_and_a_missing_file_is_named():
    with pytest.raises(ValueError, match="sft_anchor_data"):
        RLConfig(sft_anchor=0.5)
    with pytest.raises(ValueError, match="sft_anchor must be >= 0"):
        RLConfig(sft_anchor=-1.0, sft_anchor_data="x.json")
    with pytest.raises(FileNotFoundError, match="sft_anchor_data: no such file"):
        load_anchor_records("/nonexistent/sft_curated.json")
    assert RLConfig().sft_anchor == 0.0  # off by default: the release trains on rewards alone
    assert RLConfig.cpu_world().sft_anchor == 0.0 and RLConfig.gpu_release().sft_anchor == 0.0


def test_the_anchor_draws_every_record_once_per_epoch_and_the_same_on_every_call(tiny, anchor_file):
    records = load_anchor_records(anchor_file)
    anchor = SFTAnchor(records, tiny[1], tiny[0].latent_config, weight=1.0, batch=3, seed=5,
                       system_prompt="interleaved")
    assert anchor.steps_per_epoch == len(anchor.source) // 3 == 2
    epoch0 = [i for u in range(anchor.steps_per_epoch) for i in anchor.indices(u)]
    assert len(set(epoch0)) == len(epoch0) == 6
    assert anchor.indices(1) == anchor.indices(1)  # a resumed run draws what an uninterrupted one did
    assert [anchor.indices(u) for u in (2, 3)] != [anchor.indices(u) for u in (0, 1)]  # a new order each epoch
    # two processes split each step's draw without overlap
    halves = [SFTAnchor(records, tiny[1], tiny[0].latent_config, weight=1.0, batch=2, seed=5,
                        system_prompt="interleaved", rank=r, processes=2).indices(0) for r in (0, 1)]
    assert not set(halves[0]) & set(halves[1])
    # the SFT loop's order (one micro-batch per step), written out: the measured anchored runs drew exactly these
    perm1 = np.random.default_rng([5, 1]).permutation(len(records))
    assert anchor.indices(3) == perm1[3:6].tolist()
    assert halves[1] == np.random.default_rng([5, 0]).permutation(len(records))[2:4].tolist()


def test_an_anchored_update_adds_the_weighted_sft_gradient_and_lowers_the_sft_loss(tiny, small_world, anchor_file,
                                                                                   tmp_path):
    plain = _trainer(tiny, small_world, tmp_path / "plain")
    anchored = _trainer(tiny, small_world, tmp_path / "anchored", sft_anchor=50.0, sft_anchor_data=str(anchor_file),
                        sft_anchor_batch=4)
    groups = plain.collect(0)[0].groups
    for g in groups:  # a reward that varies within each group, so the policy term has a gradient too
        for r in g:
            r.reward = float((r.sequence % 2 == 0).float().mean())
    anchor = anchored.sft_anchor
    batch = anchor.collator([sft_example(anchor.source[i], with_future=True) for i in anchor.indices(0)])
    batch.pop("ids", None)

    def sft_loss(model) -> float:
        with torch.no_grad():
            return float(model(**batch).loss)

    before = sft_loss(anchored.model)
    assert sft_loss(plain.model) == pytest.approx(before)
    m_plain = plain.update(plain.prepare_batch(groups), step=0)
    m_anchor = anchored.update(anchored.prepare_batch(groups), step=0)
    assert "loss/sft_anchor" not in m_plain and "data/sft_anchor_rejected" not in m_plain
    assert m_anchor["loss/sft_anchor"] == pytest.approx(before, rel=1e-4)
    assert m_anchor["data/sft_anchor_rejected"] == 0.0
    # the anchored step moved the model toward the SFT batch; the reward-only step did not do so as much
    assert sft_loss(anchored.model) < sft_loss(plain.model)
    assert sft_loss(anchored.model) < before
    assert anchored.cfg.flags()["rl_sft_anchor"] == 50.0


def test_rejected_anchor_records_are_written_with_their_reasons(tiny, small_world, anchor_file, tmp_path):
    rows = json.loads(anchor_file.read_text())[:4]
    moved_video = tmp_path / "moved.mp4"
    shutil.copy(rows[0]["video"], moved_video)
    rows.append(dict(rows[0], id="moved-away", video=str(moved_video)))  # valid on load, gone when collated
    rows.append({k: v for k, v in rows[1].items() if k != "conversations"} | {"id": "no-turns"})  # invalid on load
    path = tmp_path / "anchor.json"
    path.write_text(json.dumps(rows))
    out = tmp_path / "run"
    records = load_anchor_records(path, out / "sft_anchor_rejects.jsonl")
    assert [r.id for r in records] == [r["id"] for r in rows[:5]]
    load_rejects = [json.loads(line) for line in (out / "sft_anchor_rejects.jsonl").read_text().splitlines()]
    assert [r["record_id"] for r in load_rejects] == ["no-turns"]

    moved_video.unlink()
    model = copy.deepcopy(tiny[0])
    anchor = SFTAnchor(records, tiny[1], model.latent_config, weight=1.0, batch=5, seed=0,
                       system_prompt="interleaved", rejects_out=out / "collate_rejects.jsonl")
    assert sorted(anchor.indices(0)) == [0, 1, 2, 3, 4]
    loss = anchor.backward(model, model, 0, no_sync=False)
    assert np.isfinite(loss)  # the four good records still train
    collate_rejects = [json.loads(line) for line in (out / "collate_rejects.jsonl").read_text().splitlines()]
    assert [(r["record_id"], r["update"]) for r in collate_rejects] == [("moved-away", 0)]
    assert collate_rejects[0]["reason"]
    assert anchor.rejected == 1 and anchor.collator.rejects == []  # counted, not held per reject
    anchor.backward(model, model, 1, no_sync=False)  # the next epoch draws it again
    collate_rejects = [json.loads(line) for line in (out / "collate_rejects.jsonl").read_text().splitlines()]
    assert [(r["record_id"], r["update"]) for r in collate_rejects] == [("moved-away", 0), ("moved-away", 1)]
    assert anchor.rejected == 2


def test_the_step_metrics_count_the_anchor_records_its_draw_left_out(tiny, small_world, anchor_file, tmp_path):
    rows = json.loads(anchor_file.read_text())[:4]
    moved_video = tmp_path / "moved.mp4"
    shutil.copy(rows[0]["video"], moved_video)
    rows.append(dict(rows[0], id="moved-away", video=str(moved_video)))
    path = tmp_path / "anchor.json"
    path.write_text(json.dumps(rows))
    trainer = _trainer(tiny, small_world, tmp_path / "run", sft_anchor=1.0, sft_anchor_data=str(path),
                       sft_anchor_batch=5)
    moved_video.unlink()
    metrics = trainer.update(trainer.prepare_batch(trainer.collect(0)[0].groups), step=0)
    assert metrics["data/sft_anchor_rejected"] == 1.0 and np.isfinite(metrics["loss/sft_anchor"])
    logged = read_jsonl(tmp_path / "run" / "sft_anchor_draw_rejects.jsonl")
    assert [(r["record_id"], r["update"]) for r in logged] == [("moved-away", 0)]


@pytest.mark.parametrize("rank, world", [(0, 1), (1, 2)])
def test_a_resume_cuts_the_logs_back_to_the_checkpoint_step(tmp_path, rank, world):
    """Resumed at step 2 with 2 optimiser steps per rollout: the rows of step 3 (updates 4 and 5) go, the rest stay,
    in this process's own files (and the metrics only on the main process)."""
    suffix = "" if world == 1 else f".rank{rank}"
    write_jsonl(tmp_path / "metrics.jsonl", [{"step": s} for s in (1, 2, 3)])
    write_jsonl(tmp_path / f"judge_verdicts{suffix}.jsonl", [{"step": s, "verdict": True} for s in (1, 2, 2, 3)])
    write_jsonl(tmp_path / f"sft_anchor_draw_rejects{suffix}.jsonl",
                [{"record_id": "r", "update": u} for u in range(6)])
    trainer = SimpleNamespace(out_dir=tmp_path, step=2, dist=SimpleNamespace(main=rank == 0, rank=rank, world=world),
                              cfg=SimpleNamespace(updates_per_rollout=2))
    TrainerState.cut_logs(trainer)
    assert [r["step"] for r in read_jsonl(tmp_path / "metrics.jsonl")] == ([1, 2] if rank == 0 else [1, 2, 3])
    assert [r["step"] for r in read_jsonl(tmp_path / f"judge_verdicts{suffix}.jsonl")] == [1, 2, 2]
    assert [r["update"] for r in read_jsonl(tmp_path / f"sft_anchor_draw_rejects{suffix}.jsonl")] == [0, 1, 2, 3]


def test_the_anchor_records_whose_answer_comes_before_the_chain_end_are_the_interpolation_questions(
        tiny, small_world, anchor_file, tmp_path):
    from fl1_core.data.formats import load_sft_records
    from fl1_core.rl.sft_anchor import answer_before_chain_end, select_anchor_records

    records = list(load_sft_records(small_world / "sft.json").records)
    kept = select_anchor_records(records, "answer_before_chain_end")
    assert kept and {r.meta["question_kind"] for r in kept} == {"interpolation"}
    assert {r.id for r in kept} == {r.id for r in records if r.meta["question_kind"] == "interpolation"}
    for r in kept:  # the conclusion names an event the chain passed before its last one
        assert r.meta["answer_event_indices"][-1] in r.meta["chain_event_indices"][:-1]
    assert select_anchor_records(records, "all") == records
    others = [r for r in records if not answer_before_chain_end(r)]
    with pytest.raises(ValueError, match="none of the"):
        select_anchor_records(others, "answer_before_chain_end")
    with pytest.raises(ValueError, match="sft_anchor_records"):
        select_anchor_records(records, "interpolation")
    with pytest.raises(ValueError, match="sft_anchor_records"):
        RLConfig(sft_anchor_records="interpolation")
    assert set(ANCHOR_RECORD_RULES) == set(get_args(AnchorRecords))  # every name RLConfig takes has its rule
    rows = json.loads((small_world / "sft.json").read_text())
    for row in rows:
        row["video"] = str(small_world / row["video"])
    path = tmp_path / "sft_all.json"
    path.write_text(json.dumps(rows))
    trainer = _trainer(tiny, small_world, tmp_path / "run", sft_anchor=1.0, sft_anchor_data=str(path),
                       sft_anchor_batch=1, sft_anchor_records="answer_before_chain_end")
    assert [r.id for r in trainer.sft_anchor.source] == [r.id for r in kept]
