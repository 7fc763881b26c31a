"""Scheduled sampling in latent SFT: spans fed with the model's own projected predictions, CE gradients through them."""

from __future__ import annotations

import pytest
import torch

from fl1_core.data.collator import SFTCollator
from fl1_core.model import FutureL1Model

from test_latent_model import make_examples

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def setup(tiny, rng):
    model, processor = tiny
    head_model = FutureL1Model(model.base, model.latent_config.replace(projection_head=True, head_dim=32))
    batch = SFTCollator(processor, model.latent_config)(make_examples(rng))
    batch.pop("ids")
    return head_model, batch


def test_p_zero_is_the_teacher_forced_forward_and_p_one_feeds_every_span_its_own_prediction(setup):
    model, batch = setup
    torch.manual_seed(0)
    plain = model(**batch)
    same = model(**batch, own_latent_p=0.0)
    assert torch.equal(plain.loss, same.loss)
    own = model(**batch, own_latent_p=1.0)
    assert not torch.allclose(own.ce_loss, plain.ce_loss)
    assert torch.equal(own.latent_loss, plain.latent_loss)  # alignment stays on the teacher-forced pass
    # by hand: the prediction for slot t+1 is project_latent(hidden@t) of the teacher-forced pass
    mask = batch["input_ids"] == model.latent_config.latent_token_id
    pred = model.project_latent(plain.hidden_states[:, :-1][mask[:, 1:]])
    fed = model(**{k: v for k, v in batch.items() if k not in ("pixel_values_latent", "image_grid_thw_latent")},
                latent_vectors=pred)
    assert torch.allclose(own.ce_loss, fed.ce_loss, atol=1e-5)


def test_spans_are_chosen_per_span_with_the_generator_and_gradients_reach_the_head(setup):
    model, batch = setup
    ids = batch["input_ids"]
    mask = ids == model.latent_config.latent_token_id
    hidden = model(**batch).hidden_states
    embeds = model.input_embeddings()(ids)
    embeds = embeds.masked_scatter(mask.unsqueeze(-1), torch.randn(int(mask.sum()), embeds.shape[-1]))
    fed = [model.own_latent_inputs(hidden, embeds, mask, 0.5, torch.Generator().manual_seed(s)) for s in range(8)]
    changed = [(f != embeds).any(-1)[mask] for f in fed]
    starts = mask & ~torch.nn.functional.pad(mask[:, :-1], (1, 0), value=False)
    span = starts.flatten().long().cumsum(0).view_as(mask)[mask] - 1
    for c in changed:  # whole spans, never part of one
        for k in range(int(starts.sum())):
            assert c[span == k].all() or not c[span == k].any()
    assert len({tuple(c.tolist()) for c in changed}) > 1  # the generator decides which spans
    again = model.own_latent_inputs(hidden, embeds, mask, 0.5, torch.Generator().manual_seed(3))
    assert torch.equal(again, fed[3])
    model.zero_grad()
    model(**batch, own_latent_p=1.0).ce_loss.backward()
    assert model.latent_head.proj_out.weight.grad.abs().sum() > 0  # CE gradient flows through the fed predictions
    model.zero_grad(set_to_none=True)


def test_the_alignment_variant_trains_each_slot_after_the_models_own_predictions(setup):
    model, batch = setup
    plain = model(**batch)
    own = model(**batch, own_latent_p=1.0, own_latent_loss="alignment")
    assert torch.equal(own.ce_loss, plain.ce_loss)  # the text stays teacher-forced
    # by hand: the second pass is fed the first pass's (detached) predictions; its alignment, averaged with the first
    mask = batch["input_ids"] == model.latent_config.latent_token_id
    pred = model.project_latent(plain.hidden_states[:, :-1][mask[:, 1:]]).detach()
    fed = model(**{k: v for k, v in batch.items() if k not in ("pixel_values_latent", "image_grid_thw_latent")},
                latent_vectors=pred, hidden_only=True).hidden_states
    gold = model.latent_targets(batch["pixel_values_latent"], batch["image_grid_thw_latent"])
    embeds, _ = model.embed_with_latents(batch["input_ids"], torch.cat(gold))
    second, _ = model.latent_alignment_loss(fed, embeds, mask)
    assert torch.allclose(own.latent_loss, 0.5 * (plain.latent_loss + second), atol=1e-5)
    assert not torch.allclose(own.latent_loss, plain.latent_loss)
    model.zero_grad()
    own.latent_loss.backward()
    assert model.latent_head.proj_out.weight.grad.abs().sum() > 0
    model.zero_grad(set_to_none=True)
    with pytest.raises(ValueError, match="own_latent_loss"):
        model(**batch, own_latent_p=1.0, own_latent_loss="both")


def test_sft_with_scheduled_sampling_is_deterministic_and_trains_on_own_latents(small_world, tmp_path):
    from fl1_core.data.formats import load_sft_records
    from fl1_core.sft import SFTConfig, train_sft
    from fl1_core.tiny import build_tiny_future_l1

    records = list(load_sft_records(small_world / "sft.json").records)[:8]
    cfg = SFTConfig.cpu_world(per_device_batch_size=2, gradient_accumulation_steps=1, max_steps=2, save_every=0,
                              progress_bar=False)
    assert cfg.replace(scheduled_sampling_p=0.5, scheduled_sampling_ramp=0.5).own_latent_p_at(0, 4) == 0.25
    losses = {}
    for name, p in (("plain", 0.0), ("own", 1.0), ("own_again", 1.0)):
        model, proc = build_tiny_future_l1(seed=0)
        run = train_sft(model, proc, records, cfg.replace(scheduled_sampling_p=p, scheduled_sampling_ramp=0.0),
                        tmp_path / name, mode="latent")
        losses[name] = [m["loss/ce"] for m in run.metrics]
    assert losses["own"] == losses["own_again"]
    assert losses["own"][0] != losses["plain"][0]
    with pytest.raises(ValueError, match="scheduled_sampling"):
        SFTConfig(scheduled_sampling_p=1.5)
    with pytest.raises(ValueError, match="scheduled_sampling_loss"):
        SFTConfig(scheduled_sampling_loss="text")
