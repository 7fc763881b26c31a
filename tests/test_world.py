"""Tests of the synthetic future world generator (fl1_core.data.world)."""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from fl1_core.data.frames import frame_pool_indices
from fl1_core.data.world import WorldConfig, event_text, generate_world, vocabulary_corpus
from fl1_core.data.world.generate import split_counts
from fl1_core.data.world.physics import EVENT_TYPES
from fl1_core.tokens import IMAGE_PLACEHOLDER, MCQ_INSTRUCTION

SMALL = dict(num_train_clips=8, num_test_clips=6, rl_size=10, heldout_mcq_size=12, heldout_frame_size=8, futurebench_size=16,
             twiffbench_size=8)


def _hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _load(root: Path) -> dict:
    import pyarrow.parquet as pq

    return {
        "manifest": json.loads((root / "world.json").read_text()),
        "events": {r["clip_id"]: r for r in map(json.loads, (root / "events.jsonl").read_text().splitlines())},
        "sft": json.loads((root / "sft.json").read_text()),
        "rl": [json.loads(line) for line in (root / "rl.jsonl").read_text().splitlines()],
        "fb": [json.loads(line) for line in (root / "futurebench.jsonl").read_text().splitlines()],
        "heldout": [json.loads(line) for line in (root / "heldout_mcq.jsonl").read_text().splitlines()],
        "tw": pq.read_table(root / "twiffbench/test-00000-of-00001.parquet").to_pylist(),
    }


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("world_a")
    generate_world(root, seed=0, config=WorldConfig(**SMALL))
    return root, _load(root)


def _clip_of(rec: dict) -> str:
    return rec["meta"]["clip_id"]


def test_same_seed_identical_files_different_seed_differs(world, tmp_path):
    root_a, data = world
    root_b, root_c = tmp_path / "b", tmp_path / "c"
    generate_world(root_b, seed=0, config=WorldConfig(**SMALL))
    generate_world(root_c, seed=1, config=WorldConfig(**SMALL))
    ha, hb, hc = _hashes(root_a), _hashes(root_b), _hashes(root_c)
    assert any(k.endswith(".mp4") for k in ha)
    assert ha == hb, [k for k in ha if ha[k] != hb.get(k)]
    # the manifest's hashes are the files' hashes
    assert data["manifest"]["files"] == {k: v for k, v in ha.items() if k != "world.json"}
    assert not any(k.endswith(".tmp") for k in ha)
    differing = [k for k in ha if ha[k] != hc.get(k)]
    assert "events.jsonl" in differing and "sft.json" in differing
    assert sum(k.endswith(".mp4") for k in differing) >= len([k for k in ha if k.endswith(".mp4")]) - 1


def test_decord_reads_every_clip(world):
    import decord

    root, data = world
    cfg = data["manifest"]["config"]
    for row in data["events"].values():
        vr = decord.VideoReader(str(root / row["video"]), ctx=decord.cpu(0), num_threads=1)
        assert len(vr) == cfg["num_frames"] == row["num_frames"]
        assert vr[0].shape == (cfg["height"], cfg["width"], 3)
        if row["split"] == "test":
            pre = decord.VideoReader(str(root / row["prefix_video"]), ctx=decord.cpu(0), num_threads=1)
            assert len(pre) == row["observed_until"] + 1
        else:
            assert row["prefix_video"] is None


def test_event_chains(world):
    _, data = world
    cfg = data["manifest"]["config"]
    pool = frame_pool_indices(cfg["num_frames"])
    assert data["manifest"]["pool"] == pool
    for row in data["events"].values():
        ev = row["events"]
        assert cfg["min_events"] <= len(ev) <= cfg["max_events"] and 3 <= len(ev) <= 5
        frames = [e["frame"] for e in ev]
        assert frames == sorted(frames) and len(set(frames)) == len(frames)
        assert pool[0] < frames[0] and frames[-1] <= pool[-1]
        names = {o["name"] for o in row["objects"]}
        for e in ev:
            assert e["type"] in EVENT_TYPES
            assert e["text"] == event_text(e["type"], e["subject"], e["object"], e["where"])
            assert e["time"] == pytest.approx(e["frame"] / row["fps"])
            assert e["subject"] in names | {"light"}
        assert len({e["text"] for e in ev}) == len(ev)
        assert row["observed_until"] == pool[len(row["observed_images"]) - 1]
        future = [e for e in ev if e["frame"] > row["observed_until"]]
        need = cfg["min_future_events_test"] if row["split"] == "test" else cfg["min_future_events_train"]
        assert len(future) >= need
        for o in row["objects"]:
            assert o["size"] >= 8.0 * cfg["width"] / 96 - 1e-6
            assert len(o["track"]) == cfg["num_frames"]
        if row["light_on_frame"] is not None:
            assert any(e["type"] == "light" and e["frame"] == row["light_on_frame"] for e in ev)


def test_marker_counts_and_pool_indices(world):
    _, data = world
    for r in data["sft"]:
        human, gpt = r["conversations"][0]["value"], r["conversations"][1]["value"]
        assert [c["from"] for c in r["conversations"]] == ["human", "gpt"]
        assert human.count(IMAGE_PLACEHOLDER) == len(r["image"]) >= 1
        assert human.startswith(IMAGE_PLACEHOLDER * len(r["image"]))
        assert gpt.count(IMAGE_PLACEHOLDER) == len(r["reasoning_image"]) >= 1
        assert gpt.startswith("THOUGHT 0: ")
        assert re.findall(r"THOUGHT (\d+):", gpt) == [str(i) for i in range(len(r["reasoning_image"]) + 1)]
        assert all(1 <= i <= 8 for i in r["image"] + r["reasoning_image"])
        assert r["reasoning_image"] == sorted(set(r["reasoning_image"]))
        assert (r["answer"] in "ABCD") == (r["meta"]["format"] == "mcq")
        assert (MCQ_INSTRUCTION in human) == (r["meta"]["format"] == "mcq")
    for r in data["rl"] + data["heldout"]:
        assert len(r["conversations"]) == 1 and r["conversations"][0]["from"] == "human"
        assert r["conversations"][0]["value"].count(IMAGE_PLACEHOLDER) == len(r["image"])
        assert all(1 <= i <= 8 for i in r["image"])
    for row in data["tw"]:
        assert row["question"].count(IMAGE_PLACEHOLDER) == len(row["question_images"]) == len(
            row["question_image_indices"]
        )
        assert row["answer"].count("<rimage>") == len(row["reasoning_images"]) == len(row["reasoning_image_indices"])
        assert re.search(r"<answer>.+</answer>$", row["answer"])
        assert all(1 <= i <= 8 for i in row["question_image_indices"] + row["reasoning_image_indices"])
        assert all(b[:8] == b"\x89PNG\r\n\x1a\n" for b in row["question_images"] + row["reasoning_images"])
        json.loads(row["meta_data"])


def test_observed_frames_precede_asked_events(world):
    _, data = world
    pool = data["manifest"]["pool"]
    for r in data["sft"] + data["rl"] + data["heldout"] + data["fb"]:
        row = data["events"][_clip_of(r)]
        ev = row["events"]
        image = r.get("image") or row["observed_images"]
        last_obs = pool[max(image) - 1]
        assert last_obs == row["observed_until"] == r["meta"]["observed_until"]
        chain = [ev[i] for i in r["meta"]["chain_event_indices"]]
        assert all(e["frame"] > last_obs for e in chain)
        assert all(ev[i]["frame"] > last_obs for i in r["meta"]["answer_event_indices"])
        if "reasoning_image" in r:
            shown = [pool[i - 1] for i in r["reasoning_image"]]
            assert min(shown) > last_obs
            # every imagined event is visible in a reasoning frame (the first pool frame at/after it)
            for e in chain:
                assert min(f for f in pool if f >= e["frame"]) in shown
    for row in data["tw"]:
        meta = json.loads(row["meta_data"])
        ev = data["events"][meta["clip_id"]]
        assert max(pool[i - 1] for i in row["question_image_indices"]) == ev["observed_until"]
        assert min(pool[i - 1] for i in row["reasoning_image_indices"]) > ev["observed_until"]


def test_train_test_clips_disjoint(world):
    _, data = world
    split = {cid: r["split"] for cid, r in data["events"].items()}
    train = {_clip_of(r) for r in data["sft"] + data["rl"]}
    test = {_clip_of(r) for r in data["fb"] + data["heldout"]}
    test |= {json.loads(r["meta_data"])["clip_id"] for r in data["tw"]}
    assert train and test and not (train & test)
    assert all(split[c] == "train" for c in train) and all(split[c] == "test" for c in test)
    for item in data["fb"]:
        assert item["video_path"] == data["events"][_clip_of(item)]["prefix_video"]
    for r in data["sft"] + data["rl"] + data["heldout"]:
        assert r["video"] == data["events"][_clip_of(r)]["video"]


def test_mcq_answers_are_true_events(world):
    _, data = world
    counts = data["manifest"]["counts"]["futurebench"]
    assert sum(counts.values()) == len(data["fb"]) and all(counts[t] > 0 for t in ("hop1", "hop2", "hop3", "hop5"))
    for item in data["fb"]:
        row = data["events"][_clip_of(item)]
        ev = row["events"]
        qa = item["qa"]
        assert set(qa["Options"]) == set("ABCD") and qa["Answer"] in qa["Options"]
        assert len(set(qa["Options"].values())) == 4
        truth = ", then ".join(ev[i]["text"] for i in item["meta"]["answer_event_indices"])
        assert qa["Options"][qa["Answer"]] == truth
        n_obs = sum(e["frame"] <= row["observed_until"] for e in ev)
        if item["question_type"] in ("hop1", "hop2", "hop3"):
            k = int(item["question_type"][3])
            assert item["meta"]["answer_event_indices"] == [n_obs + k - 1]
        else:  # interpolation: the stated later event follows the asked-about ones
            assert ev[item["meta"]["chain_event_indices"][-1]]["text"] in qa["Question"]
            assert item["meta"]["answer_event_indices"] == list(range(n_obs, item["meta"]["chain_event_indices"][-1]))
    assert len(data["heldout"]) == SMALL["heldout_mcq_size"] + WorldConfig(**SMALL).heldout_frame_size
    assert all(r["problem_type"] == "multiple choice" for r in data["heldout"])
    assert len({(_clip_of(r), r["meta"]["question_kind"]) for r in data["heldout"]}) > 1
    for r in data["rl"] + data["heldout"]:
        if r["meta"]["needs_frame"]:  # a place, not an event (tests/test_world_frame_kinds.py)
            continue
        ev = data["events"][_clip_of(r)]["events"]
        truth = ", then ".join(ev[i]["text"] for i in r["meta"]["answer_event_indices"])
        value = r["conversations"][0]["value"]
        if r["problem_type"] == "multiple choice":
            lines = dict(line.split(". ", 1) for line in value.split("\n")[1:])
            assert set(lines) == set("ABCD") and lines[r["answer"]] == truth
        else:
            assert r["problem_type"] == "free-form" and r["answer"] == truth
            assert r["answer"] in {e["text"] for e in ev}
    for r in data["sft"]:
        if r["meta"]["needs_frame"]:
            continue
        ev = data["events"][_clip_of(r)]["events"]
        truth = ", then ".join(ev[i]["text"] for i in r["meta"]["answer_event_indices"])
        if r["meta"]["format"] == "mcq":
            assert r["meta"]["options"][r["answer"]] == truth
        else:
            assert r["answer"] == truth


def test_rendered_pixels_match_simulation(world):
    import decord

    root, data = world
    checked = 0
    for row in data["events"].values():
        vr = decord.VideoReader(str(root / row["video"]), ctx=decord.cpu(0), num_threads=1)
        frames = vr.get_batch(list(range(row["num_frames"]))).asnumpy().astype(int)
        for o in row["objects"]:
            for k in range(0, row["num_frames"], 4):
                x, y = o["track"][k]
                pix = frames[k, int(y), int(x)]
                assert np.abs(pix - np.array(o["rgb"])).max() <= 30, (row["clip_id"], o["name"], k, pix)
                checked += 1
        if row["light_on_frame"] is not None:
            s = row["width"] / 96
            cx, cy = int(row["width"] / 2), int(10 * s)
            on, before = frames[row["light_on_frame"], cy, cx], frames[row["light_on_frame"] - 1, cy, cx]
            assert on.mean() > 180 and before.mean() < 120
    assert checked > 50


def test_kinds_and_vision_labels(world):
    _, data = world
    kinds = Counter((r["meta"]["question_kind"], r["meta"]["needs_vision"]) for r in data["sft"])
    assert any(v for _, v in kinds) and any(not v for _, v in kinds)
    for (kind, vision), _ in kinds.items():
        assert vision == (kind not in ("uniform_motion", "fall_land", "switch_light"))
    for r in data["sft"] + data["rl"]:
        if r["meta"]["question_kind"] == "where_at_time":  # one imagined moment, no event chain
            assert r["meta"]["hops"] == 1 and r["meta"]["chain_event_indices"] == []
        else:
            assert r["meta"]["hops"] == len(r["meta"]["chain_event_indices"]) >= 1


FRAME_KIND_WORDS = {"From", "Where", "middle", "scene"}


def test_vocabulary_corpus_covers_emitted_text(world):
    _, data = world
    corpus = vocabulary_corpus()
    assert corpus == vocabulary_corpus() and len(corpus) == len(set(corpus))
    for needle in ("<0.5 seconds>", "<1.0 seconds>", "<10.0 seconds>", "<reason>", "<answer>A</answer>", "THOUGHT 0: "):
        assert any(needle in s for s in corpus), needle
    words = set(re.findall(r"[A-Za-z]+|\d+", " ".join(corpus)))
    texts = [c["value"] for r in data["sft"] + data["rl"] for c in r["conversations"]]
    texts += [r["answer"] for r in data["sft"] + data["rl"]]
    texts += [i["qa"]["Question"] + " " + " ".join(i["qa"]["Options"].values()) for i in data["fb"]]
    texts += [r["question"] + " " + r["answer"] for r in data["tw"]]
    missing = set(re.findall(r"[A-Za-z]+|\d+", " ".join(texts))) - words
    # the frame-needing kinds came after the shipped tokenizer: their new words are spelled with sub-word pieces
    # (changing the corpus would change the tokenizer every shipped base was trained with)
    assert missing <= FRAME_KIND_WORDS, sorted(missing - FRAME_KIND_WORDS)


def test_config_validation():
    with pytest.raises(ValueError, match="multiples of 4"):
        WorldConfig(width=98)
    with pytest.raises(ValueError, match="futurebench_weights"):
        WorldConfig(futurebench_weights=(1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="min_events"):
        WorldConfig(min_events=4, max_events=3)


def test_default_sizes_give_measurable_intervals():
    """The default world's sizes (config arithmetic only, nothing rendered): enough held-out and FutureBench items
    for a 95 % half-width of at most 5 points, every hop split present."""
    cfg = WorldConfig()
    assert cfg.heldout_mcq_size >= 400 and cfg.heldout_frame_size >= 300
    splits = split_counts(cfg.futurebench_weights, cfg.futurebench_size)
    assert sum(splits) >= 400 and min(splits) > 0


def test_counts_follow_the_config(world):
    """Every count in the manifest is what the config says, on the small world."""
    _, data = world
    c, cfg = data["manifest"]["counts"], WorldConfig(**SMALL)
    assert c["train_clips"] == cfg.num_train_clips and c["test_clips"] == cfg.num_test_clips
    assert c["sft"] == cfg.num_train_clips * cfg.sft_per_clip == len(data["sft"])
    assert c["rl"] == cfg.rl_size == len(data["rl"]) and c["twiffbench"] == cfg.twiffbench_size == len(data["tw"])
    assert c["heldout_mcq"] == cfg.heldout_mcq_size + cfg.heldout_frame_size == len(data["heldout"])
    assert c["heldout_needs_frame"] == cfg.heldout_frame_size
    assert 0 <= c["heldout_frame_changed"] <= cfg.heldout_frame_size  # the changed share: test_world_frame_kinds
    assert c["futurebench"] == dict(zip(("hop1", "hop2", "hop3", "hop5"),
                                        split_counts(cfg.futurebench_weights, cfg.futurebench_size)))
    assert sum(c["heldout_mcq_kinds"].values()) == c["heldout_mcq"]
    assert max(c["futurebench_answers"].values()) - min(c["futurebench_answers"].values()) <= 2


@pytest.fixture(scope="module")
def rl_clips(tmp_path_factory):
    from fl1_core.data.world.generate import build_clips

    cfg = WorldConfig(**(SMALL | {"rl_size": 40, "num_train_clips": 20}))
    root = tmp_path_factory.mktemp("rl_clips")
    return build_clips(root, 0, cfg)[0], cfg, root


def test_rl_event_kinds_free_form_keeps_every_draw_and_only_drops_the_event_kinds_options(rl_clips):
    """rl_event_kinds_free_form writes the event kinds' MCQ draws free-form (answer = the event text) and leaves every
    other record, and the picks, as they were; without candidates the question is bare."""
    import dataclasses

    from fl1_core.data.world.generate import make_rl

    clips, cfg, _ = rl_clips
    mixed = make_rl(clips, 0, dataclasses.replace(cfg, rl_event_kinds_free_form=False))
    free = make_rl(clips, 0, cfg)
    assert [r["id"] for r in free] == [r["id"] for r in mixed]
    converted = 0
    for a, b in zip(mixed, free):
        assert (a["meta"]["clip_id"], a["meta"]["question_kind"]) == (b["meta"]["clip_id"], b["meta"]["question_kind"])
        if a["meta"]["format"] == "mcq" and not a["meta"]["needs_frame"]:
            converted += 1
            assert b["problem_type"] == "free-form" and "options" not in b["meta"] and "candidates" not in b["meta"]
            assert b["answer"] == a["meta"]["answer_text"] and "\nA. " not in b["conversations"][0]["value"]
            assert b["meta"]["reference_thoughts"][-1] == f"So, {a['meta']['answer_text']}."
        else:
            assert b == a
    assert converted > 0 and not any(r["problem_type"] == "multiple choice" and not r["meta"]["needs_frame"]
                                     for r in free)
    assert any(r["problem_type"] == "multiple choice" for r in free)  # the frame-needing kinds keep their MCQs


def test_free_form_event_records_list_their_mcq_draws_options_as_candidates_without_letters(rl_clips):
    """With rl_event_kinds_candidates a converted record shows the options of its MCQ draw, in their order and
    without letters, and stays free-form with the event as its answer; every other record is unchanged."""
    import dataclasses

    from fl1_core.data.formats import load_rl_records
    from fl1_core.data.world.generate import make_rl

    clips, cfg, root = rl_clips
    mixed = make_rl(clips, 0, dataclasses.replace(cfg, rl_event_kinds_free_form=False))
    bare = make_rl(clips, 0, cfg)
    listed = make_rl(clips, 0, dataclasses.replace(cfg, rl_event_kinds_candidates=True))
    shown = 0
    for a, b, c in zip(mixed, bare, listed):
        if a["meta"]["format"] == "mcq" and not a["meta"]["needs_frame"]:
            shown += 1
            options = list(a["meta"]["options"].values())
            assert c["meta"]["candidates"] == options and c["answer"] == a["meta"]["answer_text"] in options
            lines = c["conversations"][0]["value"].split("\n")
            assert lines[0] == b["conversations"][0]["value"]
            assert lines[1:] == ["Candidates:", *(f"- {o}" for o in options)]
            assert c["problem_type"] == "free-form" and "options" not in c["meta"]
            assert {k: v for k, v in c["meta"].items() if k != "candidates"} == b["meta"]
        else:
            assert c == b
    assert shown > 0
    path = root / "rl_listed.jsonl"  # beside the clips' videos
    path.write_text("".join(json.dumps(r) + "\n" for r in listed))
    loaded = load_rl_records(path).records
    assert len(loaded) == len(listed) and sum("Candidates:" in r.prompt_text for r in loaded) == shown
