"""Frame-needing world questions: the answer lives in the imagined frame, never in the text before it."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from fl1_core.data.formats import load_rl_records, load_sft_records
from fl1_core.data.records import RecordError
from fl1_core.data.frames import frame_pool_indices
from fl1_core.data.world.config import WorldConfig
from fl1_core.data.world.frame_questions import body_place, column_of, layout_text
from fl1_core.data.world.physics import sample_clip
from fl1_core.data.world.questions import candidates
from fl1_core.data.world.records import rl_record, sft_record
from fl1_core.data.world.world_types import FRAME_KINDS, Clip
from fl1_core.tokens import IMAGE_PLACEHOLDER


def _clips(n: int, seed: int = 11) -> list[Clip]:
    cfg = WorldConfig()
    pool = frame_pool_indices(cfg.num_frames, cfg.pool_size)
    out = []
    for i in range(n):
        sim, k = sample_clip(np.random.default_rng([seed, 3, i]), cfg, "train")
        out.append(Clip(f"clip_{i:05d}", "train", sim, k, pool, "v.mp4", None, cfg.fps))
    return out


@pytest.fixture(scope="module")
def frame_records() -> list[dict]:
    recs = []
    for i, c in enumerate(_clips(40)):
        rng = np.random.default_rng(i)
        for q in candidates(c, rng):
            if q.needs_frame:
                recs.append(sft_record(c, q, f"r{len(recs)}", rng, "ABCD"[len(recs) % 4]))
    return recs


def test_the_answer_appears_only_after_the_last_span(frame_records):
    assert {r["meta"]["question_kind"] for r in frame_records} == set(FRAME_KINDS)
    for r in frame_records:
        answer = r["meta"]["answer_text"]
        place = answer.split(" is ", 1)[1]  # 'on the floor at the left'
        gpt = r["conversations"][1]["value"]
        before, after = gpt.rsplit(IMAGE_PLACEHOLDER, 1)
        question = r["conversations"][0]["value"].split("\n")[0]  # the question line, without the option lines
        for text in (before, question):
            assert answer not in text and place not in text, (r["id"], text)
        assert answer in after
        assert r["meta"]["needs_frame"] and r["meta"]["frame_index"] == r["reasoning_image"][-1]
        assert r["answer"] in "ABCD" and r["meta"]["options"][r["answer"]] == answer
        # one thought per gap between frames: the reading and the conclusion share the last one
        assert gpt.count("THOUGHT") == gpt.count(IMAGE_PLACEHOLDER) + 1
        assert after.split(": ", 1)[1].startswith("From left to right:")


def test_most_answers_differ_from_the_present(frame_records):
    changed = [r["meta"]["changed"] for r in frame_records]
    assert np.mean(changed) >= 0.5
    for r in frame_records:
        present, answer = r["meta"]["present_answer"], r["meta"]["answer_text"]
        assert (present != answer) == r["meta"]["changed"]
        if r["meta"]["changed"]:  # the "read the last observed frame" baseline has its option to pick, and misses
            assert present in r["meta"]["options"].values()


def test_place_is_the_column_and_support_of_the_frame():
    assert [column_of(x, 96) for x in (0.0, 31.9, 32.0, 63.9, 64.0, 95.0)] == ["left"] * 2 + ["middle"] * 2 + [
        "right"] * 2
    c = _clips(1)[0]
    frame = c.pool[-1]
    text = layout_text(c, frame)
    for b, name in enumerate(c.names):
        assert f"the {name} {body_place(c, b, frame)}" in text


def test_world_writes_frame_items_and_the_loaders_check_their_frame_index(small_world: Path, tmp_path: Path):
    manifest = json.loads((small_world / "world.json").read_text())
    held = [json.loads(x) for x in (small_world / "heldout_mcq.jsonl").read_text().splitlines()]
    frames = [r for r in held if r["meta"]["needs_frame"]]
    assert len(frames) == manifest["counts"]["heldout_needs_frame"] == WorldConfig.small().heldout_frame_size
    assert Counter(r["meta"]["question_kind"] for r in frames).keys() <= set(FRAME_KINDS)
    assert all(r["id"].startswith("world-heldout-frame-") for r in frames)
    sft = json.loads((small_world / "sft.json").read_text())
    assert load_sft_records(small_world / "sft.json").records  # the real loader accepts the world's files
    bad_sft = next(r for r in sft if r["meta"]["needs_frame"])
    del bad_sft["meta"]["frame_index"]
    (tmp_path / "sft.json").write_text(json.dumps([bad_sft]))
    with pytest.raises(RecordError) as info:
        load_sft_records(tmp_path / "sft.json", video_root=small_world)
    assert (info.value.record_id, info.value.field) == (bad_sft["id"], "meta.frame_index")
    bad_rl = dict(frames[0], meta=dict(frames[0]["meta"], frame_index=99))
    (tmp_path / "rl.jsonl").write_text(json.dumps(bad_rl) + "\n")
    res = load_rl_records(tmp_path / "rl.jsonl", video_root=small_world, on_error="skip")
    assert [(r.record_id, r.field) for r in res.rejects] == [(bad_rl["id"], "meta.frame_index")]


def test_rl_records_of_frame_kinds_are_mcq_or_free_form_places():
    c = _clips(3)[2]
    q = next(q for q in candidates(c, np.random.default_rng(0)) if q.needs_frame)
    mcq = rl_record(c, q, "m", np.random.default_rng(1), "C")
    free = rl_record(c, q, "f", np.random.default_rng(1), None)
    assert mcq["answer"] == "C" and mcq["meta"]["options"]["C"] == q.extra["answer"]
    assert free["answer"] == q.extra["answer"] and free["problem_type"] == "free-form"
