"""``fl1 plan``: the per-GPU memory plan, checked against the real tiny model (parameters, gradients, AdamW states,
and the KV cache the library's decoder allocates for a config's rollout batch), and for Qwen3-VL-8B against numbers
derived by hand."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from fl1_core.adapters import apply_lora
from fl1_core.memory_plan import GIB, PlanInputs, plan_memory
from fl1_core.memory_shapes import latent_head_params, meta_model
from fl1_core.model import load_future_l1
from fl1_core.placement import autocast, upcast_trainable
from fl1_core.rl.config import RLConfig
from fl1_core.run_plan import curation_plan_inputs, rl_plan_inputs, sft_plan_inputs

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


@pytest.fixture(scope="module")
def tiny_with_head(tmp_path_factory):
    """The tiny model with the latent projection head, saved (its config says so)."""
    from fl1_core.checkpoints import save_model
    from fl1_core.tiny import build_tiny_future_l1

    model, processor = build_tiny_future_l1(seed=0)
    model, processor = build_tiny_future_l1(seed=0, latent_config=model.latent_config.replace(projection_head=True,
                                                                                              head_dim=48))
    path = tmp_path_factory.mktemp("tiny_head") / "ckpt"
    save_model(model, processor, path)
    return path


@pytest.mark.parametrize("lora", [False, True])
@pytest.mark.parametrize("head", [False, True])
def test_plan_bytes_equal_the_real_tiny_model(saved_tiny, tiny_with_head, lora, head):
    path = tiny_with_head if head else saved_tiny
    model, _ = load_future_l1(path, dtype=torch.bfloat16, device=None)
    assert (model.latent_head is not None) == head
    model.freeze_vision(True)
    if lora:
        apply_lora(model)
    upcast_trainable(model)
    real = _real_bytes(model)
    plan = plan_memory(path, PlanInputs(stage="sft", gpus=1, lora=lora, lora_rank=16))
    assert plan.trainable == sum(p.numel() for p in model.parameters() if p.requires_grad)
    if not lora:  # (peft's adapters are parameters of the model, not of the base the plan counts)
        assert plan.parameters == sum(p.numel() for p in model.parameters())
    assert {k: plan.phases["step"][k] for k in real} == real


@pytest.mark.parametrize("lora", [False, True])
def test_sfts_kl_reference_is_counted_as_the_copy_it_holds(saved_tiny, lora):
    from fl1_core.reference import InitReference
    from fl1_core.sft import SFTConfig

    model, _ = load_future_l1(saved_tiny, dtype=torch.bfloat16, device=None)
    model.freeze_vision(True)
    if lora:
        apply_lora(model)
    reference = InitReference(model, lora=lora)
    held = (reference.lora.nbytes if lora else
            sum(p.numel() * p.element_size() for p in reference.copy.parameters()))
    cfg = SFTConfig.cpu_world(init_kl=0.5, lora={"r": 16} if lora else None, max_length=256)
    plan = plan_memory(saved_tiny, sft_plan_inputs(cfg, gpus=1))
    counted = plan.phases["step"]["reference_model"]
    if lora:  # the plan also counts the latent token rows, which peft keeps apart and the reference need not copy
        assert held <= counted <= 1.01 * held
    else:
        assert counted == held
    assert plan.phases["step"]["init_logits"] == cfg.per_device_batch_size * 256 * model.base.lm_head.weight.shape[0] * 4
    plain = plan_memory(saved_tiny, sft_plan_inputs(cfg.replace(init_kl=0.0), gpus=1))
    assert "reference_model" not in plain.phases["step"] and plan.total > plain.total
    for control in ("text", "pause"):  # the KL acts in latent mode only: the controls hold no reference
        other = plan_memory(saved_tiny, sft_plan_inputs(cfg, gpus=1, mode=control))
        assert "reference_model" not in other.phases["step"] and other.total == plain.total
    with pytest.raises(ValueError, match="unknown SFT mode"):
        sft_plan_inputs(cfg, gpus=1, mode="pixels")


def _capture_caches(model) -> tuple[list, object]:
    """The decode caches (the preallocated ones the steps write into; the prefill's own cache is copied into them)."""
    from fl1_core.decoding.prefill import WindowedStaticCache

    caches: list = []

    def hook(_mod, _args, kwargs):
        c = kwargs.get("past_key_values")
        if isinstance(c, WindowedStaticCache) and all(c is not seen for seen in caches):
            caches.append(c)

    return caches, model.base.model.language_model.register_forward_pre_hook(hook, with_kwargs=True)


def _cache_tensors(cache) -> tuple[int, int, int]:
    """(bytes of every key and value tensor, rows, allocated context) of a decoder's KV cache."""
    layers = [(layer.keys, layer.values) for layer in cache.layers]
    nbytes = sum(t.numel() * t.element_size() for kv in layers for t in kv)
    return nbytes, layers[0][0].shape[0], layers[0][0].shape[-2]


def _text_prompts(processor, n):
    from fl1_core.data.collator import PromptExample
    from fl1_core.data.prompt_inputs import encode_prompt

    return [encode_prompt(processor, PromptExample(str(i), "what happens next ?" + " next" * i)) for i in range(n)]


@pytest.mark.parametrize("lora", [False, True])
def test_plan_kv_cache_equals_the_cache_the_decoder_allocates(saved_tiny, lora):
    """A config's rollout batch per process, decoded by the library on the tiny model placed as the RL trainer
    places it: the first call's cache is the plan's ``rollout_rows`` rows, and its bytes are the plan's KV bytes."""
    from fl1_core.rl.rollout import generate_group_round

    cfg = RLConfig(group_size=2, prompts_per_step=2, rollout_batch_size=3, max_new_tokens=5, max_prompt_tokens=256,
                   lora={} if lora else None, latent={"loose_cap": 2, "force_initial_latent": True})
    inputs = rl_plan_inputs(cfg, gpus=1)
    assert inputs.rollout_rows == 3 and inputs.context == 256 + 5
    model, processor = load_future_l1(saved_tiny, dtype=torch.bfloat16, device=None)
    model.freeze_vision(cfg.freeze_vision)
    if lora:
        apply_lora(model)
    upcast_trainable(model)
    caches, handle = _capture_caches(model)
    try:
        with autocast(model):
            generate_group_round(model, _text_prompts(processor, 2), group_size=cfg.group_size, first_group_id=0,
                                 latent_config=model.latent_config.replace(loose_cap=2), max_new_tokens=5,
                                 temperature=0.9, top_p=0.99, seed=0, pad_id=0, batch_rows=cfg.rollout_batch_size)
    finally:
        handle.remove()
    measured = [_cache_tensors(c) for c in caches]
    assert max(len(p.input_ids) for p in _text_prompts(processor, 2)) <= cfg.max_prompt_tokens  # as filtered
    assert [rows for _, rows, _ in measured] == [3, 1]  # 4 rows per round in calls of rollout_batch_size
    nbytes, rows, context = measured[0]
    at = dataclasses.replace(inputs, prompt_tokens=context - inputs.max_new_tokens)  # the prompt this call had
    plan = plan_memory(saved_tiny, at)
    assert plan.phases["rollout"]["kv_cache"] == nbytes
    assert plan_memory(saved_tiny, inputs).phases["rollout"]["kv_cache"] >= nbytes  # the config's bound holds


def test_curation_rows_per_decode_call_and_kv_bytes_match_the_rollout_pass(saved_tiny):
    from fl1_core.curation import CurationConfig
    from fl1_core.curation.probes import _rollout_pass
    from fl1_core.data.collator import PromptExample

    cfg = CurationConfig(mode="rollouts", batch_size=2, n_rollouts=3, max_new_tokens=4)
    inputs = curation_plan_inputs(cfg, prompt_tokens=64)
    assert inputs.rollout_rows == 2 * 2 * 3
    model, processor = load_future_l1(saved_tiny, dtype=torch.bfloat16, device=None)
    prompts = [PromptExample(str(i), "what happens next ?") for i in range(2 * cfg.batch_size)]
    caches, handle = _capture_caches(model)
    try:
        _rollout_pass(model, processor, prompts, ["A"] * len(prompts), [True] * len(prompts), cfg, seed=0)
    finally:
        handle.remove()
    (nbytes, rows, context), = [_cache_tensors(c) for c in caches]
    assert rows == inputs.rollout_rows
    at = dataclasses.replace(inputs, prompt_tokens=context - cfg.max_new_tokens)
    assert plan_memory(saved_tiny, at).phases["decode"]["kv_cache"] == nbytes


def test_full_parameter_rl_on_8x80_fits_with_numbers_derived_by_hand():
    cfg = RLConfig.gpu_release(implementation="corrected")
    inputs = rl_plan_inputs(cfg, gpus=8, gpu_mem_gb=80)
    assert inputs.rollout_rows == 64 and inputs.micro_batch == 8 and inputs.context == 1024 + 2048
    plan = plan_memory("qwen3-vl-8b", inputs)
    n = plan.parameters
    assert plan.trainable == n  # RL trains everything, the vision tower included (the release's choice)
    base = meta_model("qwen3-vl-8b")
    unit = base.lm_head.weight.numel()  # 151936 x 4096: the largest FSDP unit
    roll, upd = plan.phases["rollout"], plan.phases["update"]
    assert roll["weights"] == math.ceil(4 * n / 8) and roll["optimizer"] == math.ceil(8 * n / 8)
    assert roll["reference_model"] == math.ceil(2 * n / 8)
    assert roll["rollout_weights"] == 2 * n  # one gathered bf16 copy per GPU, not in the update phase
    assert "rollout_weights" not in upd
    assert roll["kv_cache"] == 64 * 3072 * 2 * 36 * 8 * 128 * 2 == 27 * GIB
    assert roll["prefill"] == 64 * 1024 * 2 * (3 * 4096 + 3 * 12288)
    assert upd["gradients"] == math.ceil(4 * n / 8) and upd["fsdp_gradient_reduce"] == 6 * unit
    assert upd["activations"] == 8 * 3072 * (36 * 2 * 4096 + 2 * (10 * 4096 + 4 * 8 * 128 + 5 * 12288))
    assert plan.fits and plan.peak_phase == "rollout" and plan.total == sum(roll.values())
    # the review's figure: 64 rows of 3584 tokens per process need 31.5 GiB of KV cache
    wide = plan_memory("qwen3-vl-8b", dataclasses.replace(inputs, prompt_tokens=1536))
    assert wide.phases["rollout"]["kv_cache"] / GIB == pytest.approx(31.5)
    nosync = plan_memory("qwen3-vl-8b", dataclasses.replace(inputs, fsdp_sync_every_micro_batch=False))
    assert nosync.phases["update"]["fsdp_gradient_reduce"] == 2 * n  # every unsharded bf16 gradient kept
    replicated = plan_memory("qwen3-vl-8b", dataclasses.replace(inputs, gpus=1))
    assert not replicated.fits and replicated.phases["rollout"]["kv_cache"] == 2 * roll["kv_cache"]  # fp32 masters


def test_the_rl_sft_anchor_is_a_phase_of_one_sft_step_beside_the_update():
    plain = rl_plan_inputs(RLConfig.gpu_release(implementation="corrected"), gpus=8)
    assert plain.sft_anchor_rows == 0 and "sft_anchor" not in plan_memory("qwen3-vl-8b", plain).phases
    cfg = RLConfig.gpu_release(implementation="corrected", sft_anchor=0.5, sft_anchor_data="sft.json",
                               sft_anchor_batch=2)
    plan = plan_memory("qwen3-vl-8b", rl_plan_inputs(cfg, gpus=8, tokens_per_row=4096))
    anchor, upd = plan.phases["sft_anchor"], plan.phases["update"]
    sft = plan_memory("qwen3-vl-8b", dataclasses.replace(rl_plan_inputs(cfg, gpus=8), stage="sft", micro_batch=2,
                                                         tokens_per_row=4096)).phases["step"]
    assert anchor["activations"] == sft["activations"] and anchor["logits"] == sft["logits"] == 2 * 8192 * 151936 * 4
    assert anchor["gradients"] == upd["gradients"] and "logits_chunk" not in anchor  # freed before the update
    long = plan_memory("qwen3-vl-8b", rl_plan_inputs(dataclasses.replace(cfg, sft_anchor_batch=16), gpus=8))
    assert long.phases["sft_anchor"]["logits"] == 8 * anchor["logits"] and long.peak_phase == "sft_anchor"
    assert "sft_anchor_probe" not in plan.phases  # the uniform draw scores no probe
    drift = plan_memory("qwen3-vl-8b", rl_plan_inputs(dataclasses.replace(cfg, sft_anchor_draw="drift"), gpus=8,
                                                      tokens_per_row=4096))
    probe = drift.phases["sft_anchor_probe"]
    assert probe["logits"] == anchor["logits"] // 2 == 8192 * 151936 * 4  # no gradient of the logits
    assert "gradients" not in probe and probe["weights"] == anchor["weights"]
    assert probe["nograd_forward"] < anchor["activations"] and drift.total >= sum(probe.values())


def test_scheduled_sampling_and_projection_head_are_counted():
    from fl1_core.sft import SFTConfig

    cfg = SFTConfig.gpu_release()
    plain = plan_memory("qwen3-vl-8b", sft_plan_inputs(cfg, gpus=8))
    assert list(plain.phases) == ["step"]
    cfg.scheduled_sampling_p = 0.25  # the SFT field; read with getattr where the tree lacks it
    ss = plan_memory("qwen3-vl-8b", sft_plan_inputs(cfg, gpus=8))
    tokens = 4096
    assert list(ss.phases) == ["step"]  # the second pass keeps its graph: both passes' activations in the step
    assert ss.phases["step"]["scheduled_sampling_activations"] == plain.phases["step"]["activations"] > 0
    assert ss.phases["step"]["scheduled_sampling_inputs"] == tokens * 4096 * 2
    assert ss.total > plain.total
    head = plan_memory("qwen3-vl-8b", sft_plan_inputs(SFTConfig.gpu_release(), gpus=8, projection_head=True))
    extra = latent_head_params(4096, 2048)
    assert head.trainable - plain.trainable == extra and head.parameters - plain.parameters == extra
    assert head.phases["step"]["optimizer"] - plain.phases["step"]["optimizer"] == pytest.approx(extra, abs=8)


def test_qwen3_vl_8b_what_fits():
    sft_lora = plan_memory("qwen3-vl-8b", PlanInputs(stage="sft", gpus=1, gpu_mem_gb=80, lora=True))
    assert 8.7e9 < sft_lora.parameters < 8.8e9  # Qwen3-VL-8B-Instruct: 8.77 B parameters
    assert sft_lora.fits
    full_one = plan_memory("qwen3-vl-8b", PlanInputs(stage="sft", gpus=1, gpu_mem_gb=80))
    assert not full_one.fits and any("LoRA" in a for a in full_one.advice)
    assert "shard full fine-tuning over 4 GPUs" in full_one.advice[-1]  # the fewest GPUs whose plan fits
    assert not plan_memory("qwen3-vl-8b", PlanInputs(stage="sft", gpus=2)).fits
    full_eight = plan_memory("qwen3-vl-8b", PlanInputs(stage="sft", gpus=8, gpu_mem_gb=80))
    assert full_eight.fits and full_eight.bytes["optimizer"] * 8 == pytest.approx(full_one.bytes["optimizer"], rel=1e-6)
    no_ckpt = plan_memory("qwen3-vl-8b", PlanInputs(stage="sft", gpus=8, gradient_checkpointing=False))
    assert no_ckpt.bytes["activations"] > 10 * full_eight.bytes["activations"]


def test_cli_plan_derives_from_the_run_configs_and_exit_code_says_whether_it_fits(capsys):
    from fl1_core.cli import main

    assert main(["plan", "--model", "qwen3-vl-8b", "--gpus", "8", "--gpu-mem", "80", "--stage", "rl"]) == 0
    out = capsys.readouterr().out
    assert "FITS" in out and "rollout_weights" in out and "decode 64 rows x 3072 tokens" in out
    assert main(["plan", "--model", "qwen3-vl-8b", "--stage", "rl", "--gpus", "8", "--set",
                 "rollout_batch_size=32"]) == 0
    assert "decode 32 rows" in capsys.readouterr().out
    assert main(["plan", "--model", "qwen3-vl-8b", "--stage", "sft"]) == 3
    assert "DOES NOT FIT" in capsys.readouterr().out
    assert main(["plan", "--model", "qwen3-vl-8b", "--stage", "curation", "--set", "mode=rollouts",
                 "batch_size=32"]) == 3
    assert "CurationConfig.batch_size" in capsys.readouterr().out


def test_unknown_model_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        plan_memory(tmp_path, PlanInputs())
