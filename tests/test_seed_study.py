"""Seed-study aggregation: per-stage accuracy with t-intervals over seeds and paired differences on shared items."""

from __future__ import annotations

import json
import math

import pytest

from fl1_core import seed_study
from fl1_core.evaluation import heldout_pairs
from fl1_core.runs import atomic_write_json, write_jsonl


def _run(root, seed: int, correct: dict[str, list[bool]], kinds: list[str]):
    run = root / f"seed-study-seed={seed}"
    metrics = run / "metrics"
    for name, flags in correct.items():
        write_jsonl(metrics / f"rl_heldout.{name}.jsonl",
                    [{"id": f"q{i}", "kind": kinds[i], "correct": c} for i, c in enumerate(flags)])
    atomic_write_json(metrics / "rl.json", {"scaling": [{"size": 16, "eval": {"avg": 1.0 + seed}}]})
    atomic_write_json(metrics / "curation.json", {"summary": {"kept": {"needs_vision_share": 0.8 + 0.01 * seed},
                                                              "random_baseline": {"needs_vision_share": 0.7}}})
    return run


def test_t_interval_matches_the_formula():
    t = seed_study.t_interval([0.2, 0.3, 0.4])
    half = 4.302652729911275 * 0.1 / math.sqrt(3)
    assert t["mean"] == pytest.approx(0.3)
    assert t["ci95"] == pytest.approx([0.3 - half, 0.3 + half])
    assert seed_study.t_interval([0.5])["ci95"] == [0.5, 0.5]


def test_stage_table_and_paired_deltas(tmp_path):
    kinds = ["uniform_motion", "next_event", "next_event", "kth_event"]  # 1 text-solvable, 3 vision-dependent
    _run(tmp_path, 0, {"text_sft": [True, False, False, False], "sft_init": [True, True, False, False]}, kinds)
    _run(tmp_path, 1, {"text_sft": [False, False, False, False], "sft_init": [False, True, True, False]}, kinds)
    _run(tmp_path, 2, {"text_sft": [True, True, False, False], "sft_init": [True, True, True, True]}, kinds)
    (tmp_path / "seed-study-seed=9").mkdir()  # unfinished run (no rl.json): ignored
    runs = seed_study.seed_runs(tmp_path)
    assert sorted(runs) == [0, 1, 2]
    rows = {(r["key"], r["group"]): r for r in seed_study.stage_table(runs)}
    assert rows[("sft_init", "all")]["values"] == [0.5, 0.5, 1.0]
    assert rows[("sft_init", "vision")]["values"] == pytest.approx([1 / 3, 2 / 3, 1.0])
    assert rows[("text_sft", "text")]["items_per_seed"] == [1, 1, 1]
    d = seed_study.paired_delta(runs, "sft_init", "text_sft", "vision")
    assert d["over_seeds"]["values"] == pytest.approx([1 / 3, 2 / 3, 2 / 3])
    assert d["pooled"]["n_items"] == 9 and d["pooled"]["mean"] == pytest.approx(5 / 9)
    summary = seed_study.summarize(tmp_path)
    assert summary["curation"]["delta"]["values"] == pytest.approx([0.1, 0.11, 0.12])
    assert summary["scaling"]["16"]["mean"] == pytest.approx(2.0)
    json.dumps(summary)  # JSON-friendly
    assert seed_study.delta_table(summary["deltas"])[0]["comparison"] == "latent SFT − text-only SFT"


def test_the_summary_names_the_cpus_the_seeds_ran_on(tmp_path):
    kinds = ["next_event", "kth_event"]
    cpus = [{"model": "AMD EPYC", "logical_cores": 2, "torch_kernels": "AVX2"},
            {"model": "Intel Xeon", "logical_cores": 2, "torch_kernels": "AVX512"}]
    for seed, cpu in ((0, cpus[0]), (1, cpus[1]), (2, cpus[0]), (3, None)):
        run = _run(tmp_path, seed, {"sft_init": [True, False]}, kinds)
        if cpu is not None:
            atomic_write_json(run / "manifest.json", {"cpu": cpu, "git_commit": "abc"})
    assert seed_study.summarize(tmp_path)["machines"] == [
        {"cpu": cpus[0], "seeds": [0, 2]}, {"cpu": cpus[1], "seeds": [1]}, {"cpu": None, "seeds": [3]}]


def test_no_runs_says_how_to_make_them(tmp_path):
    with pytest.raises(FileNotFoundError, match="fl1 batch configs/seed_study.yaml"):
        seed_study.summarize(tmp_path)


def test_the_pause_control_joins_the_comparisons_only_when_it_ran(tmp_path):
    kinds = ["uniform_motion", "next_event"]
    for seed in (0, 1):
        _run(tmp_path, seed, {"text_sft": [False, False], "sft_init": [True, True]}, kinds)
    names = {r["comparison"] for r in seed_study.delta_table(seed_study.summarize(tmp_path)["deltas"])}
    assert "latent SFT − text-only SFT" in names and not any("pause" in n for n in names)
    for seed in (0, 1):
        _run(tmp_path, seed, {"pause_sft": [True, False]}, kinds)
    rows = seed_study.delta_table(seed_study.summarize(tmp_path)["deltas"])
    pause = {(r["comparison"], r["group"]): r for r in rows if "pause" in r["comparison"]}
    assert pause[("latent SFT − pause SFT", "all")]["Δ (mean of seeds)"] == 50.0
    assert pause[("pause SFT − text-only SFT", "vision")]["Δ (mean of seeds)"] == 0.0


def test_event_metric_scores_the_concluded_option_and_joins_the_summary(tmp_path):
    kinds = ["uniform_motion", "next_event"]
    for seed, concluded in ((0, ["A", "C"]), (1, ["A", ""])):
        metrics = tmp_path / f"seed-study-seed={seed}" / "metrics"
        for name in ("text_sft", "sft_init"):
            said = concluded if name == "sft_init" else ["B", "B"]
            write_jsonl(metrics / f"rl_heldout.{name}.jsonl",
                        [{"id": f"q{i}", "kind": kinds[i], "answer": "A" if i == 0 else "C", "correct": False,
                          "concluded": said[i]} for i in range(2)])
        atomic_write_json(metrics / "rl.json", {})
    runs = seed_study.seed_runs(tmp_path)
    rows = {(r["key"], r["group"]): r for r in seed_study.stage_table(runs, "event")}
    assert rows[("sft_init", "all")]["values"] == [1.0, 0.5] and rows[("text_sft", "all")]["values"] == [0.0, 0.0]
    assert {(r["key"], r["group"]): r for r in seed_study.stage_table(runs)}[("sft_init", "all")]["values"] == [0, 0]
    d = seed_study.paired_delta(runs, "sft_init", "text_sft", "all", "event")
    assert d["metric"] == "event" and d["pooled"]["mean"] == pytest.approx(0.75)
    summary = seed_study.summarize(tmp_path)
    assert summary["event_stages"] and all(x["metric"] == "event" for x in summary["event_deltas"])
    with pytest.raises(ValueError, match="unknown metric"):
        heldout_pairs.hit({"correct": True}, "judge")
    with pytest.raises(KeyError, match="re-run `fl1 heldout`"):
        heldout_pairs.hit({"correct": True, "answer": "A"}, "event")


def test_pool_paired_recovers_the_item_level_interval():
    import numpy as np

    rng = np.random.default_rng(0)
    seeds = [rng.choice([-1.0, 0.0, 1.0], size=n, p=[0.2, 0.5, 0.3]) for n in (40, 55, 61)]

    def part(d):
        half = 1.96 * d.std(ddof=1) / math.sqrt(len(d))
        return {"n": len(d), "delta": float(d.mean()), "ci95": [d.mean() - half, d.mean() + half]}

    pooled = seed_study.pool_paired([part(d) for d in seeds])
    every = np.concatenate(seeds)
    half = 1.96 * every.std(ddof=1) / math.sqrt(len(every))
    assert pooled["n_items"] == 156
    assert pooled["mean"] == pytest.approx(every.mean())
    assert pooled["ci95"] == pytest.approx([every.mean() - half, every.mean() + half])


def test_audit_summary_pools_the_contrast_and_the_flat_probes(tmp_path):
    runs = {}
    for seed, (delta, own) in enumerate([(0.10, 0.30), (0.05, 0.35), (0.00, 0.25)]):
        run = tmp_path / f"seed-study-seed={seed}"
        atomic_write_json(run / "audit" / "audit.json", {
            "contrasts": {"oracle - oracle_shuffled": {"all": {
                "event": {"n": 100, "delta": delta, "ci95": [delta - 0.1, delta + 0.1]},
                "letter": {"n": 100, "delta": 0.0, "ci95": [-0.1, 0.1]}}}},
            "probes_flat": [{"source": "latent SFT · flat", "target": "layout", "metric": "r2", "score": own},
                            {"source": "untrained · flat", "target": "layout", "metric": "r2", "score": 0.1},
                            {"source": "latent SFT · flat", "target": "last_event", "metric": "accuracy",
                             "score": 0.5}]})
        runs[seed] = run
    out = seed_study.audit_summary(runs)
    event = out["oracle_minus_shuffled"]["all (event)"]
    assert event["pooled"]["n_items"] == 300 and event["pooled"]["mean"] == pytest.approx(0.05)
    assert event["over_seeds"]["k"] == 3
    layout = out["probes_flat_r2"]["layout"]
    assert layout["own − untrained"]["mean"] == pytest.approx(0.2)
    assert "last_event" not in out["probes_flat_r2"]  # accuracy probes are not R²
    assert out["frame_reading"] == {}  # audits from before the split: nothing to pool


def test_the_frame_reading_split_pools_counts_over_seeds():
    from fl1_core.audit.frame_reading import reading_decomposition, reading_rows

    gold = "the red ball is on the floor at the left"
    right = "<reason>From left to right: the red ball on the floor at the left. So, the red ball is on the floor at " \
            "the left, which is option A.</reason><answer>A</answer>"
    ignored = right.replace("So, the red ball is on the floor at the left", "So, the red ball is on the floor in the middle")
    meta = {"needs_frame": True, "answer_text": gold, "changed": True}
    seeds = [{"latent SFT": reading_decomposition([right, ignored], [meta, meta])},
             {"latent SFT": reading_decomposition([right, right, ignored, right], [meta] * 4)}]
    pooled = seed_study.pool_readings(seeds)["latent SFT"]
    assert pooled["reading_right"]["n"] == 6 and pooled["reading_right"]["share"] == 1.0
    assert pooled["follows_reading"]["share"] == pytest.approx(4 / 6)
    assert pooled["changed"]["concluded_right"]["share"] == pytest.approx(4 / 6)
    lo, hi = pooled["concluded_right"]["ci95"]
    assert lo < 4 / 6 < hi
    assert reading_rows({"latent SFT": pooled})[0]["concluded right"].startswith("66.7 [")


def test_imagination_targets_lists_the_frame_rows():
    over = {"mean": 0.04, "ci95": [0.01, 0.07], "k": 3}
    pooled = {"mean": 0.041, "ci95": [0.009, 0.073], "n_items": 960}
    summary = {"audit": {"oracle_minus_shuffled": {"all (event)": {"over_seeds": over, "pooled": pooled}},
                         "probes_flat_r2": {"layout": {"latent SFT · flat": {"mean": 0.3, "ci95": [0.2, 0.4], "k": 3},
                                                       "own − untrained": {"mean": 0.1, "ci95": [0.0, 0.2], "k": 3}}}},
               "event_deltas": [{"a": "sft_init", "b": "pause_sft", "group": "frame", "over_seeds": over,
                                 "pooled": pooled},
                                {"a": "dapo", "b": "sft_init", "group": "all", "over_seeds": over, "pooled": pooled}]}
    rows = {r["target"]: r for r in seed_study.imagination_targets(summary)}
    assert set(rows) == {"oracle − shuffled latents (audit, frame-needing)", "latent − pause-token SFT (frame-needing)",
                         "layout probe R², flat: own latents", "layout probe R², flat: own − untrained"}
    assert rows["latent − pause-token SFT (frame-needing)"]["95 % CI pooled items"] == "[+0.9, +7.3]"
    assert rows["layout probe R², flat: own latents"]["95 % CI over seeds"] == "[+0.20, +0.40]"
