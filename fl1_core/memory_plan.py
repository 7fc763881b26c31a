"""A memory plan before a run: per-GPU bytes for weights, gradients, optimizer, activations, rollout KV cache and the
LM-head chunk, built from the model's shapes on the meta device (no weights are loaded or allocated).

The plan mirrors what this repository's trainers do (issue 12):

- trainable weights are fp32 master weights (4 B), frozen ones stay in the load dtype (bf16: 2 B); the forward runs
  under bf16 autocast;
- gradients of trainable weights are fp32 (4 B); AdamW keeps two fp32 moments (8 B);
- SFT full fine-tuning on several GPUs shards all of the above over the GPUs (FSDP / ZeRO-3 through accelerate);
  the RL actor is DDP-wrapped, so RL replicates everything on every GPU; LoRA replicates the frozen base (DDP) and
  trains only the adapters, the latent tokens' embedding rows and ``lm_head``;
- activations of one micro-batch, per token and decoder layer, are ``2 · (10 h + 4 n_kv d + 5 I)`` bytes in bf16
  (norm inputs/outputs, q k v, RoPE, attention output, MLP gate/up/activation — no dropout, flash attention, so no
  ``[T, T]`` scores); with gradient checkpointing each layer keeps only its input ``2 h`` bytes and one layer is
  recomputed at a time;
- RL decoding holds a KV cache of ``2 · L · n_kv · d · 2`` bytes per token per row, and the LM head's fp32 scoring
  chunk ``3 · chunk · V · 4`` bytes (logits, probabilities, their gradient);
- the RL reference model is a bf16 copy (sharded with the actor under FSDP), or nothing under LoRA (adapters off).

Qwen3-VL-8B-Instruct's shapes are typed in from its published ``config.json`` (:data:`QWEN3_VL_8B`).
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

GIB = 1024**3

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


@dataclass
class PlanInputs:
    """What the plan is for. ``tokens_per_row``: prompt + response tokens of one training row (SFT: a record;
    RL: prompt + ``max_new_tokens``)."""

    stage: str = "sft"
    gpus: int = 1
    gpu_mem_gb: float = 80.0
    lora: bool = False
    lora_rank: int = 16
    micro_batch: int = 1
    tokens_per_row: int = 4096
    gradient_checkpointing: bool = True
    freeze_vision: bool | None = None  # None → SFT freezes the vision tower, RL trains it (the release's choice)
    rollout_rows: int = 64  # RL: responses decoded at once, over all GPUs
    max_new_tokens: int = 2048
    logprob_chunk: int = 1024
    load_bytes: int = 2  # bytes per frozen weight (bf16)
    headroom: float = 0.9  # usable share of GPU memory (allocator fragmentation, CUDA context, buffers)

    def __post_init__(self) -> None:
        if self.stage not in ("sft", "rl"):
            raise ValueError(f"stage must be 'sft' or 'rl', got {self.stage!r}")
        if self.gpus < 1 or self.gpu_mem_gb <= 0:
            raise ValueError("gpus must be >= 1 and gpu_mem_gb > 0")


@dataclass
class MemoryPlan:
    """Bytes per GPU by component, whether it fits, and what would make it fit."""

    inputs: PlanInputs
    parameters: int
    trainable: int
    bytes: dict[str, int] = field(default_factory=dict)
    advice: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.bytes.values())

    @property
    def budget(self) -> int:
        return int(self.inputs.gpu_mem_gb * GIB * self.inputs.headroom)

    @property
    def fits(self) -> bool:
        return self.total <= self.budget

    def to_dict(self) -> dict[str, Any]:
        return {"inputs": asdict(self.inputs), "parameters": self.parameters, "trainable": self.trainable,
                "bytes": dict(self.bytes), "total": self.total, "budget": self.budget, "fits": self.fits,
                "advice": list(self.advice)}

    def render(self) -> str:
        i = self.inputs
        sharded = i.gpus > 1 and i.stage == "sft"
        mode = "LoRA r=%d" % i.lora_rank if i.lora else ("full, FSDP-sharded" if sharded else "full, replicated")
        lines = [f"{i.stage.upper()} on {i.gpus} x {i.gpu_mem_gb:g} GB ({mode}; micro-batch {i.micro_batch} x "
                 f"{i.tokens_per_row} tokens; checkpointing {'on' if i.gradient_checkpointing else 'off'})",
                 f"parameters {self.parameters / 1e9:.3f} B, trainable {self.trainable / 1e6:.2f} M",
                 f"{'per GPU':<28}{'GiB':>10}"]
        for k, v in self.bytes.items():
            lines.append(f"  {k:<26}{v / GIB:>10.2f}")
        lines.append(f"  {'total':<26}{self.total / GIB:>10.2f}   (budget {self.budget / GIB:.1f} GiB at "
                     f"{i.headroom:.0%} of {i.gpu_mem_gb:g} GB)")
        lines.append("FITS" if self.fits else "DOES NOT FIT")
        lines += [f"  - {a}" for a in self.advice]
        return "\n".join(lines)


# --------------------------------------------------------------------------------------------------------- shapes
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


_LORA_TARGETS = re.compile(r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)$")


def trainable_count(base, *, lora: bool, lora_rank: int, freeze_vision: bool, latent_rows: int = 3) -> int:
    """Trainable parameters: everything but the frozen vision tower (full), or the LoRA adapters
    ``r · (in + out)`` per targeted projection + ``lm_head`` + the latent tokens' embedding rows."""
    if not lora:
        return sum(p.numel() for n, p in base.named_parameters()
                   if not (freeze_vision and n.startswith("model.visual.")))
    import torch

    adapters = sum(lora_rank * (m.in_features + m.out_features) for n, m in base.named_modules()
                   if isinstance(m, torch.nn.Linear) and _LORA_TARGETS.match(n))
    hidden = base.config.text_config.hidden_size
    return adapters + base.lm_head.weight.numel() + latent_rows * hidden


def _dims(base) -> tuple[int, int, int, int, int, int]:
    t = base.config.text_config
    head_dim = getattr(t, "head_dim", None) or t.hidden_size // t.num_attention_heads
    return t.hidden_size, t.intermediate_size, t.num_hidden_layers, t.num_key_value_heads, head_dim, t.vocab_size


# ----------------------------------------------------------------------------------------------------------- plan
def plan_memory(model: str | Path | dict, inputs: PlanInputs) -> MemoryPlan:
    """The per-GPU memory plan of ``model`` under ``inputs`` (see the module docstring for every formula)."""
    i = inputs
    base = meta_model(model)
    freeze_vision = (i.stage == "sft") if i.freeze_vision is None else i.freeze_vision
    total = sum(p.numel() for p in base.parameters())
    trainable = trainable_count(base, lora=i.lora, lora_rank=i.lora_rank, freeze_vision=freeze_vision)
    h, inter, layers, n_kv, head_dim, vocab = _dims(base)
    shard = i.gpus if (not i.lora and i.gpus > 1 and i.stage == "sft") else 1  # RL: DDP, replicated
    frozen = total - trainable if not i.lora else total - base.lm_head.weight.numel()
    out: dict[str, int] = {}
    out["weights"] = math.ceil((frozen * i.load_bytes + trainable * 4) / shard)
    if shard > 1:  # FSDP gathers one decoder layer's bf16 weights at a time (x2: prefetch)
        per_layer = sum(p.numel() for p in base.model.language_model.layers[0].parameters())
        out["weights"] += 2 * per_layer * 2
    out["gradients"] = math.ceil(trainable * 4 / shard)
    out["optimizer"] = math.ceil(trainable * 8 / shard)
    tokens = i.micro_batch * i.tokens_per_row
    layer_bytes = 2 * (10 * h + 4 * n_kv * head_dim + 5 * inter)
    if i.gradient_checkpointing:
        out["activations"] = tokens * (layers * 2 * h + layer_bytes)
    else:
        out["activations"] = tokens * layers * layer_bytes
    out["logits_chunk"] = 3 * min(i.logprob_chunk, tokens) * vocab * 4
    if i.stage == "sft":  # SFT's cross-entropy takes the full-vocabulary logits of the micro-batch
        out["logits_chunk"] = 2 * tokens * vocab * 4
    if i.stage == "rl":
        rows = math.ceil(i.rollout_rows / i.gpus)
        out["rollout_kv_cache"] = rows * i.tokens_per_row * 2 * layers * n_kv * head_dim * 2
        out["reference_model"] = 0 if i.lora else math.ceil(total * 2 / shard)
    plan = MemoryPlan(i, total, trainable, out)
    plan.advice = _advice(plan, freeze_vision)
    return plan


def _advice(plan: MemoryPlan, freeze_vision: bool) -> list[str]:
    i, b = plan.inputs, plan.bytes
    if plan.fits:
        return []
    tips = []
    if not i.gradient_checkpointing:
        tips.append("turn on gradient checkpointing (SFTConfig/RLConfig gradient_checkpointing=True)")
    if not i.lora:
        tips.append("train LoRA adapters (--lora): the frozen base is 2 B/parameter, only adapters get fp32 states")
    if i.micro_batch > 1:
        tips.append("lower the micro-batch to 1 and raise gradient accumulation")
    if i.stage == "rl" and b.get("rollout_kv_cache", 0) > 0.25 * plan.budget:
        tips.append("decode fewer rows at once (RLConfig.rollout_batch_size) or fewer max_new_tokens")
    if not i.lora and i.stage == "sft":
        # the unsharded total (SFT shards these over the GPUs)
        states = (b["weights"] + b["gradients"] + b["optimizer"] + b.get("reference_model", 0)) * i.gpus
        free = plan.budget - b["activations"] - b["logits_chunk"] - b.get("rollout_kv_cache", 0)
        if free > 0:
            tips.append(f"shard full fine-tuning over at least {max(2, math.ceil(states / free))} GPUs "
                        "(FSDP / ZeRO-3, configs/accelerate/)")
    return tips


__all__ = ["GIB", "MemoryPlan", "NAMED_MODELS", "PlanInputs", "QWEN3_VL_8B", "meta_model", "plan_memory",
           "trainable_count"]
