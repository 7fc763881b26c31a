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
