"""Teacher-forced latent SFT (docs/PAPER.md#latent-sft): the collator, the one-pass forward and the CE + λ·MSE loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fl1_core import tokens as T
from fl1_core.data.collator import CollateError, QuestionVideo, SFTCollator, SFTExample
from fl1_core.model import FutureL1Model

from conftest import random_image


def make_examples(rng):
    return [
        SFTExample(
            "img2",
            "<image><image>what happens next?",
            ["the ball moves right", "it reaches the box", "the box slides"],
            "the red ball hits the blue box",
            question_images=[random_image(rng), random_image(rng)],
            future_frames=[random_image(rng), random_image(rng, 64, 128)],
        ),
        SFTExample(
            "vid1",
            "what happens next?",
            ["the light is off", "the switch is pressed"],
            "the light turns on",
            future_frames=[random_image(rng)],
            question_video=QuestionVideo(rng.integers(0, 255, (4, 96, 96, 3), dtype=np.uint8), 8.0, [0, 8, 16, 24]),
        ),
    ]


@pytest.fixture
def batch(tiny, rng):
    model, processor = tiny
    return SFTCollator(processor, model.latent_config)(make_examples(rng))


def test_collator_builds_one_span_per_future_frame_with_k_merged_tokens(tiny, batch):
    model, processor = tiny
    tok = processor.tokenizer
    texts = [tok.decode(ids[m.bool()]).split("<|im_start|>assistant\n")[-1] for ids, m in zip(batch["input_ids"], batch["attention_mask"])]
    # (the system prompt names the latent tokens, so only the assistant turn is counted)
    # 96x96 → 3x3 merged tokens = 9 latents; 64x128 → 2x4 = 8; spans in frame order
    assert T.count_latent_spans(texts[0]) == [9, 8]
    assert T.count_latent_spans(texts[1]) == [9]
    assert batch["image_grid_thw_latent"].tolist() == [[1, 6, 6], [1, 4, 8], [1, 6, 6]]
    assert "<reason>the ball moves right</reason>\n<|latent_start|>" in texts[0]
    assert texts[0].endswith("<answer>the red ball hits the blue box</answer><|im_end|>")


def test_labels_cover_the_assistant_turn_except_latent_slots(tiny, batch):
    model, processor = tiny
    tok = processor.tokenizer
    labels, ids = batch["labels"], batch["input_ids"]
    latent_id = model.latent_config.latent_token_id
    assert not ((labels != -100) & (ids == latent_id)).any()
    assert not ((labels != -100) & (batch["attention_mask"] == 0)).any()
    for row in range(ids.shape[0]):
        supervised = tok.decode(labels[row][labels[row] != -100])
        assert supervised.startswith("<reason>") and supervised.endswith("</answer><|im_end|>")
        assert "<|im_start|>" not in supervised and "user" not in supervised
        # inside the assistant turn every latent_start / latent_end is supervised (the system prompt also names
        # these tokens; those occurrences are prompt and stay unsupervised)
        im_start = tok.convert_tokens_to_ids("<|im_start|>")
        turn = int((ids[row] == im_start).nonzero().max()) + 3
        for tid in (model.latent_config.latent_start_id, model.latent_config.latent_end_id):
            assert ((ids[row, turn:] == tid) == (labels[row, turn:] == tid)).all()
            assert not (labels[row, :turn] == tid).any()


def hand_loss(model: FutureL1Model, batch: dict, lam: float) -> tuple[torch.Tensor, torch.Tensor, list]:
    """CE + λ·MSE computed position by position with Python loops (the reference for the vectorised loss)."""
    targets = torch.cat(model.latent_targets(batch["pixel_values_latent"], batch["image_grid_thw_latent"]))
    out = model(**{k: v for k, v in batch.items() if k != "labels"})  # logits and hidden, no loss
    ids, labels = batch["input_ids"], batch["labels"]
    latent_id = model.latent_config.latent_token_id
    ce_terms, pairs, k = [], [], 0
    for b in range(ids.shape[0]):
        for t in range(ids.shape[1] - 1):
            if labels[b, t + 1] != -100:
                ce_terms.append(-F.log_softmax(out.logits[b, t].float(), -1)[labels[b, t + 1]])
    for b in range(ids.shape[0]):
        for t in range(ids.shape[1]):
            if ids[b, t] == latent_id:
                pairs.append((b, t - 1, k))
                k += 1
    mse = torch.stack([((out.hidden_states[b, t] - targets[j]) ** 2).mean() for b, t, j in pairs]).mean()
    ce = torch.stack(ce_terms).mean()
    return ce, mse, pairs


def test_sft_loss_equals_hand_computed_ce_plus_lambda_mse(tiny, batch):
    model, _ = tiny
    with torch.no_grad():
        out = model(**batch)
        ce, mse, pairs = hand_loss(model, batch, model.latent_config.latent_lambda)
    assert out.num_latent_pairs == len(pairs) == 9 + 8 + 9
    torch.testing.assert_close(out.ce_loss, ce, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.latent_loss, mse, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out.loss, ce + model.latent_config.latent_lambda * mse, rtol=1e-5, atol=1e-5)
    # the MSE pairs are the shifted ones: hidden@<|latent_start|> predicts latent 1, hidden@latent k → latent k+1
    ids = batch["input_ids"]
    first_of_span = [(b, t) for b, t, _ in pairs if ids[b, t] == model.latent_config.latent_start_id]
    assert len(first_of_span) == 3
    assert all(ids[b, t + 1] == model.latent_config.latent_token_id for b, t, _ in pairs)


def test_latent_slots_receive_the_ground_truth_frame_embeddings(tiny, batch):
    model, _ = tiny
    targets = torch.cat(model.latent_targets(batch["pixel_values_latent"], batch["image_grid_thw_latent"]))
    embeds, mask = model.embed_with_latents(batch["input_ids"], targets)
    torch.testing.assert_close(embeds[mask], targets)
    assert not targets.requires_grad


def test_sim_loss_variant(tiny, batch):
    model, _ = tiny
    sim = FutureL1Model(model.base, model.latent_config.replace(latent_loss="sim"))
    with torch.no_grad():
        out = sim(**batch)
    assert 0.0 <= float(out.latent_loss) <= 2.0
    assert not torch.isclose(out.latent_loss, model(**batch).latent_loss)


def test_gradients_reach_the_language_model_but_not_the_frozen_vision_tower(tiny, batch):
    model, _ = tiny
    model.freeze_vision(True)
    model.zero_grad(set_to_none=True)
    try:
        model(**batch).loss.backward()
        assert model.base.lm_head.weight.grad is not None and model.base.lm_head.weight.grad.abs().sum() > 0
        assert model.base.model.language_model.layers[0].self_attn.q_proj.weight.grad.abs().sum() > 0
        assert all(p.grad is None for p in model.base.model.visual.parameters())
    finally:
        model.zero_grad(set_to_none=True)
        model.freeze_vision(False)


def test_projection_head_is_used_for_predictions(tiny, batch):
    model, _ = tiny
    torch.manual_seed(0)
    with_head = FutureL1Model(model.base, model.latent_config.replace(projection_head=True, head_dim=32))
    with torch.no_grad():
        a, b = model(**batch), with_head(**batch)
    torch.testing.assert_close(a.ce_loss, b.ce_loss)
    assert not torch.isclose(a.latent_loss, b.latent_loss)


def test_pooled_latent_budget_gives_exactly_n_latents_per_span(tiny, rng):
    model, processor = tiny
    cfg = model.latent_config.replace(pooled_latent_tokens=4)
    pooled = FutureL1Model(model.base, cfg)
    batch = SFTCollator(processor, cfg)(make_examples(rng))
    tok = processor.tokenizer
    assistant = tok.decode(batch["input_ids"][0]).split("<|im_start|>assistant\n")[-1]
    assert T.count_latent_spans(assistant) == [4, 4]
    with torch.no_grad():
        out = pooled(**batch)
    assert out.num_latent_pairs == 12 and torch.isfinite(out.loss)


def test_latent_count_mismatch_is_a_clear_error(tiny, batch):
    model, _ = tiny
    ids = batch["input_ids"].clone()
    row, col = 0, int((ids[0] == model.latent_config.latent_token_id).nonzero()[0])
    ids[row, col - 2] = model.latent_config.latent_token_id  # one latent slot too many
    with pytest.raises(ValueError, match="latent count mismatch"):
        model(**{**batch, "input_ids": ids})


def test_bad_records_are_named_and_an_all_bad_batch_raises(tiny, rng):
    model, processor = tiny
    good, other = make_examples(rng)
    no_future = SFTExample("nofuture", "q", ["a"], "ans", question_images=[random_image(rng)])
    collator = SFTCollator(processor, model.latent_config, on_error="skip")
    batch = collator([good, no_future])
    assert batch["ids"] == ["img2"]
    assert collator.rejects[0][0] == "nofuture" and "reasoning_image" in collator.rejects[0][1]
    with pytest.raises(CollateError, match="every record of the batch failed"):
        collator([no_future])
    with pytest.raises(CollateError, match="'nofuture'.*future frame"):
        SFTCollator(processor, model.latent_config, on_error="raise")([no_future])
    wrong_thoughts = SFTExample("thoughts", "q", ["a", "b", "c", "d"], "x", [random_image(rng)], [random_image(rng)])
    with pytest.raises(CollateError, match="4 thoughts for 1 future frames"):
        SFTCollator(processor, model.latent_config, on_error="raise")([wrong_thoughts])


def test_over_long_sequence_is_a_clear_error(tiny, rng):
    model, processor = tiny
    with pytest.raises(CollateError, match="longer than max_length=64.*img2"):
        SFTCollator(processor, model.latent_config, max_length=64)(make_examples(rng))


def test_text_only_mode_has_no_latents_and_keeps_the_thoughts(tiny, rng):
    model, processor = tiny
    batch = SFTCollator(processor, model.latent_config, mode="text")(make_examples(rng))
    assert "pixel_values_latent" not in batch
    assert not (batch["input_ids"] == model.latent_config.latent_token_id).any()
    text = processor.tokenizer.decode(batch["input_ids"][0])
    assert "<reason>the ball moves right</reason>\n<reason>it reaches the box</reason>" in text
    with torch.no_grad():
        out = model(**batch)
    assert out.num_latent_pairs == 0 and float(out.latent_loss) == 0.0


def test_letter_weight_marks_the_two_option_letters_and_weights_the_ce(tiny, rng):
    """letter_weight w: weight w on "…option B" and "<answer>B</answer>", 1 elsewhere; CE = Σ w·ce / Σ w."""
    model, processor = tiny
    mcq, free = make_examples(rng)
    mcq = SFTExample("mcq", "<image><image>which event comes next?\nA. x\nB. y\nC. z\nD. w",
                     ["the ball moves right", "so, the box slides, which is option B."], "B",
                     question_images=mcq.question_images, future_frames=mcq.future_frames[:1])
    plain = SFTCollator(processor, model.latent_config)([mcq, free])
    batch = SFTCollator(processor, model.latent_config, letter_weight=5.0)([mcq, free])
    weights = batch["label_weights"]
    tok = processor.tokenizer
    marked = [[tok.convert_ids_to_tokens(int(batch["input_ids"][b, t])) for t in torch.nonzero(weights[b] == 5.0)]
              for b in range(2)]
    assert len(marked[0]) == 2 and all("B" in piece for piece in marked[0]) and marked[1] == []
    assert set(weights.unique().tolist()) == {1.0, 5.0}
    assert "label_weights" not in plain
    with torch.no_grad():
        out = model(**batch)
        logits = out.logits[:, :-1].float()
        labels, w = batch["labels"][:, 1:], weights[:, 1:]
        keep = labels != -100
        nll = -torch.log_softmax(logits, -1).gather(-1, labels.clamp_min(0).unsqueeze(-1)).squeeze(-1)
        expected = (nll * w)[keep].sum() / w[keep].sum()
    torch.testing.assert_close(out.ce_loss, expected, rtol=1e-5, atol=1e-5)
    assert not torch.isclose(out.ce_loss, nll[keep].mean())
    with pytest.raises(ValueError, match="letter_weight"):
        SFTCollator(processor, model.latent_config, letter_weight=0.0)
