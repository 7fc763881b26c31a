"""``scripts/gpu_check.sh --tiny``: the GPU device check's code path, run on the CPU with tiny shapes."""

from __future__ import annotations

import json
import math
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_tiny_runs_every_part_and_writes_its_json(tmp_path):
    out = tmp_path / "gpu_check.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh"), "--tiny", "--out", str(out)], cwd=ROOT,
                         env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-4000:]
    result = json.loads(out.read_text())
    assert result["tiny"] is True and result["parameters"] > result["text_parameters"] > 0
    sft, decode, rl = result["sft"], result["decode"], result["rl_update"]
    assert sft["tokens_per_s"] > 0 and sft["flops_per_token"] > 4 * result["text_parameters"]
    assert sft["loss_last"] < sft["loss_first"]  # the LoRA steps train
    assert decode["ms_per_step"] > 0 and decode["new_tokens"] > 1
    assert math.isfinite(rl["loss"]) and rl["seconds"] > 0
    static = result["static_decode"]
    for rows in ("rows_2", "rows_4"):
        assert set(static[rows]) == {"reference", "static", "static_step_ratio", "static_rollout_ratio"}  # eager
        assert static[rows]["static_rollout_ratio"] > 0 and static[rows]["reference"]["rollout_s"] > 0
    assert sft["mfu"] is None and decode["bound_ratio"] is None  # no GPU peak on a CPU: not invented
