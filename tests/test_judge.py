"""The judge client against the local OpenAI-compatible judge server (faults, cache, secrets, strict parsing)."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import logging
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from fl1_core.evaluation import score_twiffbench
from fl1_core.judge.client import judge_many
from fl1_core.judge.config import JudgeConfig, TwiffJudgeItem, YesNoJudgeItem, normalize_base_url
from fl1_core.judge.prompts import build_twiff_messages
from fl1_core.judge.rules import rule_scores, rule_yes_no
from fl1_core.judge.sanitize import sanitize_for_judge
from fl1_core.judge.server import FaultConfig, start_judge_server

EVENTS = [
    "the red ball hits the blue box.",
    "the blue box slides to the right.",
    "the green lamp switches on.",
    "the yellow block falls off the table.",
    "the purple cup tips over.",
]
ANSWERS = [
    "the yellow block falls off the table.",
    "The yellow block falls.",
    "the block stays on the table",
    "nothing happens",
    "<|latent_start|><|latent|><|latent_end|>the yellow block falls off the table<|im_end|>",
]


def make_items(n: int) -> list[TwiffJudgeItem]:
    """Distinct items whose exact scores vary over the whole 0–5 range."""
    items = []
    for i in range(n):
        k = i % (len(EVENTS) + 1)  # 0..5 reference events mentioned
        reasoning = " ".join(EVENTS[:k]) + f" (sample {i})"
        items.append(
            TwiffJudgeItem(
                doc_id=f"doc-{i:04d}",
                question=f"<image>Sample {i}: what happens next?",
                reference_reasoning="<rimage>".join(f"THOUGHT {j}: {e}" for j, e in enumerate(EVENTS)),
                ground_truth=EVENTS[3],
                model_reasoning=f"<reason>{reasoning}</reason><|latent_start|><|latent|><|latent_end|>",
                model_answer=ANSWERS[i % len(ANSWERS)],
            )
        )
    return items


def expected_scores(item: TwiffJudgeItem) -> tuple[int, int]:
    return rule_scores(
        item.reference_reasoning,
        item.ground_truth,
        sanitize_for_judge(item.model_reasoning),
        sanitize_for_judge(item.model_answer),
    )


def fast_config(base_url: str, **kw: object) -> JudgeConfig:
    values: dict = dict(
        base_url=base_url, model="fl1-rule-judge", concurrency=16, timeout_s=0.5, max_retries=6,
        backoff_base_s=0.01, backoff_max_s=0.05, jitter_seed=0,
    )
    values.update(kw)
    return JudgeConfig(**values)


@pytest.fixture(autouse=True)
def _no_judge_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("FL1_JUDGE_BASE_URL", "FL1_JUDGE_MODEL", "FL1_JUDGE_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(var, raising=False)


@pytest.mark.timeout(120)
def test_faulty_server_every_sample_accounted_for_and_cache_resumes(tmp_path: Path) -> None:
    items = make_items(200)
    fault = FaultConfig(error_rate=0.1, timeout_rate=0.1, malformed_rate=0.1, seed=7, hang_s=10.0)
    with start_judge_server(fault=fault) as srv:
        cfg = fast_config(srv.base_url, cache_dir=str(tmp_path / "cache"))
        results, stats = judge_many(items, cfg, progress=False)
        sstats = srv.stats
        # every injected fault kind actually happened
        for kind in ("fault_http_500", "fault_http_429", "fault_hang", "fault_malformed"):
            assert sstats[kind] > 0, (kind, sstats)
        assert len(results) == len(items)
        assert [r["doc_id"] for r in results] == [it.doc_id for it in items]  # input order, none lost/duplicated
        judged = [r for r in results if r["judge_error"] is None]
        failed = [r for r in results if r["judge_error"] is not None]
        assert len(judged) + len(failed) == 200 and stats.judged == len(judged) and stats.failures == len(failed)
        assert len(judged) >= 190
        for r in failed:
            assert r["cot_score"] is None and r["answer_score"] is None and isinstance(r["judge_error"], str)
        for item, r in zip(items, results):
            if r["judge_error"] is None:
                assert (r["cot_score"], r["answer_score"]) == expected_scores(item), item.doc_id
        assert len({(r["cot_score"], r["answer_score"]) for r in judged}) >= 6  # scores really vary
        # every attempt is counted once; an attempt that timed out before reaching a loaded server is not seen there
        assert stats.retries > 0 and stats.requests_sent == len(items) + stats.retries
        assert sstats["chat_requests"] <= stats.requests_sent <= sstats["chat_requests"] + stats.errors["timeout"]
        assert {"timeout", "unparseable", "http_500", "http_429"} <= set(stats.errors)
        assert max(r["attempts"] for r in results) >= 2

        summary = score_twiffbench(results)
        assert summary["n_judged"] == len(judged) and summary["n_failed"] == len(failed)

        # second run, same cache: only the failed samples are re-queried
        before = srv.stats["chat_requests"]
        results2, stats2 = judge_many(items, cfg, progress=False)
        assert stats2.cache_hits == len(judged)
        if not failed:
            assert stats2.requests_sent == 0 and srv.stats["chat_requests"] == before
        assert [r["doc_id"] for r in results2] == [it.doc_id for it in items]
        for r1, r2 in zip(results, results2):
            if r1["judge_error"] is None:
                assert (r2["cot_score"], r2["answer_score"], r2["cached"]) == (r1["cot_score"], r1["answer_score"], True)


@pytest.mark.timeout(60)
def test_second_run_with_cache_sends_zero_requests(tmp_path: Path) -> None:
    items = make_items(60)
    with start_judge_server() as srv:
        cfg = fast_config(srv.base_url, timeout_s=10.0)
        res1, st1 = judge_many(items, cfg, cache_dir=tmp_path, progress=True)
        assert st1.requests_sent == 60 and st1.failures == 0 and st1.cache_hits == 0
        n_server = srv.stats["chat_requests"]
        res2, st2 = judge_many(items, cfg, cache_dir=tmp_path, progress=False)
        assert st2.requests_sent == 0 and st2.cache_hits == 60
        assert srv.stats["chat_requests"] == n_server
        assert [(r["cot_score"], r["answer_score"]) for r in res1] == [(r["cot_score"], r["answer_score"]) for r in res2]
        # cache files are complete JSON with no temp files left behind
        files = list(tmp_path.rglob("*"))
        assert not [f for f in files if f.name.endswith(".tmp")]
        assert sum(f.suffix == ".json" for f in files) == 60
        # a different judge model is a different cache key
        _, st3 = judge_many(items[:5], fast_config(srv.base_url, model="other"), cache_dir=tmp_path, progress=False)
        assert st3.requests_sent == 5


@pytest.mark.timeout(60)
def test_all_malformed_fails_explicitly_after_bounded_retries() -> None:
    items = make_items(20)
    with start_judge_server(fault=FaultConfig(malformed_rate=1.0, seed=1)) as srv:
        results, stats = judge_many(items, fast_config(srv.base_url, max_retries=2, timeout_s=10.0), progress=False)
    assert [r["doc_id"] for r in results] == [it.doc_id for it in items]
    assert all(r["judge_error"] and r["judge_error"].startswith("unparseable") for r in results)
    assert all(r["attempts"] == 3 for r in results)
    assert stats.failures == 20 and stats.judged == 0 and stats.requests_sent == 60 and stats.retries == 40
    summary = score_twiffbench(results)
    assert summary["n_failed"] == 20 and summary["avg"] is None and summary["failures_as_zero"]["avg"] == 0.0


@pytest.mark.timeout(60)
def test_client_errors_are_not_retried_and_connection_errors_are() -> None:
    items = make_items(3)
    with start_judge_server() as srv:
        results, stats = judge_many(items, fast_config(srv.base_url + "/nope", timeout_s=10.0), progress=False)
        assert all(r["judge_error"].startswith("http_404") and r["attempts"] == 1 for r in results)
        assert stats.retries == 0
        port = srv.port
    # server gone: connection errors, retried then failed
    results, stats = judge_many(items, fast_config(f"http://127.0.0.1:{port}/v1", max_retries=1), progress=False)
    assert all(r["judge_error"] and r["attempts"] == 2 for r in results)
    assert stats.failures == 3 and stats.retries == 3


@pytest.mark.timeout(60)
def test_yes_no_judge_strict_with_faults() -> None:
    pairs = [
        ("the lamp turns on.", "The lamp turns on"),
        ("the lamp turns on.", "yes the lamp turns on, probably not"),
        ("the lamp turns on.", "the lamp turns off"),
        ("B", "(b)"),
        ("B", "a ball"),
        ("the cup tips over", "the cup tips over."),
    ]
    items = [YesNoJudgeItem(i, "what happens next?", gt, ans) for i, (gt, ans) in enumerate(pairs * 10)]
    with start_judge_server(fault=FaultConfig(malformed_rate=0.4, seed=3)) as srv:
        results, stats = judge_many(items, fast_config(srv.base_url, max_retries=10, timeout_s=10.0), progress=False)
        assert srv.stats["fault_malformed"] > 0
    assert stats.errors.get("unparseable", 0) > 0 and stats.failures == 0
    assert [r["verdict"] for r in results] == [rule_yes_no(it.ground_truth, it.model_answer) for it in items]
    assert {r["verdict"] for r in results} == {True, False}
    assert all(r["reply"] in ("yes", "no") for r in results)


@pytest.mark.timeout(60)
def test_identical_requests_are_coalesced_and_mappings_accepted() -> None:
    base = make_items(1)[0]
    items = [dict(doc_id=i, question=base.question, reference_reasoning=base.reference_reasoning,
                  ground_truth=base.ground_truth, model_output="<reason>the red ball hits the blue box.</reason>"
                  "<answer>the yellow block falls off the table.</answer>") for i in range(8)]
    with start_judge_server() as srv:
        results, stats = judge_many(items, fast_config(srv.base_url, timeout_s=10.0), progress=False)
    assert [r["doc_id"] for r in results] == list(range(8))
    assert {(r["cot_score"], r["answer_score"]) for r in results} == {(1, 5)}
    assert stats.requests_sent == 1 and stats.coalesced == 7


@pytest.mark.timeout(60)
def test_images_are_png_data_uris_and_ignored_by_rule_judge() -> None:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (255, 0, 0)).save(buf, format="JPEG")
    item = make_items(4)[3]
    item.reference_images = [buf.getvalue(), Image.new("RGB", (4, 4))]
    msgs = build_twiff_messages(item.question, item.reference_reasoning, item.ground_truth,
                                item.model_reasoning, item.model_answer, item.reference_images)
    parts = msgs[1]["content"]
    urls = [p["image_url"]["url"] for p in parts if p["type"] == "image_url"]
    assert len(urls) == 2 and all(u.startswith("data:image/png;base64,") for u in urls)
    text_only = build_twiff_messages(item.question, item.reference_reasoning, item.ground_truth,
                                     item.model_reasoning, item.model_answer, item.reference_images,
                                     include_images=False)
    assert isinstance(text_only[1]["content"], str) and "[reference image 2]" in text_only[1]["content"]
    with start_judge_server() as srv:
        for include in (True, False):
            results, _ = judge_many([item], fast_config(srv.base_url, timeout_s=10.0, include_images=include),
                                    progress=False)
            assert (results[0]["cot_score"], results[0]["answer_score"]) == expected_scores(item)


@pytest.mark.timeout(60)
def test_api_key_never_leaks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    sentinel = "sk-SENTINEL-" + "7f3a9c1e5b2d4f6a8c0e"
    monkeypatch.setenv("FL1_JUDGE_API_KEY", sentinel)
    caplog.set_level(logging.DEBUG)
    items = make_items(40)
    out_dir = tmp_path / "out"
    fault = FaultConfig(error_rate=0.2, timeout_rate=0.05, malformed_rate=0.2, seed=11, hang_s=5.0)
    with start_judge_server(fault=fault) as srv:
        cfg = fast_config(srv.base_url, cache_dir=str(out_dir / "cache"))
        results, stats = judge_many(items, cfg, progress=False)
        _, _ = judge_many(make_items(2), fast_config(srv.base_url + "/nope"), progress=False)  # 404 error path
        # the key really was sent (so this test can fail)
        assert hashlib.sha256(sentinel.encode()).hexdigest() in srv.auth_hashes
    manifest = {"judge": cfg.to_dict(), "stats": stats.to_dict(), "results": results}
    (out_dir / "manifest.json").write_text(json.dumps(manifest, default=str))
    assert cfg.to_dict()["api_key_env"] == "FL1_JUDGE_API_KEY"
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(written) > 10
    for path in written:
        assert sentinel.encode() not in path.read_bytes(), path
    assert stats.retries > 0 and caplog.records
    assert sentinel not in caplog.text
    assert sentinel not in repr(cfg) and sentinel not in repr(results) and sentinel not in repr(stats)


def test_config_env_and_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    assert normalize_base_url("http://h:1/v1/chat/completions/") == "http://h:1/v1"
    assert normalize_base_url(" http://h:1/v1/ ") == "http://h:1/v1"
    monkeypatch.setenv("FL1_JUDGE_BASE_URL", "http://127.0.0.1:9/v1/chat/completions")
    monkeypatch.setenv("FL1_JUDGE_MODEL", "judge-x")
    cfg = JudgeConfig.from_env(concurrency=4)
    assert cfg.resolved_base_url() == "http://127.0.0.1:9/v1" and cfg.model == "judge-x" and cfg.concurrency == 4
    assert JudgeConfig().resolved_model() == "judge-x"
    monkeypatch.delenv("FL1_JUDGE_MODEL")
    with pytest.raises(ValueError, match="FL1_JUDGE_MODEL"):
        JudgeConfig().resolved_model()
    assert "api_key" not in {k for k in cfg.to_dict() if k != "api_key_env"}


@pytest.mark.timeout(30)
def test_server_endpoints_and_loopback_only() -> None:
    with pytest.raises(ValueError, match="non-loopback"):
        start_judge_server(host="0.0.0.0")
    with start_judge_server(host="localhost") as srv:
        assert srv.base_url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(srv.base_url + "/models", timeout=5) as resp:
            models = json.load(resp)
        assert models["object"] == "list" and models["data"][0]["id"] == "fl1-rule-judge"
        item = make_items(3)[2]
        msgs = build_twiff_messages(item.question, item.reference_reasoning, item.ground_truth,
                                    item.model_reasoning, item.model_answer)
        body = {"model": "m", "messages": msgs, "response_format": {"type": "json_object"}, "temperature": 0}
        req = urllib.request.Request(srv.base_url + "/chat/completions", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=5) as resp:
            completion = json.load(resp)
        assert completion["object"] == "chat.completion" and completion["model"] == "m"
        assert completion["usage"]["total_tokens"] == (
            completion["usage"]["prompt_tokens"] + completion["usage"]["completion_tokens"])
        content = json.loads(completion["choices"][0]["message"]["content"])
        assert (content["cot_score"], content["answer_score"]) == expected_scores(item)
        bad = urllib.request.Request(srv.base_url + "/chat/completions",
                                     data=json.dumps({"messages": [{"role": "user", "content": "hi"}]}).encode())
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(bad, timeout=5)
        assert err.value.code == 400


@pytest.mark.timeout(60)
def test_judge_many_inside_running_event_loop() -> None:
    items = make_items(5)
    with start_judge_server() as srv:
        cfg = fast_config(srv.base_url, timeout_s=10.0)

        async def notebook_cell() -> list[dict]:
            results, _ = judge_many(items, cfg, progress=False)  # a notebook's loop is already running
            return results

        results = asyncio.run(notebook_cell())
    assert [(r["cot_score"], r["answer_score"]) for r in results] == [expected_scores(it) for it in items]
