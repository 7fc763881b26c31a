"""One device check for the GPU path: a random-init model with Qwen3-VL-8B's shapes in bf16 (no download), LoRA
(the 1-GPU path: bf16 autocast over fp32 adapters), timed on the GPU. Writes one JSON.

    bash scripts/gpu_check.sh [--out runs/gpu_check.json]        # on a CUDA machine, <= 8 minutes on one H200
    bash scripts/gpu_check.sh --tiny                              # the same code path, tiny shapes, on the CPU (CI)

Measured, each against its bound or its plan:

- latent SFT steps: tokens/s, and MFU = tokens/s × FLOPs per token / the GPU's dense bf16 peak, FLOPs per token =
  2 N (forward) + 2 N (input gradients) + 2 N_trainable;
- latent decoding at batch 1 and at a rollout-sized batch (64 rows × ~3k context on the GPU): ms per step against
  the bound ``(weight bytes read per step + KV-cache bytes read per step) / HBM bandwidth``. The weight bytes are the
  text model's parameters as stored, *without* the input embedding (a step reads B of its rows, not the table); the
  KV bytes are ``rows · context · 2 L n_kv d · 2 B`` at the mean context of the timed steps;
- one RL round at realistic sizes (:func:`rl_check_config`: a rollout decode call, then one micro-batch replayed with
  gradient checkpointing and chunked log-probs, DAPO loss, AdamW step): the peak memory of each phase against
  ``fl1 plan``'s phase totals for the same config (ratio measured / plan);
- attention kernels: SDPA against flash-attention 2 (when flash_attn is installed and the model is on CUDA), the same
  decode and SFT step timed with each; the ratio is SDPA time / FA2 time.
- the static-cache decode loop against the frozen reference loop at 16 and 64 rows: ratios per step and per rollout
  (n samples of one prompt), eager and with the step compiled (CUDA graphs);
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

# dense bf16 peak FLOP/s and HBM bandwidth (bytes/s) of known GPUs, from their vendors' data sheets
GPU_PEAKS = {"H200": (989e12, 4.8e12), "H100": (989e12, 3.35e12), "A100": (312e12, 2.0e12),
             "L40S": (362e12, 0.864e12)}


@dataclass(frozen=True)
class CheckSizes:
    """Sizes of every part: SFT (rows, tokens, spans), decode (rollout rows, prompt tokens, timed steps), RL round
    (rollout rows, prompt tokens, new tokens, micro-batch rows, group size)."""

    sft: tuple[int, int, int]
    decode_rows: int
    decode_prompt: int
    decode_steps: int
    rl_rows: int
    rl_prompt: int
    rl_new: int
    rl_micro: int
    rl_group: int


SIZES = {"tiny": CheckSizes(sft=(1, 256, 2), decode_rows=8, decode_prompt=48, decode_steps=16, rl_rows=4,
                            rl_prompt=32, rl_new=12, rl_micro=2, rl_group=2),
         "gpu": CheckSizes(sft=(1, 4096, 5), decode_rows=64, decode_prompt=3008, decode_steps=64, rl_rows=32,
                           rl_prompt=1024, rl_new=1024, rl_micro=8, rl_group=8)}


# ------------------------------------------------------------------------------------------------ pure functions
def rl_check_config(s: CheckSizes):
    """The RL config of the check's round: LoRA, one rollout call of ``rl_rows`` rows (``rl_rows / group`` prompts),
    prompts of exactly ``max_prompt_tokens``, one mini-batch, micro-batches of ``rl_micro`` rows, no KL reference."""
    from fl1_core.rl.config import RLConfig

    return RLConfig.gpu_release(implementation="corrected", lora={"r": 16}, group_size=s.rl_group,
                                prompts_per_step=s.rl_rows // s.rl_group, rollout_batch_size=s.rl_rows,
                                max_new_tokens=s.rl_new, max_prompt_tokens=s.rl_prompt, mini_batches=1,
                                micro_batch_size=s.rl_micro, kl_beta=0.0)


def decode_weight_bytes(model) -> int:
    """Bytes of the text model's parameters as stored, without the input embedding (what one decode step reads)."""
    return sum(p.numel() * p.element_size() for n, p in model.base.named_parameters()
               if not n.startswith("model.visual.") and "embed_tokens" not in n)


def decode_bound_ms(weight_bytes: int, kv_bytes: int, bandwidth: float | None) -> float | None:
    """Memory-bound time of one decode step: ``1000 · (weight_bytes + kv_bytes) / bandwidth`` ms (None without a
    known bandwidth)."""
    return 1000.0 * (weight_bytes + kv_bytes) / bandwidth if bandwidth else None


def ratio(measured: float | None, reference: float | None) -> float | None:
    return measured / reference if measured is not None and reference else None


# ----------------------------------------------------------------------------------------------------- the model
def build(tiny: bool, device: torch.device):
    from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration

    from fl1_core.config import LatentConfig
    from fl1_core.memory_shapes import QWEN3_VL_8B
    from fl1_core.model import FutureL1Model

    if tiny:
        from fl1_core.tiny import build_tiny_future_l1

        model, _ = build_tiny_future_l1(seed=0)
        model.to(device=device, dtype=torch.bfloat16)
        model.latent_config = model.latent_config.replace(budget_mode="fixed", max_latent_token=4,
                                                          force_initial_latent=True)
        return model
    config = Qwen3VLConfig(**QWEN3_VL_8B)
    vocab = config.text_config.vocab_size
    torch.manual_seed(0)
    with torch.device(device):
        base = Qwen3VLForConditionalGeneration._from_config(config, dtype=torch.bfloat16, attn_implementation="sdpa")
    lc = LatentConfig(latent_token_id=vocab - 3, latent_start_id=vocab - 2, latent_end_id=vocab - 1,
                      budget_mode="fixed", max_latent_token=16, force_initial_latent=True)
    return FutureL1Model(base.eval(), lc)


def text_params(model) -> int:
    return sum(p.numel() for n, p in model.base.named_parameters() if not n.startswith("model.visual."))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_bytes(device: torch.device) -> int | None:
    return torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None


def random_ids(model, rows: int, length: int, seed: int, device: torch.device) -> dict:
    vocab = model.config.text_config.vocab_size
    ids = torch.randint(0, vocab - 300, (rows, length), generator=torch.Generator().manual_seed(seed)).to(device)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


# ------------------------------------------------------------------------------------------------------ the parts
def sft_batch(model, batch: int, length: int, spans: int, device: torch.device) -> dict:
    """Random text with ``spans`` latent spans of K slots each; latent targets are random vectors (the vision tower is
    not timed here)."""
    lc = model.latent_config
    k = lc.max_latent_token
    g = torch.Generator().manual_seed(0)
    data = random_ids(model, batch, length, 0, torch.device("cpu"))
    ids = data["input_ids"]
    step = length // (spans + 1)
    for s in range(1, spans + 1):
        at = s * step
        ids[:, at] = lc.latent_start_id
        ids[:, at + 1 : at + 1 + k] = lc.latent_token_id
        ids[:, at + 1 + k] = lc.latent_end_id
    labels = ids.clone()
    labels[ids == lc.latent_token_id] = -100
    n_slots = int((ids == lc.latent_token_id).sum())
    hidden = model.config.text_config.hidden_size
    return {"input_ids": ids.to(device), "attention_mask": torch.ones_like(ids).to(device), "labels": labels.to(device),
            "latent_vectors": (0.02 * torch.randn(n_slots, hidden, generator=g)).to(device, torch.bfloat16)}


def time_sft(model, device, batch, length, spans, peak, steps: int = 3) -> dict:
    from fl1_core.placement import autocast

    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-5)
    data = sft_batch(model, batch, length, spans, device)
    model.train()
    times, losses = [], []
    for i in range(steps + 2):  # 2 warm-up steps
        sync(device)
        t0 = time.perf_counter()
        with autocast(model, device):
            loss = model(**data).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        sync(device)
        if i >= 2:
            times.append(time.perf_counter() - t0)
            losses.append(float(loss.detach()))
    model.eval()
    tokens_s = batch * length / (sum(times) / len(times))
    n, n_train = text_params(model), sum(p.numel() for p in params)
    flops_token = 4 * n + 2 * n_train
    return {"batch": batch, "tokens_per_row": length, "steps": steps, "tokens_per_s": tokens_s,
            "flops_per_token": flops_token, "mfu": tokens_s * flops_token / peak if peak else None,
            "loss_first": losses[0], "loss_last": losses[-1]}


def time_decode(model, device, rows: int, prompt_len: int, steps: int, bandwidth: float | None) -> dict:
    """ms per decode step of ``rows`` rows after a ``prompt_len`` prefill, against the memory bound."""
    from fl1_core.decoding import generate_with_latents
    from fl1_core.memory_shapes import dims_of, kv_cache_bytes
    from fl1_core.placement import autocast

    inputs = random_ids(model, rows, prompt_len, 1, device)

    def run(n: int) -> float:
        sync(device)
        t0 = time.perf_counter()
        with torch.no_grad(), autocast(model, device):
            generate_with_latents(model, inputs, max_new_tokens=n, eos_token_id=-1)
        sync(device)
        return time.perf_counter() - t0

    run(2)  # warm-up
    prefill = run(1)
    total = run(steps)
    ms_step = 1000 * (total - prefill) / (steps - 1)
    weights = decode_weight_bytes(model)
    kv = kv_cache_bytes(dims_of(model.base), rows, prompt_len + steps // 2, 2)
    bound = decode_bound_ms(weights, kv, bandwidth)
    return {"rows": rows, "prompt_tokens": prompt_len, "new_tokens": steps, "ms_per_step": ms_step,
            "prefill_s": prefill, "weight_bytes_read": weights, "kv_bytes_read": kv, "bound_ms_per_step": bound,
            "bound_ratio": ratio(bound, ms_step)}


def static_decode_ratios(model, device, prompt_len, rows_list, new_tokens) -> dict:
    """The static-cache decode loop against the frozen reference loop (``benchmarks/reference_decode.py``): ms per
    step, (t(T) - t(T/4)) / (3T/4) with no EOS, and seconds per rollout (n samples of one prompt: the reference
    decodes n copies, the static loop prefills once), eager and, on CUDA, with the step compiled (CUDA graphs)."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from reference_decode import reference_generate_with_latents

    from fl1_core.decoding import generate_with_latents
    from fl1_core.placement import autocast

    vocab = model.config.text_config.vocab_size
    ids = torch.randint(0, vocab - 300, (1, prompt_len), generator=torch.Generator().manual_seed(3)).to(device)
    one = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    loops = {"reference": lambda n, k: reference_generate_with_latents(
                 model, {k_: v.expand(n, -1) for k_, v in one.items()}, max_new_tokens=k, eos_token_id=-1),
             "static": lambda n, k: generate_with_latents(model, one, num_samples=n, max_new_tokens=k,
                                                          eos_token_id=-1, check_every=0)}
    if device.type == "cuda":
        loops["static_compiled"] = lambda n, k: generate_with_latents(
            model, one, num_samples=n, max_new_tokens=k, eos_token_id=-1, check_every=0, compile_step=True)

    def run(fn, n: int, k: int) -> float:
        sync(device)
        t0 = time.perf_counter()
        with torch.no_grad(), autocast(model, device):
            fn(n, k)
        sync(device)
        return time.perf_counter() - t0

    out = {"prompt_tokens": prompt_len, "new_tokens": new_tokens}
    short = max(1, new_tokens // 4)
    for n in rows_list:
        row = {}
        for name, fn in loops.items():
            run(fn, n, new_tokens)  # warm-up (and compilation)
            t_short, t_full = run(fn, n, short), run(fn, n, new_tokens)
            row[name] = {"ms_per_step": 1000 * (t_full - t_short) / (new_tokens - short), "rollout_s": t_full}
        for name in loops:
            if name != "reference":
                row[f"{name}_step_ratio"] = row["reference"]["ms_per_step"] / row[name]["ms_per_step"]
                row[f"{name}_rollout_ratio"] = row["reference"]["rollout_s"] / row[name]["rollout_s"]
        out[f"rows_{n}"] = row
    return out


def rl_round(model, device, sizes: CheckSizes, plan_model, gpu_mem_gb: float) -> dict:
    """One rollout call and one micro-batch update of :func:`rl_check_config`; peak memory per phase vs the plan."""
    from fl1_core.decoding import generate_with_latents, replay
    from fl1_core.losses import dapo_policy_loss
    from fl1_core.memory_plan import plan_memory
    from fl1_core.placement import autocast, enable_activation_checkpointing
    from fl1_core.run_plan import rl_plan_inputs

    cfg = rl_check_config(sizes)
    plan = plan_memory(plan_model, rl_plan_inputs(cfg, gpus=1, gpu_mem_gb=gpu_mem_gb))
    rows, micro = plan.inputs.rollout_rows, plan.inputs.micro_batch
    inputs = random_ids(model, rows, cfg.max_prompt_tokens, 2, device)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.learning_rate)
    for p in params:  # AdamW's moments exist during rollouts, as after a run's first step
        p.grad = torch.zeros_like(p)
    opt.step()
    opt.zero_grad(set_to_none=True)
    reset_peak(device)
    t0 = time.perf_counter()
    with torch.no_grad(), autocast(model, device):
        gen = generate_with_latents(model, inputs, max_new_tokens=cfg.max_new_tokens, do_sample=True,
                                    temperature=cfg.temperature, top_p=cfg.top_p, seed=0, eos_token_id=-1)
    sync(device)
    rollout_s, rollout_peak = time.perf_counter() - t0, peak_bytes(device)
    part = {k: v[:micro] for k, v in inputs.items()}
    gen_part = type(gen)(**{k: (v[:micro] if isinstance(v, (torch.Tensor, list)) else v)
                            for k, v in vars(gen).items()})
    enable_activation_checkpointing(model.base)
    model.train()
    reset_peak(device)
    t1 = time.perf_counter()
    with autocast(model, device):
        rep = replay(model, part, gen_part, temperature=cfg.temperature, chunk_size=cfg.logprob_chunk)
    adv = torch.linspace(-1, 1, micro, device=device)
    mask = gen_part.valid_mask.to(device).float()
    loss, _ = dapo_policy_loss(rep.logprobs.float(), rep.logprobs.detach().float(), adv, mask, eps_low=0.2,
                               eps_high=0.28, dual_clip=3.0, agg="token", num_tokens=float(mask.sum()),
                               num_seqs=float(micro))
    loss.backward()
    opt.step()
    sync(device)
    update_s, update_peak = time.perf_counter() - t1, peak_bytes(device)
    opt.zero_grad(set_to_none=True)
    model.eval()
    disable = getattr(model.base, "activation_checkpointing_disable", None) or model.base.gradient_checkpointing_disable
    disable()
    planned = {p: sum(v.values()) for p, v in plan.phases.items()}
    gib = 1024**3
    return {"config": {k: getattr(cfg, k) for k in ("group_size", "prompts_per_step", "rollout_batch_size",
                                                    "max_prompt_tokens", "max_new_tokens", "micro_batch_size")},
            "rollout_rows": rows, "micro_batch": micro, "rollout_s": rollout_s, "update_s": update_s,
            "loss": float(loss.detach()),
            "plan_gib": {p: v / gib for p, v in planned.items()},
            "measured_peak_gib": {"rollout": None if rollout_peak is None else rollout_peak / gib,
                                  "update": None if update_peak is None else update_peak / gib},
            "measured_over_plan": {"rollout": ratio(rollout_peak, planned["rollout"]),
                                   "update": ratio(update_peak, planned["update"])}}


def attention_kernels(model, device, sizes: CheckSizes, bandwidth) -> dict:
    """The decode at rollout batch and one SFT step, with SDPA and with flash-attention 2 (when usable)."""
    import importlib.util

    out: dict = {}
    usable = device.type == "cuda" and importlib.util.find_spec("flash_attn") is not None
    for impl in ("sdpa", "flash_attention_2"):
        if impl == "flash_attention_2" and not usable:
            out[impl] = {"skipped": "flash_attn is not installed" if device.type == "cuda" else "not a CUDA device"}
            continue
        model.base.set_attn_implementation(impl)
        rows, prompt = sizes.decode_rows, sizes.decode_prompt
        out[impl] = {"decode": time_decode(model, device, rows, prompt, 16, bandwidth)["ms_per_step"],
                     "sft_tokens_per_s": time_sft(model, device, *sizes.sft, None, steps=2)["tokens_per_s"]}
    model.base.set_attn_implementation("sdpa")
    fa2 = out.get("flash_attention_2", {})
    if "decode" in fa2:
        out["sdpa_over_fa2"] = {"decode_ms": out["sdpa"]["decode"] / fa2["decode"],
                                "sft_time": fa2["sft_tokens_per_s"] / out["sdpa"]["sft_tokens_per_s"]}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tiny", action="store_true", help="tiny shapes on the CPU (the CI run of the same code)")
    ap.add_argument("--out", default="runs/gpu_check.json")
    args = ap.parse_args()
    from fl1_core.adapters import apply_lora
    from fl1_core.placement import resolve_device, upcast_trainable

    device = torch.device("cpu") if args.tiny else resolve_device("auto")
    if not args.tiny and device.type != "cuda":
        raise SystemExit("gpu_check: no CUDA device here; run with --tiny for the CPU version of the check")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    peak, bandwidth = next((v for k, v in GPU_PEAKS.items() if k in name), (None, None))
    gpu_mem_gb = torch.cuda.get_device_properties(device).total_memory / 1024**3 if device.type == "cuda" else 80.0
    sizes = SIZES["tiny" if args.tiny else "gpu"]
    t0 = time.perf_counter()
    model = build(args.tiny, device)
    plan_model = model.base.config.to_dict() if args.tiny else "qwen3-vl-8b"
    model.freeze_vision(True)
    apply_lora(model)
    upcast_trainable(model)
    result = {
        "device": name, "tiny": args.tiny, "torch": torch.__version__, "build_s": time.perf_counter() - t0,
        "sizes": asdict(sizes), "parameters": sum(p.numel() for p in model.base.parameters()),
        "text_parameters": text_params(model), "peak_bf16_flops": peak, "hbm_bytes_per_s": bandwidth,
        "sft": time_sft(model, device, *sizes.sft, peak),
        "decode_batch1": time_decode(model, device, 1, sizes.decode_prompt, sizes.decode_steps, bandwidth),
        "decode_rollout": time_decode(model, device, sizes.decode_rows, sizes.decode_prompt, sizes.decode_steps,
                                      bandwidth),
        "rl_round": rl_round(model, device, sizes, plan_model, gpu_mem_gb),
        "static_decode": static_decode_ratios(model, device, *((32, (2, 4), 8) if args.tiny else (1024, (16, 64), 128))),
        "attention": attention_kernels(model, device, sizes, bandwidth),
    }
    result["total_s"] = time.perf_counter() - t0
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
