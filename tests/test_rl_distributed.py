"""1-process and 2-process (torchrun, gloo) RL runs train the same model: DDP's bucketed gradient sum over processes
equals one process's full-batch gradient, and rank-invariant sampling draws the same responses. Under FSDP2 (the
shipped configs/accelerate/fsdp.yaml) the actor and the reference are sharded, rollouts decode a gathered copy, and
the run equals the 1-process one too; its sharded checkpoints resume."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import shutil

import pytest
import torch
from safetensors.torch import load_file

from fsdp_launch import fsdp_env

WORKER = Path(__file__).parent / "workers" / "rl_dist_worker.py"
COMPARED = ("reward/acc_all", "reward/overall", "loss/total", "loss/policy", "policy/kl", "policy/entropy",
            "optim/grad_norm", "rollout/response_len", "loss/tokens", "rollout/latent_spans", "sampling/train_responses",
            "sampling/kept_groups")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    from fl1_core.data.world import WorldConfig, generate_world
    from fl1_core.checkpoints import save_model
    from fl1_core.tiny import build_tiny_future_l1

    root = tmp_path_factory.mktemp("dist")
    generate_world(root / "world", seed=0, config=WorldConfig.small(rl_size=8))
    model, processor = build_tiny_future_l1(seed=0)
    save_model(model, processor, root / "model")
    return root


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> None:
    env = env or {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1", "FL1_DEVICE": "cpu"}
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-6000:]


def _torchrun(port: int) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port)]


def _args(inputs: Path) -> list[str]:
    return [str(WORKER), str(inputs / "model"), str(inputs / "world" / "rl.jsonl")]


def _rows(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def one_process(inputs):
    """The 1-process run every multi-process run is compared with."""
    _run([sys.executable, *_args(inputs), str(inputs / "p1")], inputs)
    return inputs / "p1"


@pytest.fixture(scope="module")
def fsdp_run(inputs):
    """2 processes under the FSDP launch environment: actor and reference sharded."""
    _run([*_torchrun(29535), *_args(inputs), str(inputs / "fsdp")], inputs, fsdp_env(2))
    return inputs / "fsdp"


def _same_run(p1: Path, p2: Path) -> None:
    """Same metrics and (within float rounding of a differently ordered gradient sum) the same final weights."""
    rows = {p1: _rows(p1), p2: _rows(p2)}
    assert len(rows[p1]) == len(rows[p2]) == 2
    for a, b in zip(rows[p1], rows[p2]):
        for key in COMPARED:
            assert key in a and key in b, key
            assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-5), (key, a[key], b[key])
    assert rows[p1][-1]["optim/grad_norm"] > 0
    w1 = load_file(p1 / "final" / "model.safetensors")
    w2 = load_file(p2 / "final" / "model.safetensors")
    w0 = load_file(p1.parent / "model" / "model.safetensors")
    assert w1.keys() == w2.keys()
    moved = max(float((w1[k].float() - w0[k].float()).abs().max()) for k in w1)
    assert moved > 1e-4  # the updates did something
    # Adam divides by sqrt(v): a weight whose gradient is near zero moves by an amount that float rounding (the
    # gradient summed in another order by 2 processes, on another CPU's SIMD kernels) can change by ~1e-5. So: nearly
    # every weight agrees tightly, and every weight agrees to within two steps' learning rate (a gradient at rounding
    # level can take the opposite sign in the other run, and Adam's first steps move it by ±lr whatever its size).
    for k in w1:
        torch.testing.assert_close(w2[k], w1[k], atol=2e-3, rtol=0, msg=lambda m, k=k: f"{k}: {m}")
        loose = ~torch.isclose(w2[k].float(), w1[k].float(), atol=2e-5, rtol=1e-4)
        assert int(loose.sum()) <= max(1, w1[k].numel() // 1000), (k, int(loose.sum()), w1[k].numel())


@pytest.mark.slow
def test_one_and_two_processes_train_the_same_model(inputs, one_process):
    _run([*_torchrun(29533), *_args(inputs), str(inputs / "p2")], inputs)
    _same_run(one_process, inputs / "p2")


@pytest.mark.slow
def test_fsdp_two_processes_train_the_same_model(one_process, fsdp_run):
    _same_run(one_process, fsdp_run)
    state = json.loads((fsdp_run / "checkpoints" / "step-00000002" / "trainer_state.json").read_text())
    assert state["identity"]["world_size"] == 2 and state["identity"]["config"]["fsdp_sharded"] is True
    assert any(name.startswith("sharded/") for name in state["files"])  # the shards' sha256 and size recorded
    shards = sorted(p.name for p in (fsdp_run / "checkpoints" / "step-00000002" / "sharded").iterdir())
    assert ".metadata" in shards and len([n for n in shards if n.endswith(".distcp")]) == 2  # one per process


@pytest.mark.slow
def test_fsdp_sharded_checkpoint_resumes(inputs, fsdp_run):
    """A copy of the FSDP run cut back to its step-1 checkpoint (as if killed during step 2) resumes from the
    sharded model and optimiser state and ends where the uninterrupted run ended."""
    cut = inputs / "fsdp_cut"
    shutil.copytree(fsdp_run, cut)
    shutil.rmtree(cut / "checkpoints" / "step-00000002")
    shutil.rmtree(cut / "final")
    _run([*_torchrun(29537), *_args(inputs), str(cut)], inputs, fsdp_env(2))
    assert json.loads((cut / "checkpoints" / "step-00000002" / "trainer_state.json").read_text())["step"] == 2
    for a, b in zip(_rows(fsdp_run), _rows(cut)):
        for key in COMPARED:
            assert b[key] == pytest.approx(a[key], rel=1e-6, abs=1e-7), (key, a[key], b[key])
    w1 = load_file(fsdp_run / "final" / "model.safetensors")
    w2 = load_file(cut / "final" / "model.safetensors")
    w0 = load_file(inputs / "model" / "model.safetensors")
    step2 = max(float((w1[k].float() - w0[k].float()).abs().max()) for k in w1)
    assert step2 > 1e-4
    for k in w1:  # the resumed step repeats the same arithmetic on the same processes
        torch.testing.assert_close(w2[k], w1[k], atol=1e-6, rtol=0, msg=lambda m, k=k: f"{k}: {m}")


@pytest.mark.slow
def test_the_sft_anchor_trains_the_same_model_under_ddp_and_fsdp(inputs, fsdp_run):
    """The anchor's gradient is the mean over processes under DDP (averaged) and FSDP (summed, then divided by P):
    two anchored 2-process runs, one per wrapper, train the same model, and not the model of the run without it."""
    anchor = {"FL1_TEST_SFT_ANCHOR": str(inputs / "world" / "sft.json")}
    ddp_env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1", "FL1_DEVICE": "cpu", **anchor}
    _run([*_torchrun(29539), *_args(inputs), str(inputs / "ddp_anchor")], inputs, ddp_env)
    _run([*_torchrun(29541), *_args(inputs), str(inputs / "fsdp_anchor")], inputs, {**fsdp_env(2), **anchor})
    _same_run(inputs / "ddp_anchor", inputs / "fsdp_anchor")
    ddp_rows, fsdp_rows = _rows(inputs / "ddp_anchor"), _rows(inputs / "fsdp_anchor")
    for a, b in zip(ddp_rows, fsdp_rows):
        assert a["loss/sft_anchor"] > 0
        assert b["loss/sft_anchor"] == pytest.approx(a["loss/sft_anchor"], rel=1e-4)
    w_plain = load_file(fsdp_run / "final" / "model.safetensors")
    w_anchor = load_file(inputs / "fsdp_anchor" / "final" / "model.safetensors")
    assert max(float((w_anchor[k].float() - w_plain[k].float()).abs().max()) for k in w_plain) > 1e-3


@pytest.mark.slow
def test_the_drift_draw_probes_and_trains_the_same_under_ddp_and_fsdp(inputs):
    """The drift draw's probe runs through the sharded actor on every process: DDP and FSDP runs log the same probe
    losses and weights, and train the same model."""
    anchor = {"FL1_TEST_SFT_ANCHOR": str(inputs / "world" / "sft.json"), "FL1_TEST_SFT_ANCHOR_DRIFT": "1"}
    ddp_env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1", "FL1_DEVICE": "cpu", **anchor}
    _run([*_torchrun(29543), *_args(inputs), str(inputs / "ddp_drift")], inputs, ddp_env)
    _run([*_torchrun(29545), *_args(inputs), str(inputs / "fsdp_drift")], inputs, {**fsdp_env(2), **anchor})
    _same_run(inputs / "ddp_drift", inputs / "fsdp_drift")
    probes = [[json.loads(x) for x in (inputs / run / "sft_anchor_drift.jsonl").read_text().splitlines()]
              for run in ("ddp_drift", "fsdp_drift")]
    assert len(probes[0]) == len(probes[1]) and {r["step"] for r in probes[0]} == {0, 1}
    for a, b in zip(*probes):
        assert (a["step"], a["group"]) == (b["step"], b["group"])
        assert b["ce"] == pytest.approx(a["ce"], rel=1e-4) and b["weight"] == pytest.approx(a["weight"], abs=1e-3)
