"""The rollout token budget read off the data, the RL learning-rate schedule and the CPU preset's settings."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fl1_core.data.collator import assistant_text
from fl1_core.data.formats import load_rl_records
from fl1_core.rl.budget import data_token_budget, reference_response_lengths
from fl1_core.rl.config import RLConfig


def test_budget_is_the_quantile_of_the_reference_chains_in_tokens(small_world, tiny):
    _, processor = tiny
    tok = processor.tokenizer
    records = load_rl_records(small_world / "rl.jsonl").records
    assert all(r.meta and r.meta.get("reference_thoughts") for r in records)
    lengths = reference_response_lengths(records, tok, latents_per_span=9)
    r = records[0]
    by_hand = assistant_text(r.meta["reference_thoughts"], [9] * r.meta["reference_spans"], r.answer)
    assert lengths[0] == len(tok(by_hand, add_special_tokens=False)["input_ids"])
    assert by_hand.count("<|latent|>") == 9 * r.meta["reference_spans"]
    assert data_token_budget(records, tok, 9, quantile=1.0) == max(lengths)
    assert data_token_budget(records, tok, 9, quantile=0.5) == math.ceil(np.quantile(lengths, 0.5))
    # more latents per span, longer chains
    assert data_token_budget(records, tok, 20, 1.0) > data_token_budget(records, tok, 9, 1.0)
    bare = [type(r)(**{**r.__dict__, "meta": None}) for r in records]
    with pytest.raises(ValueError, match="reference_thoughts"):
        data_token_budget(bare, tok, 9)


def test_learning_rate_schedules():
    cfg = RLConfig(learning_rate=1e-4, lr_scheduler="cosine", warmup_steps=2, min_lr_ratio=0.1)
    lrs = [cfg.lr_at(s, 10) for s in range(10)]
    assert lrs[0] == pytest.approx(5e-5) and lrs[1] == pytest.approx(1e-4) and lrs[2] == pytest.approx(1e-4)
    assert all(a >= b for a, b in zip(lrs[2:], lrs[3:])) and lrs[-1] > 1e-5
    assert cfg.lr_at(10, 10) == pytest.approx(1e-5)
    assert RLConfig(learning_rate=1e-6).lr_at(7, 10) == 1e-6  # the release: constant
    with pytest.raises(ValueError, match="lr_scheduler"):
        RLConfig(lr_scheduler="linear")


def test_cpu_preset_reads_its_budget_off_the_data_and_freezes_vision_the_release_is_unchanged():
    cpu = RLConfig.cpu_world()
    assert cpu.token_budget == "data" and cpu.freeze_vision and cpu.lr_scheduler == "cosine"
    release = RLConfig.gpu_release()
    assert release.token_budget == "fixed" and release.max_new_tokens == 2048 and not release.freeze_vision
    assert release.lr_scheduler == "constant" and release.learning_rate == 1e-6
