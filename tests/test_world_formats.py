"""The world's output validates with the real-format loaders, and the CLI writes it."""

from __future__ import annotations

import json

import pytest

from fl1_core.cli import main
from fl1_core.data import formats
from fl1_core.data.examples import futurebench_prompt, rl_prompt, sft_example, twiffbench_prompt
from fl1_core.data.world import WorldConfig, generate_world


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    out = tmp_path_factory.mktemp("world")
    generate_world(out, seed=3, config=WorldConfig.small())
    return out


def test_every_world_file_validates_with_the_loaders(world):
    sft = formats.load_sft_records(world / "sft.json", on_error="skip")
    rl = formats.load_rl_records(world / "rl.jsonl", on_error="skip")
    fb = formats.load_futurebench(world / "futurebench.jsonl", on_error="skip")
    tw = formats.load_twiffbench(world / "twiffbench", on_error="skip")
    manifest = json.loads((world / "world.json").read_text())
    counts = manifest["counts"]
    assert (len(sft.records), len(rl.records), len(tw.records)) == (counts["sft"], counts["rl"], counts["twiffbench"])
    assert len(fb.records) == sum(counts["futurebench"].values())
    assert not (sft.rejects or rl.rejects or fb.rejects or tw.rejects)


def test_world_records_become_model_examples(world):
    sft = formats.load_sft_records(world / "sft.json").records
    ex = sft_example(sft[0])
    assert len(ex.question_images) == len(sft[0].image) and len(ex.future_frames) == len(sft[0].reasoning_image)
    assert ex.question_images[0].size == (96, 96)
    item = formats.load_futurebench(world / "futurebench.jsonl").records[0]
    prompt = futurebench_prompt(item)
    assert prompt.question_video.fps == 8.0 and len(prompt.question_video.frames) % 2 == 0
    assert rl_prompt(formats.load_rl_records(world / "rl.jsonl").records[0]).question_images
    assert twiffbench_prompt(formats.load_twiffbench(world / "twiffbench").records[0]).question_images


def test_cli_world_is_deterministic(tmp_path):
    assert main(["world", "--out", str(tmp_path / "a"), "--seed", "5", "--small"]) == 0
    assert main(["world", "--out", str(tmp_path / "b"), "--seed", "5", "--small"]) == 0
    a, b = (json.loads((tmp_path / d / "world.json").read_text()) for d in "ab")
    assert a["files"] == b["files"] and a["counts"]["sft"] > 0
    assert any(name.endswith(".mp4") for name in a["files"])
