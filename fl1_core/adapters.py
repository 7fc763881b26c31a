"""LoRA adapters (peft) for SFT and RL, so one 80 GB GPU can run the 8B pipeline.

Adapters are injected *in place* into ``model.base`` (``peft.inject_adapter_in_model``): the model stays a
:class:`~fl1_core.model.FutureL1Model` around a plain ``Qwen3VLForConditionalGeneration``, so every code path
(latent decoding, replay, the collator) is unchanged. What trains under LoRA:

- low-rank ``ΔW = (α / r) · B A`` on the language model's attention and MLP projections (the vision tower and merger
  stay frozen, as in the paper's SFT and RL);
- the embedding rows of the three latent tokens (peft's trainable tokens; the other rows stay exactly as loaded);
- ``lm_head`` and the latent projection head, in full.

An adapter folder (``save_adapter``) holds ``adapter_config.json`` (peft's, plus where its base is), the adapter
weights (``adapter_model.safetensors``), ``lm_head`` and latent head weights, and the processor.
:func:`fl1_core.model.load_future_l1` loads such a folder: its base, then the adapter. :func:`merge_lora` folds the
adapters into the weights (``W ← W + ΔW``) and removes them.

The base is recorded three ways (``future_l1_base``): its path relative to the adapter folder's parent (an SFT → RL
chain moved or copied as one tree still loads), its absolute path (peft's ``base_model_name_or_path``), and its
name with a :func:`fl1_core.model_files.folder_fingerprint`. :func:`adapter_base_path` tries the relative path, the
absolute one, then ``<dir>/<name>`` for each folder of ``$FL1_MODEL_DIRS`` (a base kept elsewhere on another
machine), and takes the first whose fingerprint matches.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from .model_files import folder_fingerprint, save_model_folder

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
FULL_WEIGHTS = "adapter_full_modules.safetensors"  # lm_head and the latent head, trained in full
BASE_KEY = "base_model_name_or_path"
BASE_RECORD = "future_l1_base"  # {"relative": path from the folder's parent, "name": ..., "fingerprint": ...}
MODEL_DIRS_ENV = "FL1_MODEL_DIRS"  # more folders to look for a base in, by its name (os.pathsep-separated)

# the language model's projections (not the vision tower's qkv / proj / mlp)
_TARGETS = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"


@dataclass
class LoraSettings:
    """LoRA hyper-parameters: rank ``r``, scale ``alpha / r``, dropout, and which projections get adapters."""

    r: int = 16
    alpha: int = 32
    dropout: float = 0.0
    target_modules: str | list[str] = field(default=_TARGETS)
    train_lm_head: bool = True
    train_latent_rows: bool = True

    @classmethod
    def from_dict(cls, d: dict[str, Any] | bool | None) -> "LoraSettings":
        if d is True or d is None:
            return cls()
        unknown = sorted(set(d) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"LoRA settings: unknown key(s) {unknown}; known: {sorted(cls.__dataclass_fields__)}")
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _latent_ids(model) -> list[int]:
    lc = model.latent_config
    return [int(lc.latent_token_id), int(lc.latent_start_id), int(lc.latent_end_id)]


def _peft_config(model, settings: LoraSettings):
    from peft import LoraConfig

    extra = {"trainable_token_indices": {"embed_tokens": _latent_ids(model)}} if settings.train_latent_rows else {}
    return LoraConfig(r=settings.r, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
                      target_modules=settings.target_modules, **extra)


def has_lora(model) -> bool:
    """True when ``model`` carries peft adapter layers."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    return any(isinstance(m, BaseTunerLayer) for m in model.modules())


def apply_lora(model, settings: LoraSettings | None = None):
    """Inject LoRA adapters into ``model.base`` in place and set what trains (see the module docstring).
    Adapters the model already carries (an SFT adapter under RL) are merged into its weights first, so new ones
    train on top of them. Returns ``model``. The optimizer must be built afterwards."""
    from peft import inject_adapter_in_model

    settings = settings or LoraSettings()
    if has_lora(model):
        merge_lora(model)
    for p in model.parameters():
        p.requires_grad_(False)
    inject_adapter_in_model(_peft_config(model, settings), model.base)
    if settings.train_lm_head:
        model.base.lm_head.weight.requires_grad_(True)
    if model.latent_head is not None:
        for p in model.latent_head.parameters():
            p.requires_grad_(True)
    model.lora_settings = settings
    return model


def _tuner_layers(model) -> Iterator[Any]:
    """peft's adapter layers and trainable-token wrappers of ``model``."""
    from peft.tuners.tuners_utils import BaseTunerLayer
    from peft.utils.other import TrainableTokensWrapper

    for m in model.modules():
        if isinstance(m, (BaseTunerLayer, TrainableTokensWrapper)):
            yield m


def fully_trained_parameters(model) -> dict[str, torch.nn.Parameter]:
    """The trainable parameters outside peft's adapter layers, by name: what trains in full under LoRA (``lm_head``,
    the latent head). The latent token rows are not among them: peft keeps their trained values apart from the
    embedding, which stays as loaded."""
    inside = {id(p) for m in _tuner_layers(model) for p in m.parameters()}
    return {n: p for n, p in model.named_parameters() if p.requires_grad and id(p) not in inside}


@contextlib.contextmanager
def adapters_disabled(model):
    """Within the block ``model`` computes with the base weights of its adapted layers and the latent token rows as
    loaded; tensors that train in full (:func:`fully_trained_parameters`) keep their current values (the RL
    reference swaps those too: :class:`fl1_core.rl.reference.LoraReference`). A model without adapters is unchanged."""
    layers = list(_tuner_layers(model))
    for m in layers:
        m.enable_adapters(False)
    try:
        yield model
    finally:
        for m in layers:
            m.enable_adapters(True)


def merge_lora(model):
    """Fold every adapter into its base weight (``W ← W + ΔW``; latent rows written into the embedding) and
    replace the peft layers by plain modules. Returns ``model``."""
    from peft.utils.other import TrainableTokensWrapper

    for name, module in list(model.named_modules()):
        if isinstance(module, TrainableTokensWrapper):
            plain = module.unload_and_optionally_merge_module(merge=True, safe_merge=False, adapter_names=None)
        elif hasattr(module, "merge") and hasattr(module, "get_base_layer") and hasattr(module, "lora_A"):
            module.merge()
            plain = module.get_base_layer()
        else:
            continue
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, child, plain)
    if "peft_config" in vars(model.base):  # set by inject_adapter_in_model; stale once merged
        del model.base.peft_config
    model.lora_settings = None
    return model


def adapter_state_dict(model) -> dict[str, torch.Tensor]:
    """The adapter weights (peft's naming, relative to ``model.base``)."""
    from peft import get_peft_model_state_dict

    return {k: v.detach().cpu().contiguous() for k, v in get_peft_model_state_dict(model.base).items()}


def save_adapter(model, processor, path: str | Path, base_path: str | Path) -> Path:
    """Write an adapter folder that :func:`fl1_core.model.load_future_l1` reads (``base_path``: the checkpoint the
    adapters were trained on)."""
    from safetensors.torch import save_file

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    settings = getattr(model, "lora_settings", None) or LoraSettings()
    config = _peft_config(model, settings).to_dict()
    config = {k: (sorted(v) if isinstance(v, set) else v) for k, v in config.items()}
    base = Path(base_path).resolve()
    config[BASE_KEY] = str(base)
    try:  # the tmp folder of an atomic save is a sibling of the final one: the same path from the parent
        relative = os.path.relpath(base, path.resolve().parent)
    except ValueError:  # another drive (Windows)
        relative = None
    config[BASE_RECORD] = {"relative": relative, "name": base.name, "fingerprint": folder_fingerprint(base)}
    config["future_l1_lora"] = settings.to_dict()
    (path / ADAPTER_CONFIG).write_text(json.dumps(config, indent=2, default=str), encoding="utf-8")
    save_file(adapter_state_dict(model), str(path / ADAPTER_WEIGHTS))
    full = {}
    if settings.train_lm_head:
        full["lm_head.weight"] = model.base.lm_head.weight.detach().cpu().contiguous()
    if model.latent_head is not None:
        full.update({f"latent_head.{k}": v.detach().cpu().contiguous()
                     for k, v in model.latent_head.state_dict().items()})
    save_file(full, str(path / FULL_WEIGHTS))
    processor.save_pretrained(path)
    return path


def save_trained(model, processor, path: str | Path, *, merge: bool = False) -> Path:
    """Save a trained model: a full checkpoint in the dtype its config states, or with adapters an adapter folder on
    top of the checkpoint the model was loaded from (``merge=True``, or no known base: merged into a full
    checkpoint)."""
    base = getattr(model, "source_path", None)
    if has_lora(model) and not merge and base is not None:
        return save_adapter(model, processor, path, base)
    if has_lora(model):
        merge_lora(model)
    return save_model_folder(model, processor, path)


def is_adapter_dir(path: str | Path) -> bool:
    return (Path(path) / ADAPTER_CONFIG).is_file()


def load_adapter(model, path: str | Path):
    """Inject the adapters saved in ``path`` into ``model`` (loaded from the folder's base) and load their weights."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    path = Path(path)
    config = json.loads((path / ADAPTER_CONFIG).read_text(encoding="utf-8"))
    settings = LoraSettings.from_dict(config.get("future_l1_lora") or {})
    apply_lora(model, settings)  # a chain (RL adapter on an SFT adapter): the base's adapters are merged first
    device = model.device
    result = set_peft_model_state_dict(model.base, {k: v.to(device) for k, v in
                                                    load_file(str(path / ADAPTER_WEIGHTS)).items()})
    missing = [k for k in getattr(result, "unexpected_keys", []) if "lora" in k or "token" in k]
    if missing:
        raise ValueError(f"{path}: adapter weights not used by the model: {missing[:5]}")
    full = load_file(str(path / FULL_WEIGHTS)) if (path / FULL_WEIGHTS).exists() else {}
    with torch.no_grad():
        if "lm_head.weight" in full:
            model.base.lm_head.weight.copy_(full["lm_head.weight"])
        head = {k.removeprefix("latent_head."): v for k, v in full.items() if k.startswith("latent_head.")}
        if head and model.latent_head is not None:
            model.latent_head.load_state_dict(head)
    model.source_path = path.resolve()  # adapters trained on this model chain onto this folder
    return model


def adapter_base_path(path: str | Path) -> Path:
    """The checkpoint an adapter folder was trained on: the first of (relative path, absolute path,
    ``$FL1_MODEL_DIRS/<name>``) that exists and has the recorded fingerprint (folders saved without a
    ``future_l1_base`` record: the absolute path)."""
    path = Path(path)
    config = json.loads((path / ADAPTER_CONFIG).read_text(encoding="utf-8"))
    record = config.get(BASE_RECORD) or {}
    absolute = config.get(BASE_KEY)
    if not absolute and not record:
        raise ValueError(f"{path}: {ADAPTER_CONFIG} names no {BASE_KEY}")
    candidates: list[Path] = []
    if record.get("relative"):
        candidates.append(path.resolve().parent / record["relative"])
    if absolute:
        candidates.append(Path(absolute))
    if record.get("name"):
        dirs = [d for d in os.environ.get(MODEL_DIRS_ENV, "").split(os.pathsep) if d.strip()]
        candidates.extend(Path(d) / record["name"] for d in dirs)
    wrong = []
    for cand in candidates:
        if not cand.is_dir():
            continue
        if record.get("fingerprint") and folder_fingerprint(cand) != record["fingerprint"]:
            wrong.append(str(cand))
            continue
        return cand.resolve()
    detail = f"; these hold other weights (fingerprint differs): {wrong}" if wrong else ""
    raise FileNotFoundError(
        f"{path}: its base checkpoint{' ' + repr(record['name']) if record.get('name') else ''} was not found at "
        f"{[str(c) for c in candidates]}{detail}. Move the adapter with its base (the relative path is kept), or "
        f"name the folder holding the base in ${MODEL_DIRS_ENV}.")


__all__ = [
    "LoraSettings",
    "adapter_base_path",
    "adapter_state_dict",
    "adapters_disabled",
    "fully_trained_parameters",
    "apply_lora",
    "has_lora",
    "is_adapter_dir",
    "load_adapter",
    "merge_lora",
    "save_adapter",
    "save_trained",
]
