"""The shapes a memory plan is computed from: the model on the meta device (nothing allocated), its trainable
parameter count, the latent projection head, FSDP units, and the per-token byte formulas of the plan.

Per token and row (``e`` = bytes of one element in the compute dtype):

- KV cache: ``2 · L · n_kv · d · e`` (keys and values of every layer);
- training activations, one decoder layer: ``2 · (10 h + 4 n_kv d + 5 I)`` (norm inputs/outputs, q k v, RoPE,
  attention output, MLP gate/up/activation; flash attention or SDPA, so no ``[T, T]`` scores); with gradient
  checkpointing each layer keeps only its input (``2 h``) and one layer is recomputed at a time;
- a no-grad forward (prefill, likelihood scoring): ``e · (3 h + 3 I)``, one layer alive
  at a time, its peak in the MLP (gate, up and their product beside the residual stream, the layer input and output).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Qwen3-VL-8B-Instruct's published config (the fields that set parameter and activation sizes).
QWEN3_VL_8B: dict[str, Any] = {
    "text_config": {
        "hidden_size": 4096, "intermediate_size": 12288, "num_hidden_layers": 36, "num_attention_heads": 32,
        "num_key_value_heads": 8, "head_dim": 128, "vocab_size": 151936, "max_position_embeddings": 262144,
        "rope_parameters": {"rope_type": "default", "rope_theta": 5000000.0, "mrope_section": [24, 20, 20],
                            "mrope_interleaved": True},
        "tie_word_embeddings": False,
    },
    "vision_config": {
        "depth": 27, "hidden_size": 1152, "intermediate_size": 4304, "num_heads": 16, "out_hidden_size": 4096,
        "patch_size": 16, "spatial_merge_size": 2, "temporal_patch_size": 2, "num_position_embeddings": 2304,
        "deepstack_visual_indexes": [8, 16, 24],
    },
    "image_token_id": 151655, "video_token_id": 151656, "vision_start_token_id": 151652,
    "vision_end_token_id": 151653, "tie_word_embeddings": False,
}
NAMED_MODELS = {"qwen3-vl-8b": QWEN3_VL_8B}
LATENT_ROWS = 3  # <|latent|>, <|latent_start|>, <|latent_end|>: their embedding rows train in full under LoRA


@dataclass(frozen=True)
class Dims:
    """Text-model sizes: hidden ``h``, MLP ``inter``, ``layers``, KV heads ``n_kv``, ``head_dim``, ``vocab``."""

    h: int
    inter: int
    layers: int
    n_kv: int
    head_dim: int
    vocab: int

    def kv_bytes_per_token(self, element_bytes: int) -> int:
        """``2 · L · n_kv · d · e``."""
        return 2 * self.layers * self.n_kv * self.head_dim * element_bytes

    def train_bytes_per_token(self, checkpointing: bool) -> int:
        """Activations kept for backward per token: ``L · 2h + layer`` with checkpointing, else ``L · layer``."""
        layer = 2 * (10 * self.h + 4 * self.n_kv * self.head_dim + 5 * self.inter)
        return self.layers * 2 * self.h + layer if checkpointing else self.layers * layer

    def nograd_bytes_per_token(self, element_bytes: int) -> int:
        """``e · (3h + 3I)``: the live tensors of one layer in a no-grad forward."""
        return element_bytes * (3 * self.h + 3 * self.inter)


def kv_cache_bytes(dims: Dims, rows: int, context: int, element_bytes: int) -> int:
    """Bytes of a KV cache of ``rows`` sequences of ``context`` tokens: ``rows · context · 2 · L · n_kv · d · e``."""
    return rows * context * dims.kv_bytes_per_token(element_bytes)


def meta_model(model: str | Path | dict):
    """``Qwen3VLForConditionalGeneration`` on the meta device from a checkpoint folder, a named config
    (:data:`NAMED_MODELS`) or a config dict; no memory is allocated."""
    import torch
    from transformers import AutoConfig, Qwen3VLConfig, Qwen3VLForConditionalGeneration

    if isinstance(model, dict):
        config = Qwen3VLConfig(**model)
    elif str(model) in NAMED_MODELS:
        config = Qwen3VLConfig(**NAMED_MODELS[str(model)])
    else:
        path = Path(model)
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"{path}: no config.json (give a checkpoint folder or one of {list(NAMED_MODELS)})")
        config = AutoConfig.from_pretrained(path)
    with torch.device("meta"):
        return Qwen3VLForConditionalGeneration(config)


def dims_of(base) -> Dims:
    t = base.config.text_config
    head_dim = getattr(t, "head_dim", None) or t.hidden_size // t.num_attention_heads
    return Dims(t.hidden_size, t.intermediate_size, t.num_hidden_layers, t.num_key_value_heads, head_dim, t.vocab_size)


def latent_head_settings(base) -> tuple[bool, int]:
    """(projection head on?, its width) from a checkpoint's latent config (``config.json["future_l1"]``);
    (False, 2048) for a plain Qwen3-VL config."""
    from .config import CONFIG_KEY, LatentConfig

    stored = getattr(base.config, CONFIG_KEY, None) or {}
    default = LatentConfig()
    return bool(stored.get("projection_head", default.projection_head)), int(stored.get("head_dim", default.head_dim))


def latent_head_params(hidden: int, head_dim: int) -> int:
    """Parameters of :class:`fl1_core.model.LatentProjectionHead` (LayerNorm, H→D, SwiGLU D→D twice, D→H)."""
    import torch

    from .model import LatentProjectionHead

    with torch.device("meta"):
        return sum(p.numel() for p in LatentProjectionHead(hidden, head_dim).parameters())


_LORA_TARGETS = re.compile(r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)$")


def full_in_lora(base, head: int) -> int:
    """Parameters that train in full beside LoRA adapters: ``lm_head``, the latent tokens' embedding rows and the
    projection head (``head`` parameters, 0 without one); the KL reference keeps a frozen copy of exactly these."""
    return base.lm_head.weight.numel() + LATENT_ROWS * base.config.text_config.hidden_size + head


def trainable_count(base, *, lora: bool, lora_rank: int, freeze_vision: bool, head: int = 0) -> int:
    """Trainable parameters: everything but the frozen vision tower, plus the projection head (full); or the LoRA
    adapters ``r · (in + out)`` per targeted projection + :func:`full_in_lora`."""
    if not lora:
        return head + sum(p.numel() for n, p in base.named_parameters()
                          if not (freeze_vision and n.startswith("model.visual.")))
    import torch

    adapters = sum(lora_rank * (m.in_features + m.out_features) for n, m in base.named_modules()
                   if isinstance(m, torch.nn.Linear) and _LORA_TARGETS.match(n))
    return adapters + full_in_lora(base, head)


def fsdp_unit_params(base) -> int:
    """Parameters of the largest FSDP unit: a decoder layer, the input embedding or ``lm_head`` (each its own unit)."""
    layer = sum(p.numel() for p in base.model.language_model.layers[0].parameters())
    return max(layer, base.lm_head.weight.numel(), base.model.language_model.embed_tokens.weight.numel())


__all__ = ["Dims", "LATENT_ROWS", "NAMED_MODELS", "QWEN3_VL_8B", "dims_of", "fsdp_unit_params", "full_in_lora",
           "kv_cache_bytes", "latent_head_params", "latent_head_settings", "meta_model", "trainable_count"]
