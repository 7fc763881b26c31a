"""The SFT loop: learning, resume past a damaged checkpoint with equal weights, refused resumes, NaN stop, a full disk
while saving, rejects, text mode, frozen vision and the final checkpoint's decoding. Tiny model + ``WorldConfig.small()`` (24 SFT records)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from fl1_core.checkpoints import (
    STATE_FILE,
    DamagedCheckpointWarning,
    DiskFullError,
    ResumeMismatchError,
    checkpoint_dirs,
    latest_checkpoint,
)
from fl1_core.checkpoints import save_model
from fl1_core.data.formats import load_rl_records, load_sft_records
from fl1_core.model import load_future_l1
from fl1_core.sft import TIMING_KEYS, NonFiniteLossError, SFTConfig, format_report, run_sft, train_sft
from fl1_core.tiny import build_tiny_future_l1

# 6 optimizer steps of 2 micro-batches × 2 examples; checkpoints at steps 2, 4, 6
CFG = SFTConfig.cpu_world(
    per_device_batch_size=2, gradient_accumulation_steps=2, max_steps=6, save_every=2, keep_checkpoints=5,
    learning_rate=3e-3, warmup_ratio=0.2, progress_bar=False,
)
N_RECORDS = 12


class Killed(RuntimeError):
    """Stands in for SIGKILL: raised from inside a forward pass, mid optimizer step."""


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def world(small_world):
    return small_world


@pytest.fixture(scope="module")
def records(world):
    return list(load_sft_records(world / "sft.json").records)[:N_RECORDS]


@pytest.fixture(scope="module")
def reference_run(records, tmp_path_factory):
    """An uninterrupted latent run (the reference for the resume tests)."""
    out = tmp_path_factory.mktemp("ref")
    model, proc = build_tiny_future_l1(seed=0)
    result = train_sft(model, proc, records, CFG, out, mode="latent")
    return out, result


def _forward_counter(model, at: int, action):
    """A forward pre-hook calling ``action()`` on the ``at``-th forward (1-based)."""
    calls = {"n": 0}

    def hook(module, args, kwargs):
        calls["n"] += 1
        if calls["n"] == at:
            action()

    return model.register_forward_pre_hook(hook, with_kwargs=True)


def _strip_timing(rows):
    return [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in rows]


def _assert_same_run(out_a: Path, out_b: Path):
    wa, wb = load_file(out_a / "final" / "model.safetensors"), load_file(out_b / "final" / "model.safetensors")
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), f"weights differ at {k}"
    rows_a = [json.loads(line) for line in (out_a / "metrics.jsonl").read_text().splitlines()]
    rows_b = [json.loads(line) for line in (out_b / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows_b] == list(range(1, len(rows_a) + 1))
    assert _strip_timing(rows_a) == _strip_timing(rows_b)


def test_loss_decreases_and_metrics(reference_run):
    out, result = reference_run
    rows = result.metrics
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]
    for key in ("step", "data/epoch", "loss/total", "loss/ce", "loss/latent", "optim/lr", "optim/grad_norm",
                "time/tokens_per_s", "data/samples"):
        assert key in rows[0]
    assert rows[-1]["data/samples"] == 6 * 4
    assert rows[0]["data/latent_pairs"] > 0 and rows[0]["loss/latent"] > 0
    assert sum(r["loss/total"] for r in rows[-2:]) < sum(r["loss/total"] for r in rows[:2]) - 0.5
    # checkpoint contents: model, optimizer, scheduler, RNG, data order, config
    ckpt = latest_checkpoint(out)
    names = {p.name for p in ckpt.iterdir()}
    assert {"model.safetensors", "optimizer.bin", "custom_checkpoint_0.pkl", "random_states_0.pkl", STATE_FILE,
            "sft_config.json"} <= names
    state = json.loads((ckpt / STATE_FILE).read_text())
    assert state["step"] == 6 and state["identity"]["config"]["learning_rate"] == CFG.learning_rate
    assert state["files"]["model.safetensors"]["size"] == (ckpt / "model.safetensors").stat().st_size


def test_a_damaged_newest_checkpoint_is_set_aside_and_the_run_resumes_from_the_older_one(records, reference_run,
                                                                                           tmp_path):
    """Stopped after two checkpoints, the newest one's weights truncated (a bad copy): the re-run warns naming the
    file, sets the checkpoint aside, resumes from the older one and ends with the uninterrupted run's weights."""
    ref_out, _ = reference_run
    model, proc = build_tiny_future_l1(seed=0)
    hook = _forward_counter(model, 9, lambda: (_ for _ in ()).throw(Killed()))  # step 5, first micro-batch
    with pytest.raises(Killed):
        train_sft(model, proc, records, CFG, tmp_path, mode="latent")
    hook.remove()
    assert [p.name for p in checkpoint_dirs(tmp_path)] == ["step-00000002", "step-00000004"]
    weights = tmp_path / "checkpoints" / "step-00000004" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    model2, proc2 = build_tiny_future_l1(seed=0)  # a fresh process would rebuild the initial model
    with pytest.warns(DamagedCheckpointWarning, match=r"step-00000004/model\.safetensors: \d+ bytes"):
        result = train_sft(model2, proc2, records, CFG, tmp_path, mode="latent")
    assert result.resumed_from_step == 2
    assert (tmp_path / "checkpoints" / "step-00000004.damaged" / "model.safetensors").exists()
    _assert_same_run(ref_out, tmp_path)


def test_changed_config_is_refused_harmless_allowed(records, reference_run, tmp_path):
    ref_out, _ = reference_run
    out = tmp_path / "run"
    shutil.copytree(ref_out, out)
    model, proc = build_tiny_future_l1(seed=0)
    with pytest.raises(ResumeMismatchError, match="learning_rate"):
        train_sft(model, proc, records, CFG.replace(learning_rate=1e-3), out, mode="latent")
    with pytest.raises(ResumeMismatchError, match="mode"):
        train_sft(model, proc, records, CFG, out, mode="text")
    with pytest.raises(ResumeMismatchError, match="data_fingerprint"):
        train_sft(model, proc, records[:-1] + records[:1], CFG, out, mode="latent")
    result = train_sft(model, proc, records, CFG.replace(log_every=3, save_every=3), out, mode="latent")
    assert result.resumed_from_step == 6
    _assert_same_run(ref_out, out)


def test_nan_loss_stops_before_backward_with_last_checkpoint_intact(records, tmp_path):
    """The check comes before ``accelerator.backward`` (under DeepSpeed that call also steps the engine), and the
    last checkpoint stays the newest intact one."""
    from accelerate import Accelerator

    class Recording(Accelerator):
        backward_calls = 0

        def backward(self, loss, **kw):
            Recording.backward_calls += 1
            return super().backward(loss, **kw)

    model, proc = build_tiny_future_l1(seed=0)
    calls = {"n": 0}

    def poison(module, args, output):  # the 5th forward (step 3's first micro-batch) produces NaN logits
        calls["n"] += 1
        return output * float("nan") if calls["n"] == 5 else output

    model.base.lm_head.register_forward_hook(poison)
    with pytest.raises(NonFiniteLossError, match=r"non-finite loss.*step 3.*step-00000002"):
        train_sft(model, proc, records, CFG, tmp_path, mode="latent",
                  accelerator=Recording(gradient_accumulation_steps=CFG.gradient_accumulation_steps, cpu=True))
    assert Recording.backward_calls == 4  # the four finite micro-batches of steps 1-2, never the NaN one
    assert [p.name for p in checkpoint_dirs(tmp_path)] == ["step-00000002"]
    ckpt = latest_checkpoint(tmp_path)
    weights = load_file(ckpt / "model.safetensors")
    assert all(torch.isfinite(v).all() for v in weights.values())
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 2


def test_a_full_disk_while_saving_says_so_and_leaves_no_half_checkpoint(records, reference_run, tmp_path,
                                                                         disk_full_at):
    ref_out, _ = reference_run
    restore = disk_full_at(".step-00000004.tmp-")  # the step-4 checkpoint hits a full disk
    model, proc = build_tiny_future_l1(seed=0)
    with pytest.raises(DiskFullError) as info:
        train_sft(model, proc, records, CFG, tmp_path, mode="latent")
    msg = str(info.value)
    ckpt_root = tmp_path / "checkpoints"
    assert "the disk is full" in msg and str(ckpt_root) in msg and "re-run the same command" in msg
    assert f"last intact checkpoint is {ckpt_root / 'step-00000002'}" in msg
    needed = int(re.search(r"\(([\d,]+) bytes\)", msg).group(1).replace(",", ""))
    assert needed > (ckpt_root / "step-00000002" / "model.safetensors").stat().st_size  # weights + optimizer state
    assert sorted(p.name for p in ckpt_root.iterdir()) == ["step-00000002"]  # no half-written step-4, no temp dir
    restore()
    model2, proc2 = build_tiny_future_l1(seed=0)
    assert train_sft(model2, proc2, records, CFG, tmp_path, mode="latent").resumed_from_step == 2
    _assert_same_run(ref_out, tmp_path)


def test_corrupt_records_go_to_rejects(world, tmp_path):
    rows = json.loads((world / "sft.json").read_text())[:10]
    rows[1]["answer"] = ""  # blank answer
    rows[2]["reasoning_image"] = [99]  # index outside the pool
    rows[3]["video"] = "videos/missing.mp4"  # no such file
    del rows[4]["conversations"]  # missing field
    data = world / "sft_corrupt.json"
    data.write_text(json.dumps(rows))
    base = tmp_path / "base"
    model, proc = build_tiny_future_l1(seed=0)
    save_model(model, proc, base)
    cfg = CFG.replace(max_steps=1, gradient_accumulation_steps=1)
    result = run_sft(base, data, tmp_path / "out", cfg, mode="latent")
    rejects = [json.loads(line) for line in (tmp_path / "out" / "rejects.jsonl").read_text().splitlines()]
    bad_ids = {rows[i]["id"] for i in (1, 2, 3, 4)}
    assert {r["record_id"] for r in rejects} == bad_ids
    assert all(r["reason"] for r in rejects)
    assert result.num_examples == 6 and result.num_rejects == 4


def test_text_mode_has_no_latents(records, tmp_path):
    model, proc = build_tiny_future_l1(seed=0)
    latent_id = model.latent_config.latent_token_id
    seen = []
    model.register_forward_pre_hook(lambda m, a, k: seen.append(k), with_kwargs=True)
    cfg = CFG.replace(max_steps=2)
    result = train_sft(model, proc, records, cfg, tmp_path, mode="text")
    assert seen and all(not (k["input_ids"] == latent_id).any() for k in seen)
    assert all(k.get("pixel_values_latent") is None for k in seen)
    # the assistant turns (supervised tokens) hold no span tokens (the system prompt merely names them)
    span_ids = {model.latent_config.latent_start_id, model.latent_config.latent_end_id, latent_id}
    assert all(not (k["labels"] == i).any() for k in seen for i in span_ids)
    row = seen[0]["labels"][0]
    assert "</reason>" in proc.tokenizer.decode(row[row != -100])  # thoughts kept
    assert all(r["data/latent_pairs"] == 0 and r["loss/latent"] == 0.0 for r in result.metrics)
    assert result.metrics[-1]["loss/total"] == result.metrics[-1]["loss/ce"]


def test_vision_frozen_and_final_decodes(records, reference_run, world):
    from fl1_core.decoding import generate_with_latents
    from fl1_core.data.prompt_inputs import build_prompt_inputs
    from fl1_core.data.examples import text_only_prompt

    out, result = reference_run
    fresh, _ = build_tiny_future_l1(seed=0)
    before = fresh.base.model.visual.state_dict()
    after = result.model.base.model.visual.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    # the language model did change
    assert not torch.equal(fresh.base.lm_head.weight, result.model.base.lm_head.weight)
    model, proc = load_future_l1(out / "final")
    assert model.latent_config.latent_lambda == CFG.latent["latent_lambda"]
    inputs = build_prompt_inputs(proc, [text_only_prompt(r) for r in records[:2]])
    gen = generate_with_latents(model, inputs, max_new_tokens=6)
    assert len(gen.texts) == 2
    report = format_report(model, proc, records, n=2, max_new_tokens=6)
    assert report.n == 2 and 0.0 <= report.format_valid_rate <= 1.0
    heldout = load_rl_records(world / "heldout_mcq.jsonl").records  # notebook 03 reports on held-out items
    report = format_report(model, proc, heldout, n=3, max_new_tokens=6)
    assert report.n == 3 and len(report.samples) == 3

