"""A memory plan before a run: per-GPU bytes of each phase of a stage, from the model's shapes on the meta device
(:mod:`fl1_core.memory_shapes`; nothing is loaded or allocated). The peak is the largest phase; it FITS when the
peak is at most ``headroom`` of the GPU's memory.

What the trainers do, and so what is counted (N parameters, N_t trainable, G GPUs, e = compute element bytes):

- trainable weights are fp32 masters (4 B), frozen ones stay in the load dtype (bf16: 2 B); fp32 gradients (4 B),
  AdamW's two fp32 moments (8 B). The projection head, when the model has one, trains in full;
- full fine-tuning on G > 1 GPUs shards all of these over the GPUs (FSDP), SFT and RL alike; each FSDP unit (a
  decoder layer, the embedding, ``lm_head``) is gathered in bf16 when used, the next one prefetched:
  ``2 · 2 B · largest unit``. Gradients are reduced in fp32 and synchronised on every micro-batch: the unsharded bf16
  gradient of one unit and its fp32 copy live until the reduce-scatter (``6 B · largest unit``). Accumulating
  without sync would keep every unsharded bf16 gradient instead (``2 B · N_t``);
- LoRA replicates the frozen base and trains the adapters, ``lm_head``, the latent rows and the head; the KL reference
  is a frozen copy of only those full-trained parts. Full-parameter RL keeps a bf16 reference (sharded under FSDP);
- **RL, rollout phase** (one decode call of ``rollout_rows`` rows per process, ``context = prompt_tokens +
  max_new_tokens``): the KV cache ``rows · context · 2 L n_kv d · e``, the prefill of ``rows · prompt_tokens``
  tokens (no grad), the sampler's ``rows · V`` buffers (10 × 4 B: logits, log-probs, probabilities, sorted
  probabilities and their int64 order, cumulative mass, filtered and scattered probabilities). Under FSDP the decode
  runs on one gathered bf16 copy of the whole model per GPU (``2 B · N``), freed before the update. e = 2 when the
  decoded layers are bf16 (LoRA's frozen base, the gathered copy), 4 when they are fp32 masters (full-parameter RL
  on one GPU);
- **RL, update phase**: gradients, activations of one micro-batch (context tokens per row), the LM head's chunked
  fp32 scoring ``3 · chunk · V · 4 B``;
- **RL, SFT anchor** (``RLConfig.sft_anchor > 0``): before each update, one SFT step's activations and logits (as
  below) on ``sft_anchor_rows`` records of ``tokens_per_row`` tokens, freed before the policy's micro-batches; with
  the drift draw (``sft_anchor_draw="drift"``) a no-grad probe forward of as many records every few steps, its
  activations and fp32 logits ``tokens · V · 4 B`` beside the held weights (gradients are freed between steps);
- **SFT step**: activations and the full-vocabulary fp32 logits and their gradient ``2 · tokens · V · 4 B``. With
  scheduled sampling (``SFTConfig.scheduled_sampling_p > 0``) every step runs a second forward on the fed
  predictions, and the backward needs both passes' activations (``scheduled_sampling_loss="ce"``: the CE's gradient
  reaches the first pass through the fed predictions; ``"alignment"``: both passes' alignment losses), plus the fed
  inputs ``tokens · h · 2 B``. With a KL to the initial model (``SFTConfig.init_kl > 0``) a frozen copy of it is held
  in the load dtype, whole on every process (under LoRA only the full-trained parts), and its no-grad logits
  ``tokens · V · 4 B`` sit beside the step's;
- **curation** (inference, bf16 weights): ``mode=rollouts`` decodes ``2 · batch_size · n_rollouts`` rows per call
  (KV cache, prefill, sampler as above); ``likelihood`` runs one no-grad forward over ``2 · batch_size`` rows.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .memory_shapes import (
    dims_of,
    fsdp_unit_params,
    full_in_lora,
    kv_cache_bytes,
    latent_head_params,
    latent_head_settings,
    meta_model,
    trainable_count,
)

GIB = 1024**3
STAGES = ("sft", "rl", "curation")
SAMPLER_BUFFERS = 10  # fp32-sized [rows, V] buffers of one sampling step (see the module docstring)


@dataclass
class PlanInputs:
    """What the plan is for (per process). ``tokens_per_row``: SFT tokens of one record (RL trains on
    ``prompt_tokens + max_new_tokens``, its SFT anchor on records of ``tokens_per_row``); ``rollout_rows``: rows of
    one decode call on one process (RL rollouts, curation); ``projection_head`` None: as the checkpoint's latent
    config says."""

    stage: str = "sft"
    gpus: int = 1
    gpu_mem_gb: float = 80.0
    lora: bool = False
    lora_rank: int = 16
    micro_batch: int = 1
    tokens_per_row: int = 4096
    gradient_checkpointing: bool = True
    freeze_vision: bool | None = None  # None → SFT freezes the vision tower, RL trains it (the release's choice)
    rollout_rows: int = 64
    prompt_tokens: int = 1024
    max_new_tokens: int = 2048
    logprob_chunk: int = 1024
    curation_mode: str = "rollouts"
    scheduled_sampling: bool = False
    projection_head: bool | None = None
    head_dim: int | None = None
    fsdp_sync_every_micro_batch: bool = True
    kl_reference: bool = True  # RL: a KL reference is held (RLConfig.kl_beta != 0)
    init_kl_reference: bool = False  # SFT: the initial model is held for the KL to it (SFTConfig.init_kl > 0)
    sft_anchor_rows: int = 0  # RL: SFT records per anchor pass (RLConfig.sft_anchor_batch when sft_anchor > 0)
    sft_anchor_probe: bool = False  # RL: the anchor's drift draw scores its probe (RLConfig.sft_anchor_draw="drift")
    load_bytes: int = 2  # bytes per frozen weight (bf16)
    headroom: float = 0.9  # usable share of GPU memory (allocator fragmentation, CUDA context, buffers)

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, got {self.stage!r}")
        if self.gpus < 1 or self.gpu_mem_gb <= 0:
            raise ValueError("gpus must be >= 1 and gpu_mem_gb > 0")
        if self.curation_mode not in ("rollouts", "likelihood"):
            raise ValueError(f"curation_mode must be 'rollouts' or 'likelihood', got {self.curation_mode!r}")

    @property
    def context(self) -> int:
        """Tokens of one decoded row: ``prompt_tokens + max_new_tokens``."""
        return self.prompt_tokens + self.max_new_tokens

    @property
    def sharded(self) -> bool:
        """Full fine-tuning on several GPUs: FSDP shards weights, gradients and AdamW states."""
        return not self.lora and self.gpus > 1 and self.stage != "curation"


@dataclass
class MemoryPlan:
    """Bytes per GPU by phase and component; the peak phase decides whether it fits."""

    inputs: PlanInputs
    parameters: int
    trainable: int
    phases: dict[str, dict[str, int]] = field(default_factory=dict)
    advice: list[str] = field(default_factory=list)

    @property
    def peak_phase(self) -> str:
        return max(self.phases, key=lambda p: sum(self.phases[p].values()))

    @property
    def bytes(self) -> dict[str, int]:
        """Components of the peak phase."""
        return self.phases[self.peak_phase]

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
                "phases": {k: dict(v) for k, v in self.phases.items()}, "peak_phase": self.peak_phase,
                "total": self.total, "budget": self.budget, "fits": self.fits, "advice": list(self.advice)}

    def render(self) -> str:
        i = self.inputs
        mode = ("inference, bf16" if i.stage == "curation" else f"LoRA r={i.lora_rank}" if i.lora
                else "full, FSDP-sharded" if i.sharded else "full, one copy per GPU")
        rows = (f"micro-batch {i.micro_batch} x {i.tokens_per_row if i.stage == 'sft' else i.context} tokens"
                if i.stage != "curation" else f"{i.curation_mode}")
        if i.stage in ("rl", "curation"):
            verb = "score" if i.stage == "curation" and i.curation_mode == "likelihood" else "decode"
            rows += f"; {verb} {i.rollout_rows} rows x {i.context} tokens per GPU"
        if i.stage != "curation":
            rows += f"; checkpointing {'on' if i.gradient_checkpointing else 'off'}"
        lines = [f"{i.stage.upper()} on {i.gpus} x {i.gpu_mem_gb:g} GB ({mode}; {rows})",
                 f"parameters {self.parameters / 1e9:.3f} B, trainable {self.trainable / 1e6:.2f} M"]
        names = list(self.phases)
        comps = list(dict.fromkeys(k for p in names for k in self.phases[p]))
        lines.append(f"{'per GPU, GiB':<28}" + "".join(f"{p:>14}" for p in names))
        for k in comps:
            lines.append(f"  {k:<26}" + "".join(
                f"{self.phases[p][k] / GIB:>14.2f}" if k in self.phases[p] else f"{'-':>14}" for p in names))
        lines.append(f"  {'total':<26}" + "".join(f"{sum(self.phases[p].values()) / GIB:>14.2f}" for p in names))
        lines.append(f"peak {self.total / GIB:.2f} GiB ({self.peak_phase}); budget {self.budget / GIB:.1f} GiB at "
                     f"{i.headroom:.0%} of {i.gpu_mem_gb:g} GB")
        lines.append("FITS" if self.fits else "DOES NOT FIT")
        lines += [f"  - {a}" for a in self.advice]
        return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------------- plan
def plan_memory(model: str | Path | dict, inputs: PlanInputs) -> MemoryPlan:
    """The per-GPU memory plan of ``model`` under ``inputs`` (see the module docstring for every formula); when it
    does not fit, its advice says what would (for full fine-tuning on one GPU: the fewest GPUs whose FSDP plan fits,
    with the same per-process batch)."""
    base = meta_model(model)
    plan = _plan(base, inputs)
    if not plan.fits and inputs.stage != "curation" and not inputs.lora and inputs.gpus == 1:
        for g in (2, 4, 8, 16, 32):
            if _plan(base, dataclasses.replace(inputs, gpus=g)).fits:
                plan.advice.append(f"shard full fine-tuning over {g} GPUs (FSDP: fl1 plan --gpus {g} fits)")
                break
    return plan


def _plan(base, inputs: PlanInputs) -> MemoryPlan:
    i = inputs
    dims = dims_of(base)
    has_head, head_dim = latent_head_settings(base)
    has_head = has_head if i.projection_head is None else i.projection_head
    head = latent_head_params(dims.h, i.head_dim or head_dim) if has_head else 0
    total = sum(p.numel() for p in base.parameters()) + head
    if i.stage == "curation":
        return _plan_curation(i, dims, total)
    freeze_vision = (i.stage == "sft") if i.freeze_vision is None else i.freeze_vision
    trainable = trainable_count(base, lora=i.lora, lora_rank=i.lora_rank, freeze_vision=freeze_vision, head=head)
    # LoRA: the embedding keeps its frozen latent rows beside peft's trainable copy of them
    frozen = total - trainable if not i.lora else total - base.lm_head.weight.numel() - head
    shard = i.gpus if i.sharded else 1
    unit = fsdp_unit_params(base)
    held = {"weights": math.ceil((frozen * i.load_bytes + trainable * 4) / shard),
            "optimizer": math.ceil(trainable * 8 / shard)}
    if i.stage == "rl" and i.kl_reference:
        ref = full_in_lora(base, head) if i.lora else total
        held["reference_model"] = math.ceil(ref * i.load_bytes / shard)
    grads: dict[str, int] = {"gradients": math.ceil(trainable * 4 / shard)}
    if shard > 1:
        grads["fsdp_gathered_units"] = 2 * 2 * unit
        grads["fsdp_gradient_reduce"] = 6 * unit if i.fsdp_sync_every_micro_batch else 2 * trainable
    rows_tokens = i.micro_batch * (i.tokens_per_row if i.stage == "sft" else i.context)
    step = {"activations": rows_tokens * dims.train_bytes_per_token(i.gradient_checkpointing)}
    phases: dict[str, dict[str, int]] = {}
    if i.stage == "sft":
        step["logits"] = 2 * rows_tokens * dims.vocab * 4  # SFT's cross-entropy takes the full-vocabulary logits
        if i.init_kl_reference:
            held["reference_model"] = (full_in_lora(base, head) if i.lora else total) * i.load_bytes
            step["init_logits"] = rows_tokens * dims.vocab * 4
        if i.scheduled_sampling:
            step["scheduled_sampling_activations"] = step["activations"]
            step["scheduled_sampling_inputs"] = rows_tokens * dims.h * 2
        phases["step"] = {**held, **grads, **step}
    else:
        e = i.load_bytes if (i.lora or shard > 1) else 4  # decode over bf16 layers, or over fp32 masters
        gathered = {"rollout_weights": total * 2} if shard > 1 else {}  # one bf16 copy, freed before the update
        phases["rollout"] = {**held, **gathered, **_decode(i, dims, e)}
        step["logits_chunk"] = 3 * min(i.logprob_chunk, rows_tokens) * dims.vocab * 4
        phases["update"] = {**held, **grads, **step}
        if i.sft_anchor_rows:
            anchor_tokens = i.sft_anchor_rows * i.tokens_per_row
            phases["sft_anchor"] = {**held, **grads,
                                    "activations": anchor_tokens * dims.train_bytes_per_token(i.gradient_checkpointing),
                                    "logits": 2 * anchor_tokens * dims.vocab * 4}
            if i.sft_anchor_probe:
                gathered_units = {"fsdp_gathered_units": 2 * 2 * unit} if shard > 1 else {}
                phases["sft_anchor_probe"] = {**held, **gathered_units,
                                              "nograd_forward": anchor_tokens * dims.nograd_bytes_per_token(2),
                                              "logits": anchor_tokens * dims.vocab * 4}
    plan = MemoryPlan(i, total, trainable, phases)
    plan.advice = _advice(plan)
    return plan


def _decode(i: PlanInputs, dims, e: int) -> dict[str, int]:
    """KV cache, prefill and sampler buffers of one decode call of ``rollout_rows`` rows."""
    return {"kv_cache": kv_cache_bytes(dims, i.rollout_rows, i.context, e),
            "prefill": i.rollout_rows * i.prompt_tokens * dims.nograd_bytes_per_token(e),
            "sampler": i.rollout_rows * dims.vocab * 4 * SAMPLER_BUFFERS}


def _plan_curation(i: PlanInputs, dims, total: int) -> MemoryPlan:
    held = {"weights": total * i.load_bytes}
    if i.curation_mode == "rollouts":
        phases = {"decode": {**held, **_decode(i, dims, i.load_bytes)}}
    else:  # one teacher-forced no-grad forward over prompt + reference answer, hidden states kept, chunked scoring
        tokens = i.rollout_rows * i.context
        phases = {"score": {**held, "nograd_forward": tokens * dims.nograd_bytes_per_token(i.load_bytes),
                            "hidden_states": tokens * dims.h * i.load_bytes,
                            "logits_chunk": 3 * min(i.logprob_chunk, tokens) * dims.vocab * 4}}
    plan = MemoryPlan(i, total, 0, phases)
    plan.advice = _advice(plan)
    return plan


def _advice(plan: MemoryPlan) -> list[str]:
    i, b = plan.inputs, plan.bytes
    if plan.fits:
        return []
    tips = []
    decode = b.get("kv_cache", 0) + b.get("prefill", 0)
    if decode > 0.25 * plan.budget:
        knob = ("CurationConfig.batch_size or n_rollouts" if i.stage == "curation"
                else "RLConfig.rollout_batch_size, rows per decode call per process")
        tips.append(f"decode fewer rows at once ({knob}), or fewer prompt / new tokens")
    if i.stage == "curation":
        return tips
    if not i.gradient_checkpointing:
        tips.append("turn on gradient checkpointing (SFTConfig/RLConfig gradient_checkpointing=True)")
    if not i.lora:
        tips.append("train LoRA adapters (--lora): the frozen base is 2 B/parameter, only adapters get fp32 states")
    if i.micro_batch > 1:
        tips.append("lower the micro-batch and raise gradient accumulation (or mini-batches)")
    return tips


__all__ = ["GIB", "MemoryPlan", "PlanInputs", "STAGES", "plan_memory"]
