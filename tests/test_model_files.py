"""Trained-model folders: final/ weights in the dtype the config states (also from an FSDP-gathered fp32 state), and
adapter folders that find their base after the SFT → RL chain is moved (relative path, or name + fingerprint)."""

from __future__ import annotations

import json
import shutil
from types import SimpleNamespace

import pytest
import torch
from safetensors import safe_open

from fl1_core.adapters import apply_lora
from fl1_core.checkpoints import adapter_base_path, folder_fingerprint, save_model, stated_dtype
from fl1_core.model import load_future_l1
from fl1_core.runs import atomic_directory

pytestmark = pytest.mark.usefixtures("one_thread")


def _logits(model, processor):
    ids = processor.tokenizer(["the ball falls", "a cube slides"], return_tensors="pt", padding=True)
    with torch.no_grad():
        return model(input_ids=ids.input_ids, attention_mask=ids.attention_mask).logits


def _train_a_little(model, seed: int):
    """LoRA on the model with non-zero adapters and a moved lm_head (what training leaves)."""
    apply_lora(model, None)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n or "trainable_tokens_delta" in n or n == "base.lm_head.weight":
                p.add_(torch.randn(p.shape, generator=g) * 0.05)
    return model


def _save(model, processor, path):
    with atomic_directory(path) as tmp:  # as the trainers write final/
        save_model(model, processor, tmp)


def _safetensors_dtypes(folder) -> set[str]:
    out = set()
    for f in folder.glob("*.safetensors"):
        with safe_open(str(f), "pt") as fh:
            out |= {str(fh.get_slice(k).get_dtype()) for k in fh.keys()}
    return out


@pytest.fixture
def chain(saved_tiny, tmp_path):
    """runs/base (a checkpoint) → runs/sft/final (adapter) → runs/rl/final (adapter on the merged SFT one)."""
    root = tmp_path / "runs"
    shutil.copytree(saved_tiny, root / "base")
    sft, processor = load_future_l1(root / "base", device=None)
    _save(_train_a_little(sft, 1), processor, root / "sft" / "final")
    rl, processor = load_future_l1(root / "sft" / "final", device=None)
    _save(_train_a_little(rl, 2), processor, root / "rl" / "final")
    return root, _logits(rl, processor)


def test_a_moved_sft_to_rl_adapter_chain_loads(chain, tmp_path):
    root, logits = chain
    record = json.loads((root / "rl" / "final" / "adapter_config.json").read_text())["future_l1_base"]
    assert record["relative"] == "../sft/final" and record["name"] == "final"
    moved = tmp_path / "elsewhere" / "runs"
    shutil.move(str(root), str(moved))  # the absolute paths recorded inside no longer exist
    assert adapter_base_path(moved / "rl" / "final") == (moved / "sft" / "final").resolve()
    model, processor = load_future_l1(moved / "rl" / "final", device=None)
    torch.testing.assert_close(_logits(model, processor), logits, atol=1e-5, rtol=0)


def test_a_base_kept_elsewhere_is_found_by_name_and_fingerprint(saved_tiny, tmp_path, monkeypatch):
    monkeypatch.delenv("FL1_MODEL_DIRS", raising=False)
    shutil.copytree(saved_tiny, tmp_path / "ckpt" / "qwen")
    model, processor = load_future_l1(tmp_path / "ckpt" / "qwen", device=None)
    _save(_train_a_little(model, 3), processor, tmp_path / "runs" / "sft" / "final")
    logits = _logits(model, processor)
    shutil.move(str(tmp_path / "ckpt" / "qwen"), str(tmp_path / "models" / "qwen"))  # the base moved on its own
    adapter = tmp_path / "runs" / "sft" / "final"
    with pytest.raises(FileNotFoundError, match="FL1_MODEL_DIRS"):
        load_future_l1(adapter, device=None)
    monkeypatch.setenv("FL1_MODEL_DIRS", str(tmp_path / "models"))
    reloaded, proc = load_future_l1(adapter, device=None)
    torch.testing.assert_close(_logits(reloaded, proc), logits, atol=1e-5, rtol=0)
    # other weights under the same name are refused, not loaded
    from fl1_core.tiny import build_tiny_future_l1

    other, other_proc = build_tiny_future_l1(seed=1)
    shutil.rmtree(tmp_path / "models" / "qwen")
    save_model(other, other_proc, tmp_path / "models" / "qwen")
    assert folder_fingerprint(tmp_path / "models" / "qwen") != folder_fingerprint(saved_tiny)
    with pytest.raises(FileNotFoundError, match="fingerprint differs"):
        adapter_base_path(adapter)


def test_sft_final_is_saved_in_the_dtype_the_config_states(saved_tiny, small_world, tmp_path):
    from fl1_core.data.formats import load_sft_records
    from fl1_core.sft import SFTConfig, train_sft

    records = list(load_sft_records(small_world / "sft.json").records)[:4]
    model, processor = load_future_l1(saved_tiny, dtype=torch.bfloat16, device=None)
    assert stated_dtype(model) == torch.bfloat16
    cfg = SFTConfig.cpu_world(per_device_batch_size=2, gradient_accumulation_steps=1, max_steps=1, save_every=0,
                              learning_rate=1e-3, warmup_ratio=0.0, progress_bar=False)
    result = train_sft(model, processor, records, cfg, tmp_path, mode="latent")
    assert result.model.base.lm_head.weight.dtype == torch.float32  # trained as fp32 master weights
    final = result.final_dir
    assert json.loads((final / "config.json").read_text())["dtype"] == "bfloat16"
    assert _safetensors_dtypes(final) == {"BF16"}
    reloaded, _ = load_future_l1(final, device=None)
    assert torch.equal(reloaded.base.lm_head.weight, result.model.base.lm_head.weight.detach().bfloat16())
    assert result.model.base.config.dtype == torch.bfloat16  # saving left the live config as it was


def test_fsdp_final_writes_the_gathered_fp32_state_in_the_configs_dtype(saved_tiny, tmp_path):
    """The FSDP branch of SFT's final save gets the gathered state (fp32 master weights) from the accelerator."""
    from accelerate.utils import DistributedType

    from fl1_core.sft import save_final_model

    model, processor = load_future_l1(saved_tiny, dtype=torch.bfloat16, device=None)
    gathered = {k: v.float() + 1e-3 for k, v in model.state_dict().items()}  # fp32, moved off the bf16 grid
    fsdp = SimpleNamespace(distributed_type=DistributedType.FSDP, is_main_process=True, unwrap_model=lambda m: m,
                           get_state_dict=lambda m: gathered, wait_for_everyone=lambda: None)
    save_final_model(fsdp, model, processor, tmp_path / "final")
    assert _safetensors_dtypes(tmp_path / "final") == {"BF16"}
    assert json.loads((tmp_path / "final" / "config.json").read_text())["dtype"] == "bfloat16"
    reloaded, _ = load_future_l1(tmp_path / "final", device=None)
    want = gathered["base.lm_head.weight"].bfloat16()
    assert torch.equal(reloaded.base.lm_head.weight, want)
