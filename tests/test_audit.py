"""The audit: world-state targets, latent interventions, ablations, probes and the refusals."""

from __future__ import annotations

import json
from collections import Counter
import shutil

import numpy as np
import pytest
import torch

from fl1_core.audit import interventions as iv
from fl1_core.audit.probes import fit_probe
from fl1_core.audit.world_states import read_clips, span_frames, state_at

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def forced_checkpoint(tmp_path_factory):
    """A tiny Future-L1 checkpoint that always opens one fixed-size span first (so it writes latents untrained)."""
    from fl1_core.checkpoints import save_model
    from fl1_core.tiny import build_tiny_future_l1

    model, processor = build_tiny_future_l1(seed=0)
    model.latent_config = model.latent_config.replace(force_initial_latent=True, budget_mode="fixed",
                                                      max_latent_token=4)
    path = tmp_path_factory.mktemp("forced") / "ckpt"
    save_model(model, processor, path)
    return path


def test_span_frames_follow_the_reasoning_chain_and_states_are_in_range(small_world):
    clips = read_clips(small_world)
    rows = [json.loads(x) for x in (small_world / "heldout_mcq.jsonl").read_text().splitlines()]
    for row in rows[:10]:
        clip = clips[row["meta"]["clip_id"]]
        frames = span_frames(row["id"], row["meta"], clip)
        assert frames and [f.span for f in frames] == list(range(1, len(frames) + 1))
        assert all(clip["pool"][f.pool_index - 1] == f.frame for f in frames)
        assert [f.frame for f in frames] == sorted(f.frame for f in frames)
        assert frames[0].frame >= row["meta"]["observed_until"]
        states = [state_at(clip, f.frame) for f in frames]
        assert all(((0 <= s["position"]) & (s["position"] <= 1)).all() for s in states)
        for f, s in zip(frames, states):  # layout: leftmost then rightmost object, whatever the clip's order
            xs = sorted(o["track"][f.frame][0] / clip["width"] for o in clip["objects"])
            assert (s["layout"][0], s["layout"][2]) == pytest.approx((xs[0], xs[-1]))
        counts = [s["events_so_far"] for s in states]
        assert counts == sorted(counts) and counts[-1] >= 1


def test_interventions_replace_what_is_fed():
    fed = torch.randn(3, 8, generator=torch.Generator().manual_seed(123))  # not the global RNG (a test may seed it)
    index = torch.tensor([0, 1, 5])
    assert torch.equal(iv.zeros()([0, 1, 2])(fed, index), torch.zeros(3, 8))
    noise = iv.matched_noise(seed=1)([0, 1, 2])(fed, index)
    assert torch.allclose(noise.norm(dim=-1), fed.norm(dim=-1), rtol=1e-5) and not torch.allclose(noise, fed)
    bank = [torch.ones(2, 8), 2 * torch.ones(2, 8), 3 * torch.ones(2, 8)]
    out = iv.from_bank(bank)([2, 1, 0])(fed, index)
    assert torch.equal(out[0], bank[2][0]) and torch.equal(out[1], bank[1][1])
    assert torch.equal(out[2], fed[2])  # the bank of row 0 has 2 vectors: the 6th latent is the model's own
    perm = iv.derangement(7, seed=3)
    assert sorted(perm.tolist()) == list(range(7)) and not (perm == np.arange(7)).any()
    use = iv.bank_share(bank, [torch.zeros(3, 8), torch.zeros(1, 8), torch.zeros(0, 8)])
    assert (use.from_bank, use.own) == (3, 1)


def test_decoding_feeds_the_intervention(tiny):
    from fl1_core.data.collator import PromptExample
    from fl1_core.data.prompt_inputs import build_prompt_inputs
    from fl1_core.decoding import generate_with_latents

    model, processor = tiny
    cfg = model.latent_config.replace(force_initial_latent=True, budget_mode="fixed", max_latent_token=3)
    inputs = build_prompt_inputs(processor, [PromptExample("a", "What next?", []), PromptExample("b", "Why?", [])])
    bank = [torch.full((2, model.config.get_text_config().hidden_size), 0.5),
            torch.full((5, model.config.get_text_config().hidden_size), -1.0)]
    gen = generate_with_latents(model, inputs, max_new_tokens=6, latent_config=cfg,
                                latent_intervention=iv.from_bank(bank)([0, 1]))
    first, second = gen.latents
    assert first.shape[0] == 3 and torch.equal(first[:2], bank[0]) and not torch.equal(first[2], bank[0][0])
    assert torch.equal(second, bank[1][:3])


def test_probes_find_a_linear_state_and_not_noise():
    rng = np.random.default_rng(0)
    y = rng.normal(size=(300, 2))
    groups = np.repeat(np.arange(60), 5)
    x = np.concatenate([y @ rng.normal(size=(2, 16)), rng.normal(size=(300, 16))], axis=1) + 0.1 * rng.normal(size=(300, 32))
    _, good = fit_probe(x, y, groups, "position")
    _, bad = fit_probe(rng.normal(size=(300, 32)), y, groups, "position")
    assert good["metric"] == "r2" and good["score"] > 0.9 and bad["score"] < 0.1
    labels = np.where(y[:, 0] > 0, "hit", "bounce")
    _, cls = fit_probe(x, labels, groups, "last_event")
    assert cls["score"] > 0.9 and 0.4 < cls["reference"] < 0.6
    with pytest.raises(ValueError, match="two clips"):
        fit_probe(x, y, np.zeros(300), "position")


def test_a_probe_of_real_frames_reads_imagined_ones_only_when_they_resemble_them():
    rng = np.random.default_rng(1)
    groups = np.repeat(np.arange(60), 3)
    y = rng.normal(size=(180, 2))
    real = np.concatenate([y @ rng.normal(size=(2, 12)), rng.normal(size=(180, 12))], axis=1)
    _, close = fit_probe(real, y, groups, "layout", apply_to=real + 0.3 * rng.normal(size=real.shape))
    _, unrelated = fit_probe(real, y, groups, "layout", apply_to=rng.normal(size=real.shape))
    assert close["score"] > 0.7 and unrelated["score"] < 0.0
    with pytest.raises(ValueError, match="apply_to"):
        fit_probe(real, y, groups, "layout", apply_to=real[:, :5])


def test_the_ridge_penalty_is_chosen_without_near_copies_of_a_held_out_clip():
    # five near-identical spans per clip, 400 noise features, a target unrelated to them: a leave-one-out penalty
    # choice sees a copy of every held-out span, fits the noise and scores R² -0.17 out of fold; choosing it over
    # clip-grouped folds shrinks to the mean
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(60), 5)
    y = np.repeat(rng.normal(size=(60, 2)), 5, axis=0)
    x = np.repeat(rng.normal(size=(60, 400)), 5, axis=0) + 0.05 * rng.normal(size=(300, 400))
    _, score = fit_probe(x, y, groups, "position")
    assert score["score"] > -0.08
    assert len(score["alphas"]) == score["folds"] and min(score["alphas"]) >= 1e3


def test_run_audit_end_to_end_on_the_small_world(forced_checkpoint, saved_tiny, small_world, tmp_path):
    from fl1_core.audit import run_audit

    run = tmp_path / "run"  # the audit sits in the run folder that holds the checkpoint (a copy: the fixture is shared)
    shutil.copytree(forced_checkpoint, run / "ckpt")
    result = run_audit(run / "ckpt", small_world, run / "audit", text_checkpoint=saved_tiny, limit=8,
                       batch_size=8, max_new_tokens=8, folds=2)
    assert result["checkpoint"] == "run:ckpt" and result["data"] == str(small_world)  # outside run and checkout
    assert set(result["ablations"]) == {"none", "zeros", "mean", "shuffle", "noise", "oracle", "oracle_shuffled",
                                        "present"}
    contrast = result["contrasts"]["oracle - oracle_shuffled"]
    assert contrast["all"]["event"]["n"] == 8 and set(contrast["all"]) == {"event", "letter"}
    none = result["ablations"]["none"]
    assert none["all"]["n"] == 8 and none["all"]["delta_vs_none"]["delta"] == 0.0
    assert result["ablations"]["oracle"]["bank_share"] == 1.0  # 4 latents per span, each frame gives 4 (or more)
    assert 0 < result["ablations"]["shuffle"]["bank_share"] <= 1.0
    sources = {r["source"] for r in result["probes"]}
    assert sources == {"latent SFT", "frame embedding", "untrained", "text-only SFT"} or \
        sources == {"latent SFT", "frame embedding", "untrained"}
    assert {r["target"] for r in result["probes"]} == {"position", "layout", "velocity", "events_so_far", "last_event"}
    flat = {r["source"] for r in result["probes_flat"]}  # spans of the frame's length, concatenated
    read = " · read by frame embedding · flat"  # the true frame's probe applied to the other sources' spans
    assert flat == {"latent SFT · flat", "frame embedding · flat", "untrained · flat", "latent SFT · flat" + read,
                    "untrained · flat" + read}
    assert {r["target"] for r in result["probes_flat"] if r["source"].endswith(read)} == {"position", "layout",
                                                                                          "velocity"}
    assert min(result["probe_spans_flat"].values()) > 0
    assert json.loads((run / "audit" / "audit.json").read_text())["items"] == 8
    saved = [json.loads(line) for line in (run / "audit" / "decodes.jsonl").read_text().splitlines()]
    by_decode = Counter(r["decode"] for r in saved)  # every decode of every item, the texts the scores came from
    assert by_decode["latent SFT"] == 8 and by_decode["latent SFT · oracle"] == 8 and by_decode["text-only SFT"] == 8
    assert set(by_decode.values()) == {8} and "latent SFT · none" not in by_decode
    mine = {r["id"]: r for r in saved if r["decode"] == "latent SFT · zeros"}
    assert sum(r["correct"] for r in mine.values()) / 8 == pytest.approx(result["ablations"]["zeros"]["all"]["accuracy"])
    from fl1_core.audit import load_audit_items

    frame = sum(it.group == "frame" for it in load_audit_items(small_world / "heldout_mcq.jsonl", 8))
    assert frame > 0  # the spread keeps the frame-needing group: the reading decomposition covers every decode
    reading = result["frame_reading"]
    assert set(reading) == {"latent SFT", "latent SFT · oracle", "latent SFT · oracle_shuffled", "text-only SFT"}
    assert all(r["reading_right"]["n"] == frame for r in reading.values())


def test_replayed_untrained_states_sit_at_the_latent_slots(forced_checkpoint, small_world):
    from fl1_core.audit import decode_items, load_audit_items
    from fl1_core.audit.run import untrained_copy
    from fl1_core.model import load_future_l1

    model, processor = load_future_l1(forced_checkpoint)
    items = load_audit_items(small_world / "heldout_mcq.jsonl", 3)
    out = decode_items(model, processor, items, replay_models={"untrained": untrained_copy(model, 5), "self": model},
                       max_new_tokens=8)
    for d in out:
        assert d.latents.shape == d.replayed["untrained"].shape == (4, model.config.get_text_config().hidden_size)
        assert torch.allclose(d.replayed["self"], d.latents, atol=1e-4)  # replaying itself gives back its latents
        assert not torch.allclose(d.replayed["untrained"], d.latents, atol=1e-2)


def test_bad_inputs_are_refused_or_skipped_with_the_reason(forced_checkpoint, saved_tiny, small_world, tmp_path):
    from fl1_core.audit import run_audit

    plain = tmp_path / "plain"
    shutil.copytree(saved_tiny, plain)
    config = json.loads((plain / "config.json").read_text())
    config.pop("future_l1")
    (plain / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="no latent tokens"):
        run_audit(plain, small_world, tmp_path / "a")
    silent = run_audit(saved_tiny, small_world, tmp_path / "b", limit=2, max_new_tokens=4)
    assert silent["ablations"] == {} and "wrote no latent spans" in silent["skipped"]["ablations"]
    with pytest.raises(ValueError, match="wrote no latent spans"):
        from fl1_core.audit import load_audit_items, run_ablations
        from fl1_core.model import load_future_l1

        model, processor = load_future_l1(saved_tiny)
        run_ablations(model, processor, load_audit_items(small_world / "heldout_mcq.jsonl", 2), max_new_tokens=4)
    no_states = tmp_path / "world"
    no_states.mkdir()
    shutil.copy(small_world / "heldout_mcq.jsonl", no_states / "heldout_mcq.jsonl")
    for sub in ("videos",):
        (no_states / sub).symlink_to(small_world / sub)
    result = run_audit(forced_checkpoint, no_states, tmp_path / "c", limit=4, max_new_tokens=6, batch_size=4)
    assert "probes" not in result and "world states" in result["skipped"]["probes"]
    assert "oracle" not in result["ablations"] and "world states" in result["skipped"]["oracle"]
    assert {"zeros", "mean", "shuffle", "noise"} <= set(result["ablations"])


def test_audit_figures_draw_every_source_condition_and_model():
    from fl1_core import plots

    probes = [{"source": s, "target": t, "metric": "r2", "score": 0.5, "per_span": {"1": {"n": 9, "score": 0.4},
                                                                                    "2": {"n": 7, "score": 0.2}}}
              for s in ("latent SFT", "untrained") for t in ("position", "velocity")]
    fig = plots.probe_quality(probes)
    assert len(fig.data) == 4 and sum(tr.showlegend for tr in fig.data) == 2
    rows = [{"condition": c, "subset": s, "n": 10, "accuracy": 0.5, "ci_low": 0.3, "ci_high": 0.7, "delta": 0.0,
             "delta_low": -0.1, "delta_high": 0.1} for c in ("none", "zeros") for s in ("all", "group=vision")]
    bars = plots.ablation_bars(rows)
    assert [tr.name for tr in bars.data] == ["all kinds", "vision-dependent"]
    assert list(bars.data[0].error_y.array) == pytest.approx([0.2, 0.2])
    events = plots.ablation_bars([{**r, "event_accuracy": 0.6, "event_ci_low": 0.5, "event_ci_high": 0.9} for r in rows],
                                 metric="event")
    assert list(events.data[0].y) == [0.6, 0.6] and list(events.data[0].error_y.array) == pytest.approx([0.3, 0.3])
    with pytest.raises(ValueError, match="unknown metric"):
        plots.ablation_bars(rows, metric="judge")
    acc = {"n": 10, "accuracy": 0.4, "ci95": [0.2, 0.6]}
    control = plots.control_bars({g: {"latent SFT": acc, "pause SFT": acc} for g in ("all", "text", "vision")})
    assert [tr.name for tr in control.data] == ["pause SFT", "latent SFT"] and len(control.data[0].x) == 3


def test_breakdown_scores_the_concluded_event_beside_the_letter():
    """An ablation that keeps every letter but loses two right conclusions shows Δ = 0 on letters and −50 points
    on events; the statements say which metric depends."""
    from fl1_core.audit.ablations import breakdown, dependence_statement
    from fl1_core.audit.decode import AuditItem, DecodedItem

    items = [AuditItem(record=None, meta={"question_kind": "next_event", "hops": 1}) for _ in range(4)]

    def decoded(events):
        return [DecodedItem(index=i, text="", pred="A", correct=i == 0, latents=torch.zeros(0, 2), span_counts=[],
                            event_correct=e) for i, e in enumerate(events)]

    clean, ablated = decoded([True, True, True, False]), decoded([True, False, False, False])
    res = breakdown(items, ablated, clean)
    assert res["all"]["delta_vs_none"]["delta"] == 0.0 and res["all"]["accuracy"] == 0.25
    assert res["all"]["event"]["accuracy"] == 0.25 and res["all"]["event"]["delta_vs_none"]["delta"] == -0.5
    conditions = {"none": breakdown(items, clean, clean), "zeros": res}
    assert "no measurable dependence" in dependence_statement(conditions)[0]
    assert dependence_statement(conditions, metric="event")[0].startswith("zeros: Δ = -50.0 points")
    with pytest.raises(ValueError, match="unknown metric"):
        dependence_statement(conditions, metric="judge")


def test_span_flats_concatenate_full_spans_and_drop_others():
    from fl1_core.audit.decode import span_flats, span_means

    v = torch.arange(14, dtype=torch.float32).reshape(7, 2)  # spans of 3, 1 and 3 latents
    flats = span_flats(v, [3, 1, 3], size=3)
    assert flats[1] is None and torch.equal(flats[0], torch.arange(6.0)) and torch.equal(flats[2], torch.arange(8.0, 14))
    assert torch.equal(span_means(v, [3, 1, 3])[0], torch.tensor([2.0, 3.0]))


def test_grouped_derangement_lends_within_kind_and_slot_count():
    from fl1_core.audit.interventions import grouped_derangement

    keys = [("a", 9), ("a", 9), ("a", 9), ("b", 9), ("a", 18), ("b", 9)]
    perm = grouped_derangement(keys, seed=3)
    for i, j in enumerate(perm):
        if j < 0:
            assert sum(k == keys[i] for k in keys) == 1  # alone in its group: keeps its own
        else:
            assert j != i and keys[j] == keys[i]
    assert perm[4] == -1 and sorted(perm[:3]) == [0, 1, 2]


def test_fed_back_fidelity_compares_slot_by_slot_with_the_gold_frames():
    from fl1_core.audit.feedback import fed_back_fidelity

    g = torch.Generator().manual_seed(0)
    gold = [[torch.randn(3, 4, generator=g) + 5.0] for _ in range(6)]
    exact = fed_back_fidelity([t[0] for t in gold], [[3]] * 6, gold)
    assert exact["mse"] == 0.0 and exact["norm_ratio"] == pytest.approx(1.0) and exact["responses"] == 6
    assert exact["slot_mean_mse"] > 0
    half = fed_back_fidelity([0.5 * t[0] for t in gold], [[3]] * 6, gold)
    assert half["norm_ratio"] == pytest.approx(0.5, rel=1e-5)
    # a response whose spans do not line up with the reference frames is left out
    mixed = fed_back_fidelity([t[0] for t in gold] + [torch.zeros(2, 4)], [[3]] * 6 + [[2]], gold + [gold[0]])
    assert mixed["responses"] == 6 and mixed["mse"] == 0.0
    # the slot means themselves score the baseline exactly
    stacked = torch.stack([t[0] for t in gold])
    means = stacked.mean(dim=0)
    base = fed_back_fidelity([means.clone() for _ in gold], [[3]] * 6, gold)
    assert base["mse"] == pytest.approx(base["slot_mean_mse"], rel=1e-5)
