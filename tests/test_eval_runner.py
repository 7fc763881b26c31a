"""The evaluation runner (resume, shards, judging), latent statistics / inference cost and the comparison table."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from fl1_core.answers import extract_answer_letter
from fl1_core.data.formats import load_futurebench, load_twiffbench, spread_limit
from fl1_core.decoding import batches as batches_mod
from fl1_core.judge.config import JudgeConfig
from fl1_core.judge.server import FaultConfig, start_judge_server
from fl1_core.evaluation.compare import PAPER_FUTUREBENCH_SETTING, WORKBOOK_SETTING, comparison_table
from fl1_core.evaluation.latent_stats import (
    adjacent_span_cosines,
    inference_cost,
    latent_statistics,
    span_count_distribution,
)
from fl1_core.evaluation.runner import decode_shard, evaluate_futurebench, evaluate_twiffbench, merge_predictions
from fl1_core.evaluation.eval_config import RELEASE_MAX_NEW_TOKENS, TIMING_FIELDS, EvalConfig
from fl1_core.evaluation.loading import load_benchmark, shard_path
from fl1_core.evaluation.summary import summarize_predictions
from fl1_core.runs import read_jsonl

JUDGE_MODEL = "fl1-rule-judge"


def small_config(**overrides) -> EvalConfig:
    """Few frames and tokens; a forced first span (budget 2) so latent fields are exercised by a random model."""
    base = dict(
        max_new_tokens=6,
        batch_size=4,
        num_frames=4,
        progress_bar=False,
        latent={"force_initial_latent": True, "loose_cap": 2},
    )
    base.update(overrides)
    return EvalConfig(**base)


def stable(rows: list[dict]) -> list[dict]:
    """Rows without the timing/batching fields."""
    return [{k: v for k, v in r.items() if k not in TIMING_FIELDS} for r in rows]


@pytest.fixture(scope="module")
def world(small_world) -> Path:
    return small_world


@pytest.fixture(scope="module")
def fb_run(tiny, world, tmp_path_factory):
    """One complete single-process FutureBench evaluation: (out_dir, summary, items)."""
    model, processor = tiny
    out = tmp_path_factory.mktemp("fb_eval")
    summary = evaluate_futurebench(model, processor, world / "futurebench.jsonl", out, small_config())
    items = list(load_futurebench(world / "futurebench.jsonl").records)
    return out, summary, items


class CountingGenerate:
    """Wraps the decode loop the runner's batches call: counts calls/rows and can raise at call number ``fail_at``."""

    def __init__(self, fail_at: int | None = None):
        self.calls = 0
        self.rows = 0
        self.fail_at = fail_at
        self.real = batches_mod.generate_with_latents

    def __call__(self, model, inputs, **kwargs):
        self.calls += 1
        if self.fail_at is not None and self.calls == self.fail_at:
            raise KeyboardInterrupt("injected kill")
        self.rows += int(inputs["input_ids"].shape[0])
        return self.real(model, inputs, **kwargs)


# ------------------------------------------------------------------------------------------------------- config
def test_eval_config_presets_and_round_trip():
    cfg = EvalConfig()
    assert cfg.resolved_max_new_tokens("futurebench") == RELEASE_MAX_NEW_TOKENS["futurebench"] == 2048
    assert cfg.resolved_max_new_tokens("twiffbench") == 4096
    assert cfg.do_sample is False and cfg.num_frames == 32
    world = EvalConfig.world(latent={"budget_mode": "fixed"})
    assert world.resolved_max_new_tokens("twiffbench") < 2048
    assert EvalConfig.from_dict(world.to_dict()) == world
    with pytest.raises(ValueError, match="unknown LatentConfig"):
        EvalConfig(latent={"latent_token_id": 3})
    with pytest.raises(ValueError, match="system_prompt"):
        EvalConfig(system_prompt="nope")


# --------------------------------------------------------------------------------------------------- FutureBench
def test_predictions_cover_every_doc_once_in_doc_order(fb_run):
    out, summary, items = fb_run
    rows = read_jsonl(out / "predictions.jsonl")
    assert [r["doc_id"] for r in rows] == [it.id for it in items]
    assert len({r["doc_id"] for r in rows}) == len(items) == summary["n_predictions"] == summary["n_items"]
    assert [r["index"] for r in rows] == list(range(len(items)))
    for row, item in zip(rows, items):
        assert row["question_type"] == item.question_type and row["answer"] == item.answer
        for mode in ("faithful", "strict"):
            assert row[f"pred_{mode}"] == extract_answer_letter(row["response"], mode=mode)
            assert row[f"correct_{mode}"] == (row[f"pred_{mode}"] == item.answer)
        assert 1 <= row["new_tokens"] <= 6
        assert row["response"].startswith("<|latent_start|>")  # special tokens kept in the raw text
        assert row["n_spans"] == len(row["span_counts"]) >= 1
        assert row["latent_tokens"] >= sum(row["span_counts"])
        assert row["latency_s"] > 0 and row["batch_size"] >= 1
    assert (out / "summary.json").exists() and (out / "rejects.jsonl").exists()


def test_summary_recomputes_from_predictions(fb_run):
    out, summary, _ = fb_run
    on_disk = json.loads((out / "summary.json").read_text())
    recomputed = json.loads(json.dumps(summarize_predictions(read_jsonl(out / "predictions.jsonl"), "futurebench")))
    for key in ("scores", "latent_stats", "inference_cost"):
        assert recomputed[key] == on_disk[key] == json.loads(json.dumps(summary[key]))
    assert on_disk["scores"]["n"] == 12
    cost = on_disk["inference_cost"]
    assert cost["mean_new_tokens"] == pytest.approx(
        sum(r["new_tokens"] for r in read_jsonl(out / "predictions.jsonl")) / 12
    )
    assert cost["accuracy_strict"] == on_disk["scores"]["strict"]["overall"]


def test_resume_skips_finished_doc_ids(tiny, world, tmp_path, monkeypatch, fb_run):
    model, processor = tiny
    cfg = small_config(batch_size=2, limit=8)  # 4 batches
    killer = CountingGenerate(fail_at=3)  # two batches finish, the third is killed
    monkeypatch.setattr(batches_mod, "generate_with_latents", killer)
    with pytest.raises(KeyboardInterrupt):
        evaluate_futurebench(model, processor, world / "futurebench.jsonl", tmp_path, cfg)
    shard = shard_path(tmp_path, 0, 1)
    assert len(read_jsonl(shard)) == 4 and killer.rows == 4
    with open(shard, "a") as fh:  # a torn line, as left by a kill in the middle of a write
        fh.write('{"doc_id": "world-fb-000')

    counter = CountingGenerate()
    monkeypatch.setattr(batches_mod, "generate_with_latents", counter)
    summary = evaluate_futurebench(model, processor, world / "futurebench.jsonl", tmp_path, cfg)
    assert counter.calls == 2 and counter.rows == 4  # only the 4 unfinished samples were decoded
    rows = read_jsonl(tmp_path / "predictions.jsonl")
    picked = {it.id for it in spread_limit(fb_run[2], 8)}  # the limit spreads over the file
    assert [r["doc_id"] for r in rows] == [it.id for it in fb_run[2] if it.id in picked]
    assert summary["n_predictions"] == 8
    full = {r["doc_id"]: r for r in stable(read_jsonl(fb_run[0] / "predictions.jsonl"))}
    assert stable(rows) == [full[r["doc_id"]] for r in rows]  # "index" is the position in the whole file

    again = CountingGenerate()
    monkeypatch.setattr(batches_mod, "generate_with_latents", again)
    evaluate_futurebench(model, processor, world / "futurebench.jsonl", tmp_path, cfg)
    assert again.calls == 0
    with pytest.raises(ValueError, match="different"):  # other decoding settings never mix into one file
        other = small_config(batch_size=2, limit=8, max_new_tokens=7)
        evaluate_futurebench(model, processor, world / "futurebench.jsonl", tmp_path, other)
    changed = world / "futurebench_changed.jsonl"  # other data with the same doc ids is refused too
    lines = (world / "futurebench.jsonl").read_text().splitlines()
    row = json.loads(lines[-1])
    row["qa"]["Question"] += " (changed)"
    changed.write_text("\n".join(lines[:-1] + [json.dumps(row)]) + "\n")
    with pytest.raises(ValueError, match="data_fingerprint"):
        evaluate_futurebench(model, processor, changed, tmp_path, cfg)

    more = CountingGenerate()  # raising the limit decodes only the new doc ids
    monkeypatch.setattr(batches_mod, "generate_with_latents", more)
    summary = evaluate_futurebench(model, processor, world / "futurebench.jsonl", tmp_path, small_config(batch_size=4))
    assert more.rows == 4 and summary["n_predictions"] == 12
    assert stable(read_jsonl(tmp_path / "predictions.jsonl")) == stable(read_jsonl(fb_run[0] / "predictions.jsonl"))


def test_two_shards_merge_like_one_process(tiny, world, tmp_path, fb_run):
    model, processor = tiny
    cfg = small_config()
    items, _ = load_benchmark("futurebench", world / "futurebench.jsonl", cfg)
    # rank 1 finishes first: the merge must still follow the doc order
    assert decode_shard(model, processor, items, tmp_path, cfg, rank=1, world_size=2) == 6
    assert decode_shard(model, processor, items, tmp_path, cfg, rank=0, world_size=2) == 6
    shard0 = [r["doc_id"] for r in read_jsonl(shard_path(tmp_path, 0, 2))]
    shard1 = [r["doc_id"] for r in read_jsonl(shard_path(tmp_path, 1, 2))]
    assert shard0 == [it.id for it in items[0::2]] and shard1 == [it.id for it in items[1::2]]
    merged = merge_predictions(tmp_path, items)
    single = read_jsonl(fb_run[0] / "predictions.jsonl")
    assert stable(merged) == stable(single)
    assert stable(read_jsonl(tmp_path / "predictions.jsonl")) == stable(single)


# --------------------------------------------------------------------------------------------------- TwiFF-Bench
def test_twiffbench_every_sample_judged_or_failed(tiny, world, tmp_path, monkeypatch):
    model, processor = tiny
    cfg = small_config()
    data = world / "twiffbench"
    items = list(load_twiffbench(data).records)
    with start_judge_server(fault=FaultConfig(error_rate=1.0)) as server:  # an outage: every request fails
        jc = JudgeConfig(base_url=server.base_url, model=JUDGE_MODEL, max_retries=1, backoff_base_s=0.01,
                         timeout_s=5.0, concurrency=4)
        summary = evaluate_twiffbench(model, processor, data, tmp_path, cfg, jc)
    rows = read_jsonl(tmp_path / "predictions.jsonl")
    assert [r["doc_id"] for r in rows] == [it.doc_id for it in items]
    assert all(r["judge_error"] and r["cot_score"] is None for r in rows)
    assert summary["scores"]["n_failed"] == len(items) and summary["scores"]["n_judged"] == 0
    assert summary["scores"]["avg"] is None and summary["scores"]["failures_as_zero"]["avg"] == 0.0

    counter = CountingGenerate()
    monkeypatch.setattr(batches_mod, "generate_with_latents", counter)
    with start_judge_server() as server:  # the judge is back: failures are re-judged, nothing is re-decoded
        jc = JudgeConfig(base_url=server.base_url, model=JUDGE_MODEL, concurrency=4)
        summary = evaluate_twiffbench(model, processor, data, tmp_path, cfg, jc)
    assert counter.calls == 0
    rows = read_jsonl(tmp_path / "predictions.jsonl")
    assert [r["doc_id"] for r in rows] == [it.doc_id for it in items]
    assert all(r["judge_error"] is None and 0 <= r["cot_score"] <= 5 and 0 <= r["answer_score"] <= 5 for r in rows)
    scores = summary["scores"]
    assert scores["n_judged"] + scores["n_failed"] == scores["n"] == len(items) and scores["n_failed"] == 0
    assert summary["judge"]["stats"]["requests_sent"] == len(items)
    recomputed = json.loads(json.dumps(summarize_predictions(rows, "twiffbench")))
    assert recomputed["scores"] == json.loads((tmp_path / "summary.json").read_text())["scores"]
    assert "api_key" not in json.dumps(summary["judge"]["config"]).replace('"api_key_env"', "")


def test_twiffbench_needs_a_judge_before_decoding(tiny, world, tmp_path, monkeypatch):
    monkeypatch.delenv("FL1_JUDGE_BASE_URL", raising=False)
    counter = CountingGenerate()
    monkeypatch.setattr(batches_mod, "generate_with_latents", counter)
    with pytest.raises(ValueError, match="base URL"):
        evaluate_twiffbench(*tiny, world / "twiffbench", tmp_path, small_config(), JudgeConfig(model=JUDGE_MODEL))
    assert counter.calls == 0


# -------------------------------------------------------------------------------------------------- latent stats
def test_adjacent_span_cosines():
    latents = torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.0, 2.0], [0.0, 1.0], [0.0, 5.0], [7.0, 7.0]])
    # spans: mean (2,0) | (0,2) | (0,3); the 6th latent belongs to an unclosed span and is ignored
    assert adjacent_span_cosines(latents, [2, 1, 2]) == pytest.approx([0.0, 1.0])
    assert adjacent_span_cosines(latents, [1]) == []
    cos = adjacent_span_cosines(latents, [1, 0, 1])  # an empty span has no mean
    assert cos == [None, None]
    assert adjacent_span_cosines(torch.tensor([[1.0, 1.0], [-1.0, -1.0]]), [1, 1]) == pytest.approx([-1.0])
    with pytest.raises(ValueError):
        adjacent_span_cosines(latents, [4, 4])


def _rec(split: str, spans: int, cosines=None, correct=False, tokens=10, latency=0.5) -> dict:
    return {
        "split": split,
        "span_counts": [4] * spans,
        "latent_tokens": 4 * spans,
        "adjacent_span_cosines": cosines if cosines is not None else [],
        "new_tokens": tokens,
        "latency_s": latency,
        "correct_faithful": correct,
        "correct_strict": correct,
    }


def test_latent_statistics_on_hand_made_predictions():
    recs = [
        # hop1: spans 0, 1, 1, 2, 5 → donut over 4 responses: 1: 1/2, 2: 1/4, 3: 0, >3: 1/4
        _rec("hop1", 0), _rec("hop1", 1), _rec("hop1", 1), _rec("hop1", 2, [0.5]),
        _rec("hop1", 5, [1.0, 0.0, None, 0.5]),
        # hop2: spans 3, 3 → all in bin 3
        _rec("hop2", 3, [0.2, 0.4]), _rec("hop2", 3, [0.6, None]),
    ]
    dist = span_count_distribution(recs)
    h1 = dist["per_split"]["hop1"]
    assert h1["n"] == 5 and h1["n_zero"] == 1 and h1["n_with_spans"] == 4
    assert h1["counts"] == {"1": 2, "2": 1, "3": 0, ">3": 1}
    assert h1["shares"] == pytest.approx({"1": 0.5, "2": 0.25, "3": 0.0, ">3": 0.25})
    assert h1["mean_spans"] == pytest.approx(9 / 5) and h1["mean_spans_with_latent"] == pytest.approx(9 / 4)
    h2 = dist["per_split"]["hop2"]
    assert h2["shares"] == {"1": 0.0, "2": 0.0, "3": 1.0, ">3": 0.0} and h2["mean_spans"] == 3.0
    overall = dist["overall"]
    assert overall["n"] == 7 and overall["n_zero"] == 1 and overall["mean_spans"] == pytest.approx(15 / 7)
    assert sum(overall["shares"].values()) == pytest.approx(1.0)

    stats = latent_statistics(recs)
    assert stats["overall"]["n_pairs"] == 7 and stats["overall"]["n_pairs_skipped"] == 2
    assert stats["overall"]["mean_adjacent_cosine"] == pytest.approx((0.5 + 1.0 + 0.0 + 0.5 + 0.2 + 0.4 + 0.6) / 7)
    assert stats["per_split"]["hop1"]["mean_adjacent_cosine"] == pytest.approx(2.0 / 4)
    assert stats["per_split"]["hop1"]["mean_adjacent_cosine_per_response"] == pytest.approx((0.5 + 0.5) / 2)
    assert stats["per_split"]["hop2"]["mean_adjacent_cosine"] == pytest.approx(0.4)
    assert stats["overall"]["mean_latent_tokens"] == pytest.approx(4 * 15 / 7)
    assert stats["overall"]["mean_latents_per_span"] == 4.0
    assert latent_statistics([])["distribution"]["overall"]["mean_spans"] is None


def test_inference_cost_accuracy_per_second():
    recs = [
        _rec("hop1", 1, correct=True, tokens=100, latency=0.5),
        _rec("hop1", 1, correct=False, tokens=200, latency=1.5),
        _rec("hop2", 1, correct=True, tokens=300, latency=1.0),
        _rec("hop2", 1, correct=True, tokens=400, latency=1.0),
    ]
    cost = inference_cost(recs)
    assert cost["mean_new_tokens"] == 250.0 and cost["mean_latency_s"] == 1.0
    assert cost["accuracy_strict"] == 75.0 and cost["accuracy_per_second_strict"] == 75.0
    assert cost["samples_per_second"] == 1.0
    no_acc = inference_cost([{"new_tokens": 5, "latency_s": 2.0}])
    assert "accuracy_strict" not in no_acc and no_acc["mean_latency_s"] == 2.0


# --------------------------------------------------------------------------------------------------- comparison
def test_comparison_table_has_both_settings_and_paper_numbers(fb_run):
    _, summary, _ = fb_run
    twiff = {"scores": {"n": 6, "cot": 1.5, "answer": 2.5, "avg": 2.0, "n_failed": 1},
             "inference_cost": {"mean_new_tokens": 12.0, "mean_latency_s": 0.3}}
    df, md = comparison_table({"tiny random": summary}, {"tiny random": twiff})
    assert set(df["source"]) == {"paper", "workbook"}
    assert PAPER_FUTUREBENCH_SETTING in set(df["setting"])
    assert any(s.startswith(WORKBOOK_SETTING) for s in df["setting"])
    assert all(s.startswith(("paper:", "workbook:")) for s in df["setting"])

    def cell(model: str, bench: str, col: str):
        sel = df[(df["source"] == "paper") & (df["model"] == model) & (df["benchmark"] == bench)]
        assert len(sel) == 1
        return sel.iloc[0][col]

    assert cell("Qwen3-VL-8B", "FutureBench", "AVG") == 61.0
    assert cell("Future-L1-SFT", "FutureBench", "AVG") == 73.2
    assert cell("Video-CoE", "FutureBench", "AVG") == 75.0
    rl = [cell("Future-L1-RL", "FutureBench", c) for c in ("1-hop", "2-hop", "3-hop", "Interp.", "AVG")]
    assert rl == [83.2, 86.5, 86.6, 85.1, 85.4]
    assert [cell(m, "TwiFF-Bench", "TwiFF Avg") for m in ("Qwen3-VL-8B", "Future-L1-SFT", "Future-L1-RL")] == [
        2.44, 2.52, 3.04]
    assert cell("Future-L1-RL", "TwiFF-Bench", "TwiFF CoT") == 3.11
    assert cell("Future-L1-RL", "TwiFF-Bench", "TwiFF Ans") == 2.97
    assert [cell("Future-L1-RL", "FutureBench", c) for c in ("tokens", "latency_s")] == [195.3, 0.91]
    assert [cell("Qwen3-VL-8B", "FutureBench", c) for c in ("tokens", "latency_s")] == [288.8, 1.18]
    assert cell("Future-L1-SFT", "FutureBench", "tokens") is None  # not reported → empty, never 0

    ours = df[(df["source"] == "workbook") & (df["benchmark"] == "FutureBench")].iloc[0]
    assert ours["AVG"] == summary["scores"]["strict"]["overall"] and ours["n"] == 12
    assert math.isclose(ours["tokens"], summary["inference_cost"]["mean_new_tokens"])
    ours_tw = df[(df["source"] == "workbook") & (df["benchmark"] == "TwiFF-Bench")].iloc[0]
    assert (ours_tw["TwiFF Avg"], ours_tw["judge failures"]) == (2.0, 1)
    for text in ("paper: Qwen3-VL-8B on FutureBench", WORKBOOK_SETTING, "85.40", "3.04", "195.30", "tiny random"):
        assert text in md
    assert md.count("\n") == len(df) + 1


def test_limit_spreads_over_the_file_so_every_split_keeps_its_share(world):
    items, _ = load_benchmark("futurebench", world / "futurebench.jsonl", small_config(limit=None))
    assert spread_limit(items, None) == items and spread_limit(items, len(items) + 5) == items
    picked = spread_limit(items, 4)
    assert len(picked) == 4 and picked[0] is items[0]
    positions = [items.index(it) for it in picked]
    assert positions == sorted(positions) and len(set(positions)) == 4
    assert max(positions) >= len(items) * 3 // 4 - 1  # the tail of the file (the last split) is sampled too
    limited, _ = load_benchmark("futurebench", world / "futurebench.jsonl", small_config(limit=4))
    assert [it.id for it in limited] == [it.id for it in picked]
