"""World pretraining: perception targets, curricula, recipe, the resumable loop (past a damaged checkpoint or a full
disk) and the base's held-out measures."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from fl1_core.checkpoints import DamagedCheckpointWarning, DiskFullError, ResumeMismatchError, checkpoint_dirs
from fl1_core.data.world import WorldConfig
from fl1_core.data.world.physics import Body, Scene, simulate
from fl1_core.intervals import wilson_interval
from fl1_core.pretrain import PretrainRecipe, TaskSampler, cell_targets, pretrain_world_base
from fl1_core.pretrain.perception import CellHead, VisionTap, cell_channels
from fl1_core.pretrain.tasks import LATENT_TASKS, TASKS, ClipStream, change_text, scene_text
from fl1_core.runs import read_jsonl

COLORS = list(WorldConfig().colors)
TINY = dict(hidden_size=32, intermediate_size=64, num_attention_heads=4, num_key_value_heads=2, vision_hidden_size=32,
            vision_depth=1, batch_size=2, warmup_steps=2, save_every=2, eval_every=0, log_every=1)


pytestmark = pytest.mark.usefixtures("one_thread")


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
    from fl1_core.data.collator import PromptExample
    from fl1_core.data.prompt_inputs import build_prompt_inputs

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
        if x.cells is not None:  # the latent tasks' frames are targets: no cell targets
            assert x.cells.shape[0] == 9 * len(x.example.question_images)
        else:  # no question images (look-up, video) or frames that are latent targets
            assert task in LATENT_TASKS or not x.example.question_images
        if task in LATENT_TASKS:  # frames at latent slots, one span each, one more thought than spans (or the reading)
            assert x.example.future_frames and len(x.example.thoughts) in (len(x.example.future_frames),
                                                                           len(x.example.future_frames) + 1)
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


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory):
    """An uninterrupted 4-step pretraining run with a checkpoint after every step (the newest two kept)."""
    recipe = PretrainRecipe(steps=4, **{**TINY, "save_every": 1})
    out = tmp_path_factory.mktemp("straight")
    return recipe, pretrain_world_base(recipe, out, progress=False)


def _assert_same_as(straight, resumed):
    la, lb = read_jsonl(straight.parent / "log.jsonl"), read_jsonl(resumed.parent / "log.jsonl")
    assert [r["loss"] for r in la] == [r["loss"] for r in lb] and len(la) == 4
    wa, wb = load_file(straight / "model.safetensors"), load_file(resumed / "model.safetensors")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_a_damaged_newest_checkpoint_is_set_aside_and_pretraining_resumes_from_the_older_one(straight_run, tmp_path):
    recipe, straight = straight_run
    assert [p.name for p in checkpoint_dirs(straight.parent)] == ["step-00000003", "step-00000004"]
    pretrain_world_base(recipe, tmp_path, max_steps=2, progress=False)  # stopped after two checkpoints
    weights = tmp_path / "checkpoints" / "step-00000002" / "model.pt"
    weights.write_bytes(weights.read_bytes()[:-1000])
    with pytest.warns(DamagedCheckpointWarning, match=r"step-00000002/model\.pt: \d+ bytes"):
        resumed = pretrain_world_base(recipe, tmp_path, progress=False)
    assert (tmp_path / "checkpoints" / "step-00000002.damaged").is_dir()
    _assert_same_as(straight, resumed)
    config = json.loads((straight / "config.json").read_text())
    assert set(config["world_base"]) == {"world_generator", "tokenizer_sha256"}
    with pytest.raises(ResumeMismatchError, match="config.learning_rate"):
        pretrain_world_base(recipe.replace(learning_rate=0.5), tmp_path, progress=False)


def test_a_full_disk_while_pretraining_says_so_and_leaves_no_half_checkpoint(straight_run, tmp_path, disk_full_at):
    recipe, straight = straight_run
    restore = disk_full_at(".step-00000002.tmp-")
    with pytest.raises(DiskFullError) as info:
        pretrain_world_base(recipe, tmp_path, progress=False)
    msg = str(info.value)
    root = tmp_path / "checkpoints"
    assert "the disk is full" in msg and str(root) in msg and f"{root / 'step-00000001'} (step 1)" in msg
    assert "re-run the same command" in msg and " bytes)" in msg
    assert sorted(p.name for p in root.iterdir()) == ["step-00000001"]
    restore()
    _assert_same_as(straight, pretrain_world_base(recipe, tmp_path, progress=False))


# ---------------------------------------------------------------------------------------------- the shipped base
@pytest.fixture(scope="module")
def shipped_card():
    from fl1_core.world_base import verify_world_base

    return verify_world_base()


def test_shipped_base_matches_its_card_and_decodes(shipped_card):
    from fl1_core.data.collator import PromptExample
    from fl1_core.data.prompt_inputs import build_prompt_inputs
    from fl1_core.decoding import generate_with_latents
    from fl1_core.model import load_future_l1
    from fl1_core.world_base import WORLD_BASE_DIR, current_tokenizer_fingerprint

    total = sum((WORLD_BASE_DIR / name).stat().st_size for name in shipped_card["sha256"])
    assert total <= 50 * 2**20
    model, processor = load_future_l1(WORLD_BASE_DIR)
    assert shipped_card["tokenizer_sha256"] == current_tokenizer_fingerprint()
    stream = ClipStream(21)
    clip = stream.clip(0)
    inputs = build_prompt_inputs(processor, [PromptExample("x", "What will happen next after the video ends?",
                                                           [stream.frame(clip, f) for f in clip.pool[:3]])])
    cfg = model.latent_config.replace(force_initial_latent=True, budget_mode="fixed")
    out = generate_with_latents(model, inputs, max_new_tokens=16, latent_config=cfg, tokenizer=processor.tokenizer)
    assert out.span_counts[0] and out.span_counts[0][0] == cfg.max_latent_token
    assert out.latents[0].shape[1] == model.config.get_text_config().hidden_size


def test_the_shipped_card_text_is_written_from_its_recipe(shipped_card):
    from fl1_core.pretrain.shipped import model_card_markdown
    from fl1_core.world_base import CARD_MD, WORLD_BASE_DIR

    text = (WORLD_BASE_DIR / CARD_MD).read_text()
    assert text == model_card_markdown(shipped_card)
    phases = shipped_card["recipe"].get("phases", [shipped_card["recipe"]])
    sampled = any(p.get("scheduled_sampling_p", 0) > 0 for p in phases)
    assert ("per span, by scheduled sampling" in text) == sampled
    assert ("no scheduled sampling" in text) == (not sampled)
    changed = dict(shipped_card, recipe=dict(phases[-1], scheduled_sampling_p=0.5, scheduled_sampling_loss="ce"))
    assert "up to 0.5 per span, by scheduled sampling (the text after the model's own predictions)" in \
        model_card_markdown(changed)
    imagining = dict(shipped_card, recipe=dict(phases[-1], scheduled_sampling_p=1.0, scheduled_sampling_loss="alignment"))
    assert "(the alignment of each slot after the model's own earlier predictions)" in model_card_markdown(imagining)
    assert ("## Imagination: alignment MSE per slot row" in text) == ("imagination_mse" in shipped_card["metrics"])


def test_cpu_vector_flags_read_the_first_flags_line(tmp_path):
    from fl1_core.pretrain.shipped import cpu_vector_flags

    info = tmp_path / "cpuinfo"
    info.write_text("processor : 0\nflags : fpu sse2 avx2 fma amx_tile avx512f ht\nprocessor : 1\nflags : avx\n")
    assert cpu_vector_flags(info) == ["amx_tile", "avx2", "avx512f", "fma"]
    assert cpu_vector_flags(tmp_path / "missing") == []


def test_first_steps_of_the_recipe_reproduce_the_card(shipped_card, tmp_path):
    from fl1_core.pretrain.chain import read_training_log, recipe_from_dict

    recipe = recipe_from_dict(shipped_card["recipe"])
    n = len(shipped_card["first_losses"])
    before = torch.get_num_threads()
    torch.set_num_threads(int(shipped_card["threads"]))
    try:
        pretrain_world_base(recipe, tmp_path / "again", max_steps=n, progress=False)
    finally:
        torch.set_num_threads(before)
    losses = [r["loss"] for r in read_training_log(tmp_path / "again")]
    from fl1_core.pretrain.shipped import cpu_vector_flags

    here = (torch.backends.cpu.get_cpu_capability(), cpu_vector_flags())
    there = (shipped_card.get("cpu_capability"), shipped_card.get("cpu_vector_flags"))
    if here == there:
        assert losses == shipped_card["first_losses"]  # same SIMD kernels: bit-exact
    else:
        # another CPU (AVX2 against AVX512, or AMX kernels where the card's CPU had none; a card without its
        # vector flags cannot say) sums floats in another order: the losses agree to float32 rounding only
        assert losses == pytest.approx(shipped_card["first_losses"], rel=1e-5, abs=0), (here, there)


def test_a_corrupted_shipped_base_says_how_to_recreate_it(shipped_card, tmp_path):
    import shutil

    from fl1_core.world_base import WORLD_BASE_DIR, WorldBaseError, world_base_path

    copy = tmp_path / "base"
    shutil.copytree(WORLD_BASE_DIR, copy)
    data = bytearray((copy / "model.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (copy / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(WorldBaseError, match="model.safetensors.*fl1 pretrain"):
        world_base_path(copy)
    (copy / "card.json").unlink()
    with pytest.raises(WorldBaseError, match="missing card.json"):
        world_base_path(copy)


def test_a_base_of_another_tokenizer_or_world_version_is_refused(shipped_card, tmp_path, small_world):
    import shutil

    from fl1_core.model import load_future_l1
    from fl1_core.world_base import WORLD_BASE_DIR, IncompatibleBaseError, check_base_compatible

    model, processor = load_future_l1(WORLD_BASE_DIR)
    world = tmp_path / "world"
    world.mkdir()
    (world / "world.json").write_text(json.dumps({"generator": "fl1-world-0.9"}))
    with pytest.raises(IncompatibleBaseError, match="world version"):
        check_base_compatible(model, processor, world)
    model.config.world_base = {**model.config.world_base, "tokenizer_sha256": "0" * 64}
    with pytest.raises(IncompatibleBaseError, match="tokenizer"):
        check_base_compatible(model, processor, None)
    # the SFT entry point refuses it too, before any training
    other = tmp_path / "other"
    shutil.copytree(WORLD_BASE_DIR, other)
    config = json.loads((other / "config.json").read_text())
    config["world_base"]["world_generator"] = "fl1-world-0.9"
    (other / "config.json").write_text(json.dumps(config))
    from fl1_core.sft import SFTConfig, run_sft

    with pytest.raises(IncompatibleBaseError, match="world version"):
        run_sft(other, small_world / "sft.json", tmp_path / "sft", SFTConfig.cpu_world(max_steps=1), mode="text")


def test_a_second_phase_starts_from_the_given_checkpoint(shipped_card):
    from safetensors.torch import load_file

    from fl1_core.world_base import WORLD_BASE_DIR
    from fl1_core.pretrain.train import build_base

    last_phase = shipped_card["recipe"].get("phases", [shipped_card["recipe"]])[-1]
    settings = {k: v for k, v in last_phase.items() if k != "name"}
    recipe = PretrainRecipe.from_dict({**settings, "init_from": str(WORLD_BASE_DIR), "steps": 10})
    model, _, _ = build_base(recipe)
    shipped = load_file(WORLD_BASE_DIR / "model.safetensors")
    state = model.base.state_dict()
    assert set(shipped) <= set(state) and all(torch.equal(state[k], v) for k, v in shipped.items())
    with pytest.raises(ValueError, match="hidden size"):
        build_base(recipe.replace(hidden_size=64, intermediate_size=192))


def test_concluded_text_reads_the_conclusion_not_the_letter():
    from fl1_core.pretrain.evaluate import concluded_text

    text = "<reason>Next, the red ball hits the wall.</reason>\n<reason>So, the red ball bounces off the left wall, " \
           "which is option D.</reason>\n<answer>D</answer>"
    assert concluded_text(text) == "the red ball bounces off the left wall"
    assert concluded_text("<answer>B</answer>") is None


def test_movers_read_share_reads_the_forced_prefix_and_skips_frame_kinds():
    from fl1_core.evaluation.heldout import CHAIN_PREFIX
    from fl1_core.pretrain.evaluate import movers_read_share

    world = "At the end of the video, the red ball is rolling left along the floor and the blue box is resting on the floor."
    heldout = [{"id": "a", "meta": {"reference_thoughts": [world]}},
               {"id": "b", "meta": {"reference_thoughts": [world]}},
               {"id": "c", "meta": {"reference_thoughts": [world]}},
               {"id": "d", "meta": {}}]
    cut = len(CHAIN_PREFIX)
    right = (CHAIN_PREFIX + " the red ball is rolling right along the floor and the blue box is resting on the floor."
             " Next, ...")[cut:]  # the direction is not asked: the same body moves
    wrong = (CHAIN_PREFIX + " the red ball is rolling left along the floor and the blue box is sliding left along the"
             " floor. Next, ...")[cut:]
    rows = [{"id": "a", "kind": "interpolation", "text": right}, {"id": "b", "kind": "next_event", "text": wrong},
            {"id": "c", "kind": "where_at_event", "text": wrong}, {"id": "d", "kind": "next_event", "text": right}]
    got = movers_read_share(rows, heldout, CHAIN_PREFIX)
    assert (got["n"], got["accuracy"]) == (2, 0.5)
    unread = movers_read_share(rows, heldout)  # without the prefix no text has a reading of the frame: none is right
    assert (unread["n"], unread["accuracy"]) == (2, 0.0)
