"""``fl1 plan``: the per-GPU memory plan, checked against the real tiny model's parameters, gradients and AdamW
states, and for Qwen3-VL-8B against its published size."""

from __future__ import annotations

import pytest
import torch

from fl1_core.adapters import apply_lora
from fl1_core.memory_plan import PlanInputs, plan_memory
from fl1_core.model import load_future_l1
from fl1_core.placement import autocast, upcast_trainable

pytestmark = pytest.mark.usefixtures("one_thread")


def _real_bytes(model) -> dict[str, int]:
    """Weights, gradients and AdamW moments of ``model`` after one real backward and optimizer step."""
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-6)
    ids = torch.tensor([[5, 6, 7, 8, 9, 10]])
    with autocast(model):  # fp32 trainable beside bf16 frozen weights, as in the trainers
        out = model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=ids)
    out.loss.backward()
    for p in params:  # a parameter the text-only batch does not reach still gets (zero) state, as in training
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    opt.step()
    moments = sum(t.numel() * t.element_size() for st in opt.state.values() for k, t in st.items() if k != "step")
    return {"weights": sum(p.numel() * p.element_size() for p in model.parameters()),
            "gradients": sum(p.grad.numel() * p.grad.element_size() for p in params),
            "optimizer": moments}


@pytest.mark.parametrize("lora", [False, True])
def test_plan_bytes_equal_the_real_tiny_model(saved_tiny, lora):
    model, _ = load_future_l1(saved_tiny, dtype=torch.bfloat16, device=None)
    model.freeze_vision(True)
    if lora:
        apply_lora(model)
    upcast_trainable(model)
    real = _real_bytes(model)
    plan = plan_memory(saved_tiny, PlanInputs(stage="sft", gpus=1, lora=lora, lora_rank=16))
    assert plan.trainable == sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert {k: plan.bytes[k] for k in real} == real


def test_qwen3_vl_8b_shapes_and_what_fits():
    sft_lora = plan_memory("qwen3-vl-8b", PlanInputs(stage="sft", gpus=1, gpu_mem_gb=80, lora=True))
    assert 8.7e9 < sft_lora.parameters < 8.8e9  # Qwen3-VL-8B-Instruct: 8.77 B parameters
    assert sft_lora.fits
    full_one = plan_memory("qwen3-vl-8b", PlanInputs(stage="sft", gpus=1, gpu_mem_gb=80))
    assert not full_one.fits and any("LoRA" in a for a in full_one.advice)
    full_eight = plan_memory("qwen3-vl-8b", PlanInputs(stage="sft", gpus=8, gpu_mem_gb=80))
    assert full_eight.fits and full_eight.bytes["optimizer"] * 8 == pytest.approx(full_one.bytes["optimizer"], rel=1e-6)
    no_ckpt = plan_memory("qwen3-vl-8b", PlanInputs(stage="sft", gpus=8, gradient_checkpointing=False))
    assert no_ckpt.bytes["activations"] > 10 * full_eight.bytes["activations"]
    rl = plan_memory("qwen3-vl-8b", PlanInputs(stage="rl", gpus=1, lora=True, tokens_per_row=3584, rollout_rows=16))
    assert rl.fits and rl.bytes["reference_model"] == 0 and rl.bytes["rollout_kv_cache"] > 0


def test_cli_plan_exit_code_says_whether_it_fits(capsys):
    from fl1_core.cli import main

    assert main(["plan", "--model", "qwen3-vl-8b", "--stage", "sft", "--lora"]) == 0
    assert "FITS" in capsys.readouterr().out
    assert main(["plan", "--model", "qwen3-vl-8b", "--stage", "sft"]) == 3
    assert "DOES NOT FIT" in capsys.readouterr().out


def test_unknown_model_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        plan_memory(tmp_path, PlanInputs())
