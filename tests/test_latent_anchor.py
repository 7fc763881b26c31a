"""The latent anchor: slots line up with the cells of the last question image, an anchored model that predicts no
change imagines the present (in the loss, in scheduled sampling and in decoding), and bad inputs are refused."""

from __future__ import annotations

import pytest
import torch

from fl1_core.config import LatentConfig
from fl1_core.latent_anchor import question_anchors, slot_anchors, step_anchors


def test_slots_take_the_cell_of_their_index_in_the_span():
    mask = torch.tensor([[0, 1, 1, 1, 0, 1, 1, 1, 0], [0, 0, 1, 1, 1, 0, 0, 0, 0]], dtype=torch.bool)
    anchors = torch.arange(2 * 3, dtype=torch.float).view(2, 3, 1)  # row r, cell k → 3r + k
    got = slot_anchors(mask, anchors)[:, 0].tolist()
    assert got == [0, 1, 2, 0, 1, 2, 3, 4, 5]  # row 0: two spans; row 1: one span
    mask[0, 7] = False  # every span must be a whole frame of the anchor's grid
    with pytest.raises(ValueError, match="one grid"):
        slot_anchors(mask, anchors)  # a span of 2 against 3 cells
    assert step_anchors(anchors, torch.tensor([5, -1]))[:, 0].tolist() == [2, 3]  # clamped to the K cells


def test_the_config_names_the_two_anchors():
    assert LatentConfig().latent_anchor == "none"
    with pytest.raises(ValueError, match="latent_anchor"):
        LatentConfig(latent_anchor="first_image")


@pytest.fixture(scope="module")
def anchored_still(saved_tiny):
    """The tiny model, anchored, with a projection head that predicts no change (zero output layer)."""
    from fl1_core.model import load_future_l1

    model, processor = load_future_l1(saved_tiny)
    model.latent_config = model.latent_config.replace(latent_anchor="last_image", force_initial_latent=True,
                                                      budget_mode="fixed", max_latent_token=9)
    if model.latent_head is None:
        model.add_projection_head(32)
    for p in model.latent_head.proj_out.parameters():
        p.data.zero_()
    return model, processor


def _prompt_inputs(processor, small_world, n=2):
    from fl1_core.audit.decode import load_audit_items
    from fl1_core.data.examples import rl_prompt
    from fl1_core.data.prompt_inputs import build_prompt_inputs

    items = load_audit_items(small_world / "heldout_mcq.jsonl", n)
    return items, build_prompt_inputs(processor, [rl_prompt(it.record) for it in items])


def test_anchors_are_the_latent_targets_of_the_last_question_frame(anchored_still, small_world):
    from fl1_core.data.collator import latent_pixel_inputs
    from fl1_core.data.frames import load_pool_frames

    model, processor = anchored_still
    items, inputs = _prompt_inputs(processor, small_world)
    anchors = question_anchors(model, inputs["input_ids"], inputs["pixel_values"], inputs["image_grid_thw"])
    assert anchors.shape[0] == len(items)
    for it, got in zip(items, anchors):
        frame = load_pool_frames(it.record.video, [max(it.record.image)])
        px, _ = latent_pixel_inputs(processor, model.latent_config, frame)
        want = model.latent_targets(px["pixel_values"], px["image_grid_thw"])[0]
        assert got.shape == want.shape and torch.allclose(got, want, atol=1e-5)
    with pytest.raises(ValueError, match="needs an image"):
        question_anchors(model, inputs["input_ids"][:, :3], None, None)
    from fl1_core.audit.ablations import present_frame_targets  # the audit's "present" bank: the same frames

    for got, want in zip(anchors, present_frame_targets(model, processor, items)):
        assert torch.allclose(got, want, atol=1e-5)


def test_a_model_that_predicts_no_change_imagines_the_present(anchored_still, small_world):
    from fl1_core.decoding import generate_with_latents

    model, processor = anchored_still
    items, inputs = _prompt_inputs(processor, small_world)
    anchors = question_anchors(model, inputs["input_ids"], inputs["pixel_values"], inputs["image_grid_thw"])
    assert anchors.shape[1] == 9  # a 96-px frame: 3 × 3 merged tokens
    gen = generate_with_latents(model, inputs, max_new_tokens=12, tokenizer=processor.tokenizer)
    for row, fed in enumerate(gen.latents):  # the first span: exactly the 9 cells of the row's last image
        assert fed.shape[0] == 9 and torch.allclose(fed, anchors[row].float(), atol=1e-5)
    with pytest.raises(ValueError, match="one cell per slot"):
        generate_with_latents(model, inputs, max_new_tokens=4, latent_config=model.latent_config.replace(
            max_latent_token=4))
    # the loss side: the predictions at the slots are the anchor cells, and scheduled sampling feeds them
    hidden = torch.randn(1, 11, model.config.get_text_config().hidden_size)
    mask = torch.zeros(1, 11, dtype=torch.bool)
    mask[0, 1:10] = True
    pred = model.predicted_latents(hidden, mask, anchors[:1])
    assert torch.allclose(pred, anchors[0], atol=1e-6)
    embeds = torch.zeros_like(hidden)
    fed = model.own_latent_inputs(hidden, embeds, mask, 1.0, anchors=anchors[:1])
    assert torch.allclose(fed[0, 1:10], anchors[0], atol=1e-6) and not fed[0, 0].any() and not fed[0, 10].any()
    loss, pairs = model.latent_alignment_loss(hidden, embeds.masked_scatter(mask.unsqueeze(-1), anchors[0]),
                                              mask, anchors[:1])
    assert pairs == 9 and float(loss) == pytest.approx(0.0, abs=1e-10)


def test_the_sft_forward_anchors_every_span_on_its_rows_last_question_image(tiny, rng):
    from fl1_core.data.collator import SFTCollator, latent_pixel_inputs
    from fl1_core.data.examples import SFTExample
    from fl1_core.model import FutureL1Model
    from test_latent_model import make_examples, random_image

    model, processor = tiny
    cfg = model.latent_config.replace(projection_head=True, head_dim=32, latent_anchor="last_image",
                                      max_latent_token=9)
    still = FutureL1Model(model.base, cfg)
    for p in still.latent_head.proj_out.parameters():  # predicts no change
        p.data.zero_()
    examples = [SFTExample(f"ex{i}", "<image><image>where next?", ["look", "then", "so"], "left",
                           question_images=[random_image(rng), random_image(rng)],
                           future_frames=[random_image(rng), random_image(rng)]) for i in range(2)]
    batch = SFTCollator(processor, cfg)(examples)
    batch.pop("ids")
    out = still(**batch)
    # by hand: each future frame's 9 gold tokens against the 9 tokens of its example's last question image
    gold, present = [], []
    for ex in examples:
        for frame in ex.future_frames:
            px, _ = latent_pixel_inputs(processor, cfg, [frame])
            gold.append(still.latent_targets(px["pixel_values"], px["image_grid_thw"])[0])
            px, _ = latent_pixel_inputs(processor, cfg, [ex.question_images[-1]])
            present.append(still.latent_targets(px["pixel_values"], px["image_grid_thw"])[0])
    gold, present = torch.cat(gold), torch.cat(present)
    # the first slot of a span is predicted from <|latent_start|>, so every slot has a pair
    assert out.num_latent_pairs == gold.shape[0] == 36
    assert float(out.latent_loss) == pytest.approx(float(((present - gold) ** 2).mean()), rel=1e-4)
    video_only = SFTCollator(processor, cfg)(make_examples(rng)[1:])
    video_only.pop("ids")
    with pytest.raises(ValueError, match="needs an image"):
        still(**video_only)
