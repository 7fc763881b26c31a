"""LoRA adapter folders: what :func:`fl1_core.checkpoints.save_model` writes for a model with adapters, and what
:func:`fl1_core.model.load_future_l1` reads back on top of the folder's base.

An adapter folder holds ``adapter_config.json`` (peft's, plus where its base is), the adapter weights
(``adapter_model.safetensors``), the ``lm_head`` and latent head weights (trained in full) and the processor.

The base is recorded three ways (``future_l1_base``): its path relative to the adapter folder's parent (an SFT → RL
chain moved or copied as one tree still loads), its absolute path (peft's ``base_model_name_or_path``), and its
name with a :func:`~fl1_core.checkpoints.fingerprint.folder_fingerprint`. :func:`adapter_base_path` tries the
relative path, the absolute one, then ``<dir>/<name>`` for each folder of ``$FL1_MODEL_DIRS`` (a base kept elsewhere
on another machine), and takes the first whose fingerprint matches.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from ..adapters import LoraSettings, apply_lora, peft_lora_config
from .fingerprint import folder_fingerprint

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
FULL_WEIGHTS = "adapter_full_modules.safetensors"  # lm_head and the latent head, trained in full
BASE_KEY = "base_model_name_or_path"
BASE_RECORD = "future_l1_base"  # {"relative": path from the folder's parent, "name": ..., "fingerprint": ...}
SETTINGS_KEY = "future_l1_lora"
MODEL_DIRS_ENV = "FL1_MODEL_DIRS"  # more folders to look for a base in, by its name (os.pathsep-separated)


def is_adapter_dir(path: str | Path) -> bool:
    return (Path(path) / ADAPTER_CONFIG).is_file()


def save_adapter(model, processor, path: str | Path, base_path: str | Path) -> Path:
    """Write an adapter folder (``base_path``: the checkpoint the adapters were trained on)."""
    from peft import get_peft_model_state_dict
    from safetensors.torch import save_file

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    settings = getattr(model, "lora_settings", None) or LoraSettings()
    config = peft_lora_config(model, settings).to_dict()
    config = {k: (sorted(v) if isinstance(v, set) else v) for k, v in config.items()}
    base = Path(base_path).resolve()
    config[BASE_KEY] = str(base)
    try:  # the tmp folder of an atomic save is a sibling of the final one: the same path from the parent
        relative = os.path.relpath(base, path.resolve().parent)
    except ValueError:  # another drive (Windows)
        relative = None
    config[BASE_RECORD] = {"relative": relative, "name": base.name, "fingerprint": folder_fingerprint(base)}
    config[SETTINGS_KEY] = settings.to_dict()
    (path / ADAPTER_CONFIG).write_text(json.dumps(config, indent=2, default=str), encoding="utf-8")
    adapters = {k: v.detach().cpu().contiguous() for k, v in get_peft_model_state_dict(model.base).items()}
    save_file(adapters, str(path / ADAPTER_WEIGHTS))
    full = {}
    if settings.train_lm_head:
        full["lm_head.weight"] = model.base.lm_head.weight.detach().cpu().contiguous()
    if model.latent_head is not None:
        full.update({f"latent_head.{k}": v.detach().cpu().contiguous()
                     for k, v in model.latent_head.state_dict().items()})
    save_file(full, str(path / FULL_WEIGHTS))
    processor.save_pretrained(path)
    return path


def load_adapter(model, path: str | Path):
    """Inject the adapters saved in ``path`` into ``model`` (loaded from the folder's base) and load their weights."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    path = Path(path)
    config = json.loads((path / ADAPTER_CONFIG).read_text(encoding="utf-8"))
    settings = LoraSettings.from_dict(config.get(SETTINGS_KEY) or {})
    apply_lora(model, settings)  # a chain (RL adapter on an SFT adapter): the base's adapters are merged first
    device = model.device
    result = set_peft_model_state_dict(model.base, {k: v.to(device) for k, v in
                                                    load_file(str(path / ADAPTER_WEIGHTS)).items()})
    unused = [k for k in getattr(result, "unexpected_keys", []) if "lora" in k or "token" in k]
    if unused:
        raise ValueError(f"{path}: adapter weights not used by the model: {unused[:5]}")
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
