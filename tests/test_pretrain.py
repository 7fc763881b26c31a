"""World pretraining: perception targets, curricula, recipe, the resumable loop and the base's held-out measures."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from fl1_core.data.world import WorldConfig
from fl1_core.data.world.physics import Body, Scene, simulate
from fl1_core.pretrain import PretrainRecipe, TaskSampler, cell_targets, pretrain_world_base, wilson_interval
from fl1_core.pretrain.perception import CellHead, VisionTap, cell_channels
from fl1_core.pretrain.tasks import TASKS, ClipStream, change_text, scene_text
from fl1_core.runs import read_jsonl

COLORS = list(WorldConfig().colors)
TINY = dict(hidden_size=32, intermediate_size=64, num_attention_heads=4, num_key_value_heads=2, vision_hidden_size=32,
            vision_depth=1, batch_size=2, warmup_steps=2, save_every=2, eval_every=0, log_every=1)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _resting_ball(x: float, color: str = "red") -> Body:
    return Body(name=f"{color} ball", shape="ball", color=color, rgb=WorldConfig().colors[color], r=9.0, x=x, y=81.0,
                vx=0.0)


def _scene(*bodies: Body) -> Scene:
    return Scene(width=96, height=96, wall=5.0, floor_y=90.0, ledge=None, switch_side=None, switch_height=8.0,
                 lamp=(48.0, 12.0, 5.0), gravity=1.0, friction=0.05, bodies=list(bodies))


def test_cell_targets_put_each_object_in_its_cell():
    sim = simulate(_scene(_resting_ball(16.0, "red"), _resting_ball(80.0, "blue")), num_frames=8)
    t = cell_targets(sim, 0, COLORS)
    assert t.shape == (9, len(cell_channels()))
    red, blue, ball = COLORS.index("red"), COLORS.index("blue"), len(COLORS)
    # bottom row = cells 6, 7, 8; the red ball sits in cell 6, the blue one in cell 8
    assert t[6, red] > 0.5 and t[8, blue] > 0.5
    assert t[6, blue] == 0 and t[8, red] == 0
    assert t[:6].max() == 0 and t[7, :len(COLORS)].max() == 0
    assert t[6, ball] == pytest.approx(t[6, red])


def test_cell_head_trains_the_vision_tower_through_the_tap(tiny):
    model, processor = tiny
    from fl1_core.data.collator import PromptExample, build_prompt_inputs

    stream = ClipStream(3)
    clip = stream.clip(0)
    inputs = build_prompt_inputs(processor, [PromptExample("x", "Describe.", [stream.frame(clip, 0)])], "none")
    tap = VisionTap(model.base.model.visual)
    try:
        model(**inputs)
        tokens = tap.pop()
    finally:
        tap.remove()
    assert tokens.shape[0] == 9
    head = CellHead(tokens.shape[1], len(cell_channels()))
    loss = torch.nn.functional.binary_cross_entropy_with_logits(head(tokens), torch.from_numpy(
        cell_targets(clip.sim, 0, stream.colors)))
    loss.backward()
    grad = model.base.model.visual.patch_embed.proj.weight.grad
    assert grad is not None and grad.abs().sum() > 0
    model.zero_grad(set_to_none=True)


def test_tasks_are_deterministic_and_fresh():
    a, b = TaskSampler(5), TaskSampler(5)
    for task in TASKS:
        x, y = a.item(task, 7), b.item(task, 7)
        assert (x.example.question, x.example.thoughts, x.example.answer) == (y.example.question, y.example.thoughts,
                                                                              y.example.answer)
        if x.example.question_images:
            assert np.array_equal(np.asarray(x.example.question_images[0]), np.asarray(y.example.question_images[0]))
            assert x.cells.shape[0] == 9 * len(x.example.question_images)
    texts = {TaskSampler(5).item("scene", i).example.answer for i in range(12)}
    assert len(texts) > 6  # fresh clips every index


def test_scene_and_change_texts_follow_the_simulation():
    clip = ClipStream(11).clip(2)
    sim = clip.sim
    text = scene_text(clip, 0)
    order = np.argsort(sim.states[0, :, 0], kind="stable")
    names = [sim.scene.bodies[i].name for i in order]
    positions = [text.index(n) for n in names]
    assert positions == sorted(positions)
    first = sim.events[0]
    assert first.text in change_text(clip, first.frame - 1, first.frame).lower()
    assert change_text(clip, 0, 0) == "Nothing happened."


def test_recipe_schedule_and_task_draw():
    r = PretrainRecipe(steps=100, warmup_steps=10, learning_rate=1.0, min_lr_ratio=0.1)
    assert r.lr_at(0) == pytest.approx(0.1) and r.lr_at(9) == pytest.approx(1.0)
    assert r.lr_at(10) == pytest.approx(1.0) and r.lr_at(100) == pytest.approx(0.1)
    draws = [r.task_of_step(s) for s in range(2000)]
    assert draws[:50] == [r.task_of_step(s) for s in range(50)]
    share = draws.count("qa") / len(draws)
    assert abs(share - r.tasks["qa"] / sum(r.tasks.values())) < 0.04
    with pytest.raises(ValueError, match="unknown task"):
        PretrainRecipe(tasks={"dance": 1.0})


def test_wilson_interval():
    lo, hi = wilson_interval(50, 100)
    assert lo == pytest.approx(0.4038, abs=1e-3) and hi == pytest.approx(0.5962, abs=1e-3)
    assert wilson_interval(0, 10)[0] == 0.0


def test_pretraining_resumes_bit_identically(tmp_path):
    recipe = PretrainRecipe(steps=4, **TINY)
    straight = pretrain_world_base(recipe, tmp_path / "a", progress=False)
    pretrain_world_base(recipe, tmp_path / "b", max_steps=2, progress=False)
    resumed = pretrain_world_base(recipe, tmp_path / "b", progress=False)
    la, lb = read_jsonl(tmp_path / "a" / "log.jsonl"), read_jsonl(tmp_path / "b" / "log.jsonl")
    assert [r["loss"] for r in la] == [r["loss"] for r in lb] and len(la) == 4
    from safetensors.torch import load_file

    wa, wb = load_file(straight / "model.safetensors"), load_file(resumed / "model.safetensors")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    config = json.loads((straight / "config.json").read_text())
    assert set(config["world_base"]) == {"world_generator", "tokenizer_sha256"}
    with pytest.raises(ValueError, match="another recipe"):
        pretrain_world_base(recipe.replace(learning_rate=0.5), tmp_path / "b", progress=False)
