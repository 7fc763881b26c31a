"""Host-RAM caps of RL prompts: the question-frame pixel cap, the exact prompt length without decoding frames, the
length filter that names its rejects, and the byte-bounded prompt cache."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from fl1_core.data.collator import PromptExample, render_prompt
from fl1_core.data.prompt_inputs import build_prompt_inputs
from fl1_core.data.prompt_caps import (
    QUESTION_MAX_PIXELS,
    filter_rl_prompts,
    image_tokens,
    prompt_length,
    rl_prompt_length,
)
from fl1_core.data.examples import rl_prompt
from fl1_core.data.prompt_inputs import encode_prompt
from fl1_core.rl.config import RLConfig
from fl1_core.rl.prompt_cache import PromptCache
from fl1_core.rl.trainer import RLTrainer

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from fl1_core.data.formats import load_rl_records
    from fl1_core.data.world import WorldConfig, generate_world

    out = tmp_path_factory.mktemp("world")
    generate_world(out, seed=0, config=WorldConfig.small(rl_size=12))
    return load_rl_records(out / "rl.jsonl").records


def _frames(sizes):
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)) for h, w in sizes]


@pytest.mark.parametrize("cap", [None, 6 * 32 * 32])
def test_question_cap_bounds_pixels_and_the_length_is_exact(tiny, cap):
    _, processor = tiny
    sizes = [(720, 1280), (200, 120)]
    ex = PromptExample("q", "What happens next?", _frames(sizes))
    inputs = build_prompt_inputs(processor, [ex], "interleaved", question_max_pixels=cap)
    merge = processor.image_processor.merge_size ** 2
    tokens = (inputs["image_grid_thw"].prod(-1) // merge).tolist()
    assert tokens == [image_tokens(processor, h, w, cap) for h, w in sizes]
    own_cap = processor.image_processor.size["longest_edge"] // 32 // 32
    assert max(tokens) <= (own_cap if cap is None else cap // 32 // 32)
    assert inputs["pixel_values"].shape[0] == merge * sum(tokens)  # fp32 rows: 4 patches per merged token
    from fl1_core import tokens as T

    text = render_prompt(processor, T.system_prompt("interleaved"), 2, False, ex.question)
    assert prompt_length(processor, text, sizes, cap) == inputs["input_ids"].shape[1]


def test_capped_frames_cost_fewer_tokens_and_bytes(tiny):
    _, processor = tiny
    ex = PromptExample("q", "What happens next?", _frames([(720, 1280)]))
    full = build_prompt_inputs(processor, [ex], question_max_pixels=None)
    capped = build_prompt_inputs(processor, [ex], question_max_pixels=4 * 32 * 32)
    assert capped["input_ids"].shape[1] < full["input_ids"].shape[1]
    assert capped["pixel_values"].numel() < full["pixel_values"].numel()


def test_rl_prompt_length_from_the_video_header_equals_the_processed_prompt(tiny, world):
    _, processor = tiny
    for rec in world[:6]:
        for cap in (None, 4 * 32 * 32):
            real = encode_prompt(processor, rl_prompt(rec), "interleaved", cap).input_ids.shape[0]
            assert rl_prompt_length(processor, rec, "interleaved", cap) == real


def test_length_filter_rejects_over_long_prompts_by_id(tiny, world):
    _, processor = tiny
    lengths = {r.id: rl_prompt_length(processor, r, "interleaved", QUESTION_MAX_PIXELS) for r in world}
    limit = sorted(lengths.values())[len(lengths) // 2]
    kept, rejects = filter_rl_prompts(world, processor, system_prompt="interleaved", max_pixels=QUESTION_MAX_PIXELS,
                                      max_tokens=limit)
    assert rejects, "the median cut must reject some world prompts"
    assert {r.record_id for r in rejects} == {i for i, n in lengths.items() if n > limit}
    assert [r.id for r in kept] == [r.id for r in world if lengths[r.id] <= limit]  # order kept
    assert all(f"max_prompt_tokens={limit}" in r.reason and r.field == "image" for r in rejects)
    everything, none = filter_rl_prompts(world, processor, system_prompt="interleaved", max_pixels=None,
                                         max_tokens=None)
    assert len(everything) == len(world) and none == []


def test_trainer_leaves_out_long_prompts_and_writes_their_ids(tiny, world, tmp_path):
    model, processor = tiny
    lengths = sorted(rl_prompt_length(processor, r, "interleaved", QUESTION_MAX_PIXELS) for r in world)
    limit = lengths[len(lengths) // 2]
    cfg = RLConfig(group_size=2, prompts_per_step=1, max_new_tokens=2, max_steps=0, progress_bar=False,
                   max_prompt_tokens=limit, kl_beta=0.0)
    import copy

    trainer = RLTrainer(copy.deepcopy(model), processor, world, cfg, tmp_path)
    rejected = {r.record_id for r in trainer.prompt_rejects}
    assert rejected and not rejected & {r.id for r in trainer.records}
    assert all(len(trainer._prompt(r).input_ids) <= limit for r in trainer.records)
    trainer.train()  # zero steps: writes the manifest, the rejects and final/
    rows = [json.loads(line) for line in (tmp_path / "prompt_rejects.jsonl").read_text().splitlines()]
    assert {r["record_id"] for r in rows} == rejected
    with pytest.raises(ValueError, match="max_prompt_tokens"):
        RLTrainer(copy.deepcopy(model), processor, world, cfg.replace(max_prompt_tokens=1), tmp_path / "none")


def test_prompt_cache_is_bounded_in_bytes_and_evicts_the_least_recently_used(tiny, world):
    _, processor = tiny
    prompts = {r.id: encode_prompt(processor, rl_prompt(r), record=r) for r in world[:4]}
    sizes = {k: p.nbytes for k, p in prompts.items()}
    assert all(s > prompts[k].vision["pixel_values"].numel() * 4 for k, s in sizes.items())  # pixels + ids counted
    ids = list(prompts)
    budget = sizes[ids[0]] + sizes[ids[1]] + min(sizes.values()) // 2  # room for two prompts, not three
    cache = PromptCache(budget)
    built = []

    def get(k):
        return cache.get(k, lambda: built.append(k) or prompts[k])

    get(ids[0]), get(ids[1]), get(ids[0])  # ids[0] is now the most recently used
    assert built == ids[:2] and cache.hits == 1 and cache.bytes == sizes[ids[0]] + sizes[ids[1]]
    get(ids[2])  # evicts ids[1], the least recently used
    assert ids[1] not in cache and ids[0] in cache and ids[2] in cache and cache.bytes <= budget
    for k in ids * 2:
        get(k)
        assert cache.bytes <= budget and cache.bytes == sum(sizes[j] for j in ids if j in cache)
    assert cache.evictions >= 4
    tiny_cache = PromptCache(min(sizes.values()) - 1)  # smaller than any prompt: returned, never kept
    assert tiny_cache.get(ids[0], lambda: prompts[ids[0]]) is prompts[ids[0]] and len(tiny_cache) == 0


def test_rl_config_caps_have_the_documented_defaults():
    cfg = RLConfig()
    assert cfg.question_max_pixels == 128 * 32 * 32 and cfg.max_prompt_tokens == 1024
    assert "prompt_cache_bytes" not in cfg.result_dict() and "max_prompt_tokens" in cfg.result_dict()


def test_curation_probes_feed_capped_question_frames(tiny):
    from fl1_core.curation import CurationConfig
    from fl1_core.curation.probes import _rollout_pass

    model, processor = tiny
    cfg = CurationConfig(mode="rollouts", batch_size=1, n_rollouts=2, max_new_tokens=2, question_max_pixels=4 * 32 * 32)
    assert cfg.scoring_settings()["question_max_pixels"] == 4 * 32 * 32  # part of the scores fingerprint
    prompts = [PromptExample(str(i), "What happens next?", _frames([(720, 1280)])) for i in range(2)]
    seen = []
    handle = model.base.model.register_forward_pre_hook(
        lambda _m, _a, kw: seen.append(kw.get("pixel_values")), with_kwargs=True)
    try:
        _rollout_pass(model, processor, prompts, ["A", "A"], [True, True], cfg, seed=0)
    finally:
        handle.remove()
    pixels = seen[0]
    merge = processor.image_processor.merge_size ** 2
    per_image = merge * image_tokens(processor, 720, 1280, cfg.question_max_pixels)
    assert per_image <= merge * 4 and pixels.shape[0] == 2 * per_image  # one prefill per prompt, shared by its samples
