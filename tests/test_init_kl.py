"""SFT's KL to the initial model (``SFTConfig.init_kl``): the loss formula, π_init staying the initial model while the
trained one moves (full fine-tuning and LoRA), and a run that stays closer to its start the larger the weight."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from fl1_core.adapters import apply_lora, LoraSettings
from fl1_core.data.collator import SFTCollator
from fl1_core.data.formats import load_sft_records
from fl1_core.losses import init_kl_loss
from fl1_core.reference import InitReference
from fl1_core.sft import SFTConfig, train_sft
from fl1_core.sft.data import ExampleSource
from fl1_core.tiny import build_tiny_future_l1

from test_latent_model import make_examples

pytestmark = pytest.mark.usefixtures("one_thread")

CFG = SFTConfig.cpu_world(per_device_batch_size=2, gradient_accumulation_steps=1, max_steps=6, save_every=0,
                          learning_rate=3e-3, warmup_ratio=0.0, progress_bar=False)


def test_the_loss_is_the_forward_kl_over_the_ce_positions_only():
    g = torch.Generator().manual_seed(0)
    logits, init = torch.randn(2, 5, 7, generator=g), torch.randn(2, 5, 7, generator=g)
    labels = torch.tensor([[-100, -100, 3, 1, -100], [-100, 2, 2, -100, -100]])
    # by hand: positions t with labels[t+1] != -100 → (0,1), (0,2), (1,0), (1,1)
    rows = [(0, 1), (0, 2), (1, 0), (1, 1)]
    by_hand = sum(
        (F.softmax(init[b, t], -1) * (F.log_softmax(init[b, t], -1) - F.log_softmax(logits[b, t], -1))).sum()
        for b, t in rows) / len(rows)
    assert torch.allclose(init_kl_loss(logits, init, labels), by_hand, atol=1e-6)
    assert float(init_kl_loss(init, init, labels)) == pytest.approx(0.0, abs=1e-6)
    # what the masked positions hold does not matter
    other = logits.clone()
    other[0, 0] += 5.0
    other[1, 3:] -= 3.0
    assert torch.equal(init_kl_loss(other, init, labels), init_kl_loss(logits, init, labels))
    nothing = torch.full_like(labels, -100)
    assert float(init_kl_loss(logits, init, nothing)) == 0.0
    trained = logits.clone().requires_grad_(True)
    init_kl_loss(trained, init.clone().requires_grad_(True), labels).backward()
    assert trained.grad.abs().sum() > 0


@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_the_reference_keeps_the_initial_logits_while_the_model_moves(lora, rng):
    model, processor = build_tiny_future_l1(seed=0)
    if lora:
        apply_lora(model, LoraSettings(r=4, alpha=8))
    batch = SFTCollator(processor, model.latent_config)(make_examples(rng))
    batch.pop("ids")
    reference = InitReference(model, lora=lora)
    with torch.no_grad():
        before = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
    assert torch.allclose(reference.logits(batch), before, atol=1e-5)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(trainable, lr=1.0)
    for _ in range(2):
        model(**batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    with torch.no_grad():
        after = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
    assert not torch.allclose(after, before, atol=1e-3)
    assert torch.allclose(reference.logits(batch), before, atol=1e-5)
    if reference.copy is None:  # the LoRA reference left the trained weights in place
        with torch.no_grad():
            assert torch.allclose(model(**{k: v for k, v in batch.items() if k != "labels"}).logits, after)


def test_the_reference_reuses_the_training_pass_latents_instead_of_encoding_the_frames_again(rng):
    model, processor = build_tiny_future_l1(seed=0)
    batch = SFTCollator(processor, model.latent_config)(make_examples(rng))
    batch.pop("ids")
    reference = InitReference(model)
    encoded = []
    hook = reference.copy.base.model.visual.register_forward_hook(lambda *_: encoded.append(1))
    try:
        with torch.no_grad():
            out = model(**batch)
        assert out.latent_inputs is not None and out.latent_inputs.shape[0] == int(
            (batch["input_ids"] == model.latent_config.latent_token_id).sum())
        recomputed = reference.logits(batch)
        calls_recomputing = len(encoded)
        encoded.clear()
        reused = reference.logits(batch, out.latent_inputs)
    finally:
        hook.remove()
    assert torch.equal(reused, recomputed)
    assert len(encoded) == calls_recomputing - 1  # the video is encoded, the future frames are not
    # the vectors are what the reference feeds: other vectors give other logits
    assert not torch.allclose(reference.logits(batch, out.latent_inputs * 0.5), recomputed, atol=1e-4)


def _kl_to_start(model, start, processor, records) -> float:
    """KL(π_start ‖ π_model) on the first records of the run (their latent-mode examples)."""
    source = ExampleSource(records, "latent")
    batch = SFTCollator(processor, model.latent_config)([source[i] for i in range(len(source))])
    batch.pop("ids")
    with torch.no_grad():
        return float(init_kl_loss(model(**batch).logits, start.logits(batch), batch["labels"]))


def test_a_larger_weight_keeps_the_run_closer_to_where_it_started(small_world, tmp_path):
    records = list(load_sft_records(small_world / "sft.json").records)[:12]
    distances = {}
    for weight in (0.0, 5.0):
        model, processor = build_tiny_future_l1(seed=0)
        start = InitReference(model)
        out = tmp_path / f"kl{weight}"
        result = train_sft(model, processor, records, CFG.replace(init_kl=weight), out, mode="latent")
        rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
        assert ("loss/init_kl" in rows[-1]) == (weight > 0)
        if weight > 0:
            assert rows[0]["loss/init_kl"] == pytest.approx(0.0, abs=1e-6)  # the first step starts at π_init
            assert rows[-1]["loss/init_kl"] > 0
            assert rows[-1]["loss/total"] > rows[-1]["loss/ce"]
        distances[weight] = _kl_to_start(result.model, start, processor, records[:4])
    assert distances[5.0] < 0.75 * distances[0.0]  # measured: 0.09 against 0.19


def test_a_negative_weight_is_refused():
    with pytest.raises(ValueError, match="init_kl"):
        SFTConfig.cpu_world(init_kl=-0.1)


@pytest.mark.parametrize("mode", ["text", "pause"])
def test_the_controls_train_without_it(small_world, tmp_path, mode):
    records = list(load_sft_records(small_world / "sft.json").records)[:4]
    model, processor = build_tiny_future_l1(seed=0)
    cfg = CFG.replace(init_kl=5.0, max_steps=1)
    result = train_sft(model, processor, records, cfg, tmp_path, mode=mode)
    assert "loss/init_kl" not in result.metrics[-1]
    assert result.metrics[-1]["loss/total"] == result.metrics[-1]["loss/ce"]
