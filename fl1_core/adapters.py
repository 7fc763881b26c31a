"""LoRA adapters (peft) for SFT and RL, so one 80 GB GPU can run the 8B pipeline.

Adapters are injected *in place* into ``model.base`` (``peft.inject_adapter_in_model``): the model stays a
:class:`~fl1_core.model.FutureL1Model` around a plain ``Qwen3VLForConditionalGeneration``, so every code path
(latent decoding, replay, the collator) is unchanged. What trains under LoRA:

- low-rank ``ΔW = (α / r) · B A`` on the language model's attention and MLP projections (the vision tower and merger
  stay frozen, as in the paper's SFT and RL);
- the embedding rows of the three latent tokens (peft's trainable tokens; the other rows stay exactly as loaded);
- ``lm_head`` and the latent projection head, in full.

:func:`merge_lora` folds the adapters into the weights (``W ← W + ΔW``) and removes them. Adapter folders on disk
(saving, loading, finding their base) are :mod:`fl1_core.checkpoints.adapter_folder`'s.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

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


def peft_lora_config(model, settings: LoraSettings):
    """peft's ``LoraConfig`` of ``settings`` for ``model`` (the latent token rows as trainable tokens)."""
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
    inject_adapter_in_model(peft_lora_config(model, settings), model.base)
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
    reference swaps those too: :class:`fl1_core.reference.LoraReference`). A model without adapters is unchanged."""
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


__all__ = [
    "LoraSettings",
    "adapters_disabled",
    "fully_trained_parameters",
    "apply_lora",
    "has_lora",
    "merge_lora",
    "peft_lora_config",
]
