"""Memory-plan inputs derived from the very config objects a run uses, so ``fl1 plan`` sizes what ``fl1 sft``,
``fl1 rl`` and ``fl1 curate`` will allocate:

- RL (:class:`~fl1_core.rl.config.RLConfig`): rows per process per round ``R = prompts_per_step / G ·
  group_size``; rows per decode call ``min(rollout_batch_size or R, R)``; micro-batch ``min(micro_batch_size or
  R / mini_batches, R / mini_batches)``; context ``max_prompt_tokens + max_new_tokens``; LoRA, checkpointing,
  vision freezing, the log-prob chunk, the KL reference (``kl_beta != 0``) and the SFT anchor's records
  (``sft_anchor_batch`` when ``sft_anchor > 0``, of ``tokens_per_row`` tokens, and the drift draw's probe) as
  configured;
- SFT (:class:`~fl1_core.sft.config.SFTConfig`): micro-batch ``per_device_batch_size``, tokens per record
  ``max_length`` (else the given length), checkpointing, LoRA, scheduled sampling when
  ``scheduled_sampling_p > 0``, and the initial model held for the KL to it when ``init_kl > 0`` (both in latent SFT
  only, by ``SFTConfig.latent_terms_in``);
- curation (:class:`~fl1_core.curation.config.CurationConfig`): a chunk holds ``batch_size`` records, two probes
  each; ``mode=rollouts`` decodes ``2 · batch_size · n_rollouts`` rows per call with ``max_new_tokens``;
  ``likelihood`` scores ``2 · batch_size`` rows of prompt + reference answer.
"""

from __future__ import annotations

from typing import Any

from .memory_plan import PlanInputs


def _lora(settings: dict | None) -> tuple[bool, int]:
    if settings is None:
        return False, 16
    from .adapters import LoraSettings

    return True, LoraSettings.from_dict(settings).r


def rl_plan_inputs(cfg: Any, *, gpus: int, gpu_mem_gb: float = 80.0, prompt_tokens: int | None = None,
                   **extra: Any) -> PlanInputs:
    """:class:`PlanInputs` of an RL run with ``cfg`` on ``gpus`` processes (see the module docstring)."""
    r = cfg
    if r.prompts_per_step % gpus:
        raise ValueError(f"prompts_per_step={r.prompts_per_step} must be divisible by the {gpus} processes")
    local_rows = r.prompts_per_step // gpus * r.group_size
    mini = max(1, local_rows // r.mini_batches)
    prompt = prompt_tokens if prompt_tokens is not None else r.max_prompt_tokens
    if prompt is None:
        raise ValueError("max_prompt_tokens=None leaves the prompt length open: give prompt_tokens (--prompt-tokens)")
    lora, rank = _lora(r.lora)
    return PlanInputs(stage="rl", gpus=gpus, gpu_mem_gb=gpu_mem_gb, lora=lora, lora_rank=rank,
                      micro_batch=min(r.micro_batch_size or mini, mini), gradient_checkpointing=r.gradient_checkpointing,
                      freeze_vision=r.freeze_vision, rollout_rows=min(r.rollout_batch_size or local_rows, local_rows),
                      prompt_tokens=prompt, max_new_tokens=r.max_new_tokens, logprob_chunk=r.logprob_chunk,
                      kl_reference=r.kl_beta != 0.0, sft_anchor_rows=r.sft_anchor_batch if r.sft_anchor > 0 else 0,
                      sft_anchor_probe=r.sft_anchor > 0 and r.sft_anchor_draw == "drift", **extra)


def sft_plan_inputs(cfg: Any, *, gpus: int, gpu_mem_gb: float = 80.0, tokens_per_row: int = 4096,
                    mode: str = "latent", **extra: Any) -> PlanInputs:
    """:class:`PlanInputs` of an SFT run of ``mode`` with ``cfg`` (an ``SFTConfig``): scheduled sampling and the KL
    reference are counted where ``cfg.latent_terms_in(mode)`` turns them on, as training does (latent SFT only)."""
    if mode not in ("latent", "text", "pause"):
        raise ValueError(f"unknown SFT mode {mode!r}; expected latent, text or pause")
    lora, rank = _lora(cfg.lora)
    sampling_p, init_kl = cfg.latent_terms_in(mode)
    return PlanInputs(stage="sft", gpus=gpus, gpu_mem_gb=gpu_mem_gb, lora=lora, lora_rank=rank,
                      micro_batch=cfg.per_device_batch_size, tokens_per_row=cfg.max_length or tokens_per_row,
                      gradient_checkpointing=cfg.gradient_checkpointing, freeze_vision=cfg.freeze_vision,
                      scheduled_sampling=sampling_p > 0.0, init_kl_reference=init_kl > 0.0, **extra)


def curation_plan_inputs(cfg: Any, *, gpu_mem_gb: float = 80.0, prompt_tokens: int, **extra: Any) -> PlanInputs:
    """:class:`PlanInputs` of visual-gain curation with ``cfg`` on one GPU (prompt tokens of a probe given)."""
    rollouts = cfg.mode == "rollouts"
    rows = 2 * cfg.batch_size * (cfg.n_rollouts if rollouts else 1)
    return PlanInputs(stage="curation", gpus=1, gpu_mem_gb=gpu_mem_gb, curation_mode=cfg.mode, rollout_rows=rows,
                      prompt_tokens=prompt_tokens, max_new_tokens=cfg.max_new_tokens if rollouts else 0, **extra)


__all__ = ["curation_plan_inputs", "rl_plan_inputs", "sft_plan_inputs"]
