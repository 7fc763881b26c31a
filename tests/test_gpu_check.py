"""``scripts/gpu_check.sh --tiny``: the GPU device check's code path, run on the CPU with tiny shapes; and its pure
functions (the decode bound without the embedding, the RL round's config and its plan)."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def check():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "scripts" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses resolve their annotations through sys.modules
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


def test_decode_bound_reads_weights_without_the_embedding_and_the_kv_cache(check, tiny):
    model, _ = tiny
    text = {n: p for n, p in model.base.named_parameters() if not n.startswith("model.visual.")}
    embed = model.base.get_input_embeddings().weight
    stored = sum(p.numel() * p.element_size() for p in text.values())
    assert check.decode_weight_bytes(model) == stored - embed.numel() * embed.element_size()
    assert check.decode_bound_ms(4_000, 1_000, 1e6) == pytest.approx(5.0)  # 5000 B at 1 MB/s: 5 ms
    assert check.decode_bound_ms(4_000, 1_000, None) is None
    assert check.ratio(2.0, 4.0) == 0.5 and check.ratio(None, 4.0) is None and check.ratio(1.0, 0) is None


@pytest.mark.parametrize("name", ["tiny", "gpu"])
def test_rl_round_config_is_what_the_plan_sizes(check, name):
    from fl1_core.memory_plan import plan_memory
    from fl1_core.run_plan import rl_plan_inputs

    sizes = check.SIZES[name]
    cfg = check.rl_check_config(sizes)
    inputs = rl_plan_inputs(cfg, gpus=1, gpu_mem_gb=141)
    assert (inputs.rollout_rows, inputs.micro_batch) == (sizes.rl_rows, sizes.rl_micro)
    assert inputs.context == sizes.rl_prompt + sizes.rl_new and inputs.lora and not inputs.kl_reference
    if name == "gpu":  # the 8B round fits one 141 GB H200 by the plan, with room for what the plan leaves out
        plan = plan_memory("qwen3-vl-8b", inputs)
        assert plan.fits and plan.total < 0.75 * plan.budget
        assert sizes.decode_rows == 64 and 2900 <= sizes.decode_prompt + sizes.decode_steps <= 3200  # 64 x ~3k


@pytest.mark.slow
def test_gpu_check_tiny_runs_every_part_and_writes_its_json(tmp_path):
    out = tmp_path / "gpu_check.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh"), "--tiny", "--out", str(out)], cwd=ROOT,
                         env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-4000:]
    result = json.loads(out.read_text())
    assert result["tiny"] is True and result["parameters"] > result["text_parameters"] > 0
    sft, rl = result["sft"], result["rl_round"]
    assert sft["tokens_per_s"] > 0 and sft["flops_per_token"] > 4 * result["text_parameters"]
    assert sft["loss_last"] < sft["loss_first"]  # the LoRA steps train
    one, many = result["decode_batch1"], result["decode_rollout"]
    assert one["rows"] == 1 and many["rows"] == result["sizes"]["decode_rows"] > 1
    assert many["kv_bytes_read"] == many["rows"] * one["kv_bytes_read"] > 0
    assert one["ms_per_step"] > 0 and many["ms_per_step"] > 0
    assert math.isfinite(rl["loss"]) and rl["rollout_rows"] == result["sizes"]["rl_rows"]
    assert set(rl["plan_gib"]) == {"rollout", "update"} and all(v > 0 for v in rl["plan_gib"].values())
    assert sft["mfu"] is None and one["bound_ratio"] is None  # no GPU peak on a CPU: not invented
    assert rl["measured_over_plan"] == {"rollout": None, "update": None}
    assert result["attention"]["sdpa"]["decode"] > 0 and "skipped" in result["attention"]["flash_attention_2"]
    static = result["static_decode"]
    for rows in ("rows_2", "rows_4"):
        assert set(static[rows]) == {"reference", "static", "static_step_ratio", "static_rollout_ratio"}  # eager
        assert static[rows]["static_rollout_ratio"] > 0 and static[rows]["reference"]["rollout_s"] > 0
