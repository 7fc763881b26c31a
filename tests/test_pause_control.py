"""The pause-token control: SFT with the latent structure and slot count, every slot fed the learned
``<|latent|>`` embedding, no alignment loss; decoding feeds the same constant vector."""

from __future__ import annotations

import pytest
import torch

from fl1_core.data.formats import load_sft_records
from fl1_core.model import load_future_l1
from fl1_core.sft import SFTConfig, train_sft
from fl1_core.tiny import build_tiny_future_l1

CFG = SFTConfig.cpu_world(per_device_batch_size=2, gradient_accumulation_steps=1, max_steps=2, save_every=2,
                          learning_rate=3e-3, warmup_ratio=0.0, progress_bar=False)

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def records(small_world):
    return list(load_sft_records(small_world / "sft.json").records)[:4]


def _batches(model):
    seen = []
    handle = model.register_forward_pre_hook(lambda m, a, k: seen.append(k), with_kwargs=True)
    return seen, handle


def test_pause_sft_keeps_the_slots_and_drops_the_alignment_loss(records, tmp_path):
    from fl1_core.data.prompt_inputs import build_prompt_inputs
    from fl1_core.data.examples import text_only_prompt
    from fl1_core.decoding import generate_with_latents

    slots = {}
    for mode in ("latent", "pause"):
        model, proc = build_tiny_future_l1(seed=0)
        seen, handle = _batches(model)
        result = train_sft(model, proc, records, CFG, tmp_path / mode, mode=mode)
        handle.remove()
        latent_id = model.latent_config.latent_token_id
        slots[mode] = [int((k["input_ids"] == latent_id).sum()) for k in seen]
        if mode == "pause":
            assert all(r["loss/latent"] == 0.0 and r["data/latent_pairs"] == 0 for r in result.metrics)
            # CE only: the KL to the initial model is latent SFT's (the preset's init_kl does not apply)
            assert CFG.init_kl > 0 and "loss/init_kl" not in result.metrics[-1]
            assert result.metrics[-1]["loss/total"] == result.metrics[-1]["loss/ce"]
        else:
            assert all(r["loss/latent"] > 0 for r in result.metrics)
    assert slots["pause"] == slots["latent"] and sum(slots["pause"]) > 0  # the same structure, the same slot count

    model, proc = load_future_l1(tmp_path / "pause" / "final")
    assert model.pauses and model.latent_config.latent_input == "pause"
    cfg = model.latent_config.replace(force_initial_latent=True, budget_mode="fixed")
    inputs = build_prompt_inputs(proc, [text_only_prompt(r) for r in records[:2]])
    gen = generate_with_latents(model, inputs, max_new_tokens=8, latent_config=cfg)
    row = model.input_embeddings().weight[model.latent_config.latent_token_id].float()
    fed = torch.cat(gen.latents)
    assert fed.shape[0] > 0 and torch.allclose(fed, row.expand_as(fed))
    with pytest.raises(ValueError, match="pause"):
        train_sft(model, proc, records, CFG, tmp_path / "again", mode="latent")


def test_a_pause_model_ignores_the_future_frames(tiny):
    model, _ = tiny
    pause = type(model)(model.base, model.latent_config.replace(latent_input="pause"))
    ids = torch.tensor([[5, 6, model.latent_config.latent_start_id, model.latent_config.latent_token_id,
                         model.latent_config.latent_token_id, model.latent_config.latent_end_id, 7]])
    mask = torch.ones_like(ids)
    labels = ids.clone()
    out = pause(input_ids=ids, attention_mask=mask, labels=labels)
    assert out.num_latent_pairs == 0 and float(out.latent_loss) == 0.0
    assert torch.equal(out.loss, out.ce_loss)
    with pytest.raises(ValueError, match="latent count mismatch"):
        model(input_ids=ids, attention_mask=mask, labels=labels)  # the Future-L1 model needs its two vectors


def test_an_unknown_mode_is_refused(records, tmp_path):
    model, proc = build_tiny_future_l1(seed=0)
    with pytest.raises(ValueError, match="SFT mode must be one of"):
        train_sft(model, proc, records, CFG, tmp_path, mode="imagine")
