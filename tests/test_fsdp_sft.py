"""SFT under FSDP2 (the shipped configs/accelerate/fsdp.yaml, 2 processes, gloo, CPU) trains the same model as one
process: every decoder layer, vision block, the embedding and lm_head are their own shard units, gradients are
reduced in fp32, and metrics and final weights equal the 1-process run's within float tolerance."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from fsdp_launch import fsdp_env

WORKER = Path(__file__).parent / "workers" / "sft_fsdp_worker.py"
COMPARED = ("loss/total", "loss/ce", "loss/latent", "optim/grad_norm", "data/latent_pairs", "data/tokens")


def test_fsdp_settings_reduce_in_fp32_every_micro_batch(monkeypatch):
    from fl1_core.distributed import accelerator_settings

    assert "fsdp_plugin" not in accelerator_settings("bf16", 16)  # no FSDP launch: plain settings
    for key, value in fsdp_env(2).items():
        if key.startswith(("FSDP_", "ACCELERATE_USE_FSDP")):
            monkeypatch.setenv(key, value)
    settings = accelerator_settings("bf16", 16)
    policy = settings["fsdp_plugin"].mixed_precision_policy
    assert (policy.param_dtype, policy.reduce_dtype) == (torch.bfloat16, torch.float32)
    assert settings["gradient_accumulation_plugin"].sync_each_batch
    assert settings["gradient_accumulation_plugin"].num_steps == 16
    assert settings["fsdp_plugin"].transformer_cls_names_to_wrap == ["Qwen3VLTextDecoderLayer", "Qwen3VLVisionBlock"]
    fp32 = accelerator_settings("no", 2)["fsdp_plugin"].mixed_precision_policy
    assert (fp32.param_dtype, fp32.reduce_dtype) == (None, torch.float32)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    from fl1_core.data.world import WorldConfig, generate_world
    from fl1_core.checkpoints import save_model
    from fl1_core.tiny import build_tiny_future_l1

    root = tmp_path_factory.mktemp("fsdp_sft")
    generate_world(root / "world", seed=0, config=WorldConfig.small(rl_size=8))
    model, processor = build_tiny_future_l1(seed=0)
    save_model(model, processor, root / "model")
    return root


def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> None:
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-6000:]


@pytest.mark.slow
def test_fsdp_two_processes_train_the_same_model_as_one(inputs):
    args = [str(inputs / "model"), str(inputs / "world" / "sft.json")]
    plain = {**fsdp_env(2), "ACCELERATE_USE_FSDP": "false"}
    _run([sys.executable, str(WORKER), *args, str(inputs / "p1"), "4"], inputs, plain)  # 2 × 4 micro-batches
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29547"]
    _run([*torchrun, str(WORKER), *args, str(inputs / "p2"), "2"], inputs, fsdp_env(2))  # 2 × 2 × 2 processes

    info = json.loads((inputs / "p2" / "fsdp.json").read_text())
    assert json.loads((inputs / "p1" / "fsdp.json").read_text())["units"] == {}
    units = info["units"]
    for name in ("", "base.model.language_model.embed_tokens", "base.lm_head", "base.model.visual.blocks.0",
                 *(f"base.model.language_model.layers.{i}" for i in range(4))):
        assert name in units, (name, sorted(units))
    assert {u["reduce_dtype"] for u in units.values()} == {"torch.float32"}
    assert info["sharded_params"] == info["params"]

    rows = {p: [json.loads(x) for x in (inputs / p / "metrics.jsonl").read_text().splitlines()] for p in ("p1", "p2")}
    assert len(rows["p1"]) == len(rows["p2"]) == 2
    for a, b in zip(rows["p1"], rows["p2"]):
        for key in COMPARED:
            assert b[key] == pytest.approx(a[key], rel=1e-5, abs=1e-6), (key, a[key], b[key])
    assert (inputs / "p2" / "checkpoints" / "step-00000002" / "pytorch_model_fsdp_0").is_dir()  # sharded state
    w0 = load_file(inputs / "model" / "model.safetensors")
    w1 = load_file(inputs / "p1" / "final" / "model.safetensors")
    w2 = load_file(inputs / "p2" / "final" / "model.safetensors")
    assert w1.keys() == w2.keys()
    assert max(float((w1[k].float() - w0[k].float()).abs().max()) for k in w1) > 1e-3  # lr 3e-3 moved weights
    for k in w1:  # Adam's first steps move each weight by about lr: rounding differences stay far below it
        torch.testing.assert_close(w2[k], w1[k], atol=3e-5, rtol=0, msg=lambda m, k=k: f"{k}: {m}")
