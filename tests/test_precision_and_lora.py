"""The GPU path on a CPU: device choice, fp32 master weights over a bf16 load, NaN check before backward, LoRA."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from fl1_core.adapters import adapters_disabled, apply_lora, has_lora, merge_lora
from fl1_core.model import load_future_l1
from fl1_core.placement import attn_implementation_for, resolve_device, upcast_trainable
from fl1_core.sft import SFTConfig, train_sft

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def records(small_world):
    from fl1_core.data.formats import load_sft_records

    return list(load_sft_records(small_world / "sft.json").records)[:8]


# ------------------------------------------------------------------------------------------------ device choice
def test_auto_device_is_the_cpu_here_and_env_overrides(monkeypatch):
    monkeypatch.delenv("FL1_DEVICE", raising=False)
    want = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == want
    monkeypatch.setenv("FL1_DEVICE", "cpu")
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device(None) is None


def test_sdpa_by_default_and_flash_attention_only_on_request_for_a_cuda_model(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.delenv("FL1_ATTENTION", raising=False)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object() if name == "flash_attn" else real(name))
    assert attn_implementation_for(torch.device("cuda", 0)) == "sdpa"  # installed, but not asked for
    monkeypatch.setenv("FL1_ATTENTION", "flash_attention_2")
    assert attn_implementation_for(torch.device("cpu")) == "sdpa"  # asked for, but the model is on the CPU
    assert attn_implementation_for(torch.device("cuda", 0)) == "flash_attention_2"
    assert attn_implementation_for(None) == "sdpa"
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "flash_attn" else real(name))
    assert attn_implementation_for(torch.device("cuda", 0)) == "sdpa"  # asked for, not installed
    monkeypatch.setenv("FL1_ATTENTION", "flash")
    with pytest.raises(ValueError, match="FL1_ATTENTION"):
        attn_implementation_for(torch.device("cuda", 0))


# ------------------------------------------------------------------------------------- fp32 master weights
def test_adamw_step_on_a_bf16_load_equals_the_fp32_reference(saved_tiny):
    """lr 1e-6: in bf16 most updates vanish; with fp32 master weights the step is the fp32 reference's, exactly."""
    bf16, _ = load_future_l1(saved_tiny, dtype=torch.bfloat16, device=None)
    ref, _ = load_future_l1(saved_tiny, dtype=torch.bfloat16, device=None)
    ref.float()  # the reference: the same (bf16-representable) weights, all in fp32
    naive, _ = load_future_l1(saved_tiny, dtype=torch.bfloat16, device=None)
    assert upcast_trainable(bf16) > 0
    for m in (bf16, ref, naive):
        m.freeze_vision(True)
    names = [n for n, p in ref.named_parameters() if p.requires_grad]
    g = torch.Generator().manual_seed(0)
    grads = {n: torch.randn(p.shape, generator=g) for n, p in ref.named_parameters() if p.requires_grad}

    def step(model):
        params = dict(model.named_parameters())
        before = {n: params[n].detach().float().clone() for n in names}
        opt = torch.optim.AdamW([params[n] for n in names], lr=1e-6, weight_decay=0.01)
        for n in names:
            params[n].grad = grads[n].to(params[n].dtype)
        opt.step()
        return {n: params[n].detach().float() - before[n] for n in names}

    d_master, d_ref, d_naive = step(bf16), step(ref), step(naive)
    for n in names:
        assert dict(bf16.named_parameters())[n].dtype == torch.float32
        assert torch.equal(d_master[n], d_ref[n]), n
    moved = sum(int((d != 0).sum()) for d in d_ref.values())
    moved_naive = sum(int((d != 0).sum()) for d in d_naive.values())
    total = sum(d.numel() for d in d_ref.values())
    assert moved == total  # Adam's first step moves every weight by ≈ lr
    assert moved_naive < 0.2 * total  # the defect being fixed: bf16 parameters swallow most of the step


def test_sft_on_a_bf16_load_trains_fp32_master_weights(saved_tiny, records, tmp_path):
    model, processor = load_future_l1(saved_tiny, dtype=torch.bfloat16, device=None)
    lm_before = model.base.lm_head.weight.detach().float().clone()
    cfg = SFTConfig.cpu_world(per_device_batch_size=2, gradient_accumulation_steps=1, max_steps=1, save_every=0,
                              learning_rate=1e-6, warmup_ratio=0.0, progress_bar=False)
    result = train_sft(model, processor, records, cfg, tmp_path, mode="latent")
    trained = result.model
    assert trained.base.lm_head.weight.dtype == torch.float32
    assert trained.base.model.visual.patch_embed.proj.weight.dtype == torch.bfloat16  # frozen: stays bf16
    assert (trained.base.lm_head.weight.detach() - lm_before).abs().gt(0).float().mean() > 0.9


# ------------------------------------------------------------------------------------------------------- LoRA
def _logits(model, processor):
    ids = processor.tokenizer(["the red ball hits the blue box <|latent_start|> <|latent_end|> A"],
                              return_tensors="pt")
    with torch.no_grad():
        return model(input_ids=ids.input_ids, attention_mask=ids.attention_mask).logits


def test_lora_trains_adapters_latent_rows_and_lm_head_only(saved_tiny):
    model, processor = load_future_l1(saved_tiny, device=None)
    apply_lora(model)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert any("lora_A" in n for n in trainable) and any("trainable_tokens_delta" in n for n in trainable)
    assert "base.lm_head.weight" in trainable
    assert not any(".visual." in n for n in trainable)
    assert not any(n.endswith("q_proj.base_layer.weight") for n in trainable)


def test_sft_with_lora_lowers_the_loss_and_saves_an_adapter_that_reloads(saved_tiny, records, tmp_path):
    model, processor = load_future_l1(saved_tiny, device=None)
    embed_before = model.base.model.language_model.embed_tokens.weight.detach().clone()
    cfg = SFTConfig.cpu_world(per_device_batch_size=2, gradient_accumulation_steps=1, max_steps=8, save_every=0,
                              learning_rate=3e-3, warmup_ratio=0.0, progress_bar=False, lora={"r": 8})
    result = train_sft(model, processor, records, cfg, tmp_path, mode="latent")
    losses = [r["loss/total"] for r in result.metrics]
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3, losses
    assert (result.final_dir / "adapter_config.json").is_file()
    assert not (result.final_dir / "model.safetensors").exists()
    reloaded, proc2 = load_future_l1(result.final_dir, device=None)
    assert has_lora(reloaded)
    torch.testing.assert_close(_logits(reloaded, proc2), _logits(result.model, processor), atol=1e-5, rtol=0)
    # only the latent tokens' embedding rows moved
    merge_lora(reloaded)
    after = reloaded.base.model.language_model.embed_tokens.weight.detach()
    lc = reloaded.latent_config
    latent = [lc.latent_token_id, lc.latent_start_id, lc.latent_end_id]
    others = torch.ones(after.shape[0], dtype=torch.bool)
    others[latent] = False
    assert torch.equal(after[others], embed_before[others])
    assert not torch.equal(after[latent], embed_before[latent])


def test_merged_and_unmerged_adapters_give_equal_logits(saved_tiny):
    model, processor = load_future_l1(saved_tiny, device=None)
    base_logits = _logits(model, processor)
    apply_lora(model)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n or "trainable_tokens_delta" in n:
                p.normal_(0, 0.05, generator=torch.Generator().manual_seed(len(n)))
    unmerged = _logits(model, processor)
    assert (unmerged - base_logits).abs().max() > 1e-2  # the adapters do something
    with adapters_disabled(model):
        torch.testing.assert_close(_logits(model, processor), base_logits, atol=0, rtol=0)
    merge_lora(model)
    assert not has_lora(model)
    torch.testing.assert_close(_logits(model, processor), unmerged, atol=1e-5, rtol=1e-5)


def test_rl_with_lora_on_an_sft_adapter_chains_and_reloads(saved_tiny, records, tmp_path):
    """SFT adapter → RL adapter on top (the SFT one merged first, reference = adapters off = the SFT model);
    the RL adapter folder reloads through the chain to the same logits."""
    from fl1_core.data.formats import load_rl_records
    from fl1_core.data.world import WorldConfig, generate_world
    from fl1_core.rl.config import RLConfig
    from fl1_core.rl.trainer import RLTrainer
    from helpers_rl import ALL_GROUPS

    model, processor = load_future_l1(saved_tiny, device=None)
    cfg = SFTConfig.cpu_world(per_device_batch_size=2, gradient_accumulation_steps=1, max_steps=2, save_every=0,
                              learning_rate=3e-3, warmup_ratio=0.0, progress_bar=False, lora={"r": 4})
    sft = train_sft(model, processor, records, cfg, tmp_path / "sft", mode="latent")
    model, processor = load_future_l1(sft.final_dir, device=None)
    generate_world(tmp_path / "w", seed=0, config=WorldConfig.small(rl_size=6))
    rl_records = load_rl_records(tmp_path / "w" / "rl.jsonl").records
    model.latent_config = model.latent_config.replace(budget_mode="loose")
    rl_cfg = RLConfig(group_size=2, prompts_per_step=2, max_new_tokens=8,
                      latent={"loose_cap": 2, "force_initial_latent": True}, learning_rate=1e-2, max_steps=1,
                      save_every=5, max_rounds=1, progress_bar=False, mode=ALL_GROUPS, lora={"r": 4})
    trainer = RLTrainer(model, processor, rl_records, rl_cfg, tmp_path / "rl")
    assert trainer.ref_model is None  # the reference is the model with its adapters off: no copy
    result = trainer.train()
    assert (result.final_dir / "adapter_config.json").is_file()
    reloaded, proc = load_future_l1(result.final_dir, device=None)
    torch.testing.assert_close(_logits(reloaded, proc), _logits(trainer.model, processor), atol=1e-5, rtol=0)


def test_cli_models_go_where_the_device_policy_says(saved_tiny, monkeypatch):
    """``fl1 eval/curate/rl/heldout`` load through ``_load_model`` / ``load_future_l1(device="auto")``: with a device
    forced by FL1_DEVICE (here the meta device, standing in for a GPU) the model is moved there."""
    from fl1_core.cli import _load_model
    from fl1_core.evaluation.heldout import run_heldout_mcq  # noqa: F401  (loads with the default device="auto")

    monkeypatch.setenv("FL1_DEVICE", "meta")
    model, _ = _load_model(str(saved_tiny))
    assert model.device.type == "meta"
    tiny, _ = _load_model("tiny")
    assert tiny.device.type == "meta"
    monkeypatch.setenv("FL1_DEVICE", "cpu")
    assert load_future_l1(saved_tiny)[0].device.type == "cpu"


def test_scalar_reads_a_sharded_norm_whole():
    from fl1_core.placement import scalar

    class Sharded:  # what FSDP2's clip_grad_norm_ returns: a DTensor whose local value is one shard's
        def full_tensor(self):
            return torch.tensor(5.0)

        def __float__(self):
            raise RuntimeError("float() of a DTensor")

    assert scalar(Sharded()) == 5.0 and scalar(torch.tensor(2.5)) == 2.5
