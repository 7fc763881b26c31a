"""One device check for the GPU path (issue 12): a random-init model with Qwen3-VL-8B's shapes in bf16 (no
download), timed on the GPU. Writes one JSON.

    bash scripts/gpu_check.sh [--out runs/gpu_check.json]        # on a CUDA machine, <= 8 minutes on one H200
    bash scripts/gpu_check.sh --tiny                              # the same code path, tiny shapes, on the CPU (CI)

Measured, each against its bound:

- latent SFT steps (LoRA: the 1-GPU path; bf16 autocast over fp32 adapters): tokens/s, and MFU = tokens/s × FLOPs
  per token / the GPU's dense bf16 peak, FLOPs per token = 2 N (forward) + 2 N (input gradients) + 2 N_trainable;
- latent decoding (batch 1, spans of K latents, KV cache): ms per step against weight bytes / HBM bandwidth;
- the static-cache decode loop against the frozen reference loop at 16 and 64 rows: ratios per step and per rollout
  (n samples of one prompt), eager and with the step compiled (CUDA graphs);
- one RL update on a small group (sample, replay with gradient checkpointing and chunked log-probs, DAPO loss,
  AdamW): peak memory.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

# dense bf16 peak FLOP/s and HBM bandwidth (bytes/s) of known GPUs, from their vendors' data sheets
GPU_PEAKS = {"H200": (989e12, 4.8e12), "H100": (989e12, 3.35e12), "A100": (312e12, 2.0e12),
             "L40S": (362e12, 0.864e12)}


def build(tiny: bool, device: torch.device):
    from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration

    from fl1_core.config import LatentConfig
    from fl1_core.memory_plan import QWEN3_VL_8B
    from fl1_core.model import FutureL1Model
    from fl1_core.placement import attn_implementation_for

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
        base = Qwen3VLForConditionalGeneration._from_config(
            config, dtype=torch.bfloat16, attn_implementation=attn_implementation_for(device))
    lc = LatentConfig(latent_token_id=vocab - 3, latent_start_id=vocab - 2, latent_end_id=vocab - 1,
                      budget_mode="fixed", max_latent_token=16, force_initial_latent=True)
    return FutureL1Model(base.eval(), lc)


def text_params(model) -> int:
    return sum(p.numel() for n, p in model.base.named_parameters() if not n.startswith("model.visual."))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def sft_batch(model, batch: int, length: int, spans: int, device: torch.device) -> dict:
    """Random text with ``spans`` latent spans of K slots each; latent targets are random vectors (the vision tower is
    not timed here)."""
    lc = model.latent_config
    k = lc.max_latent_token
    vocab = model.config.text_config.vocab_size
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, vocab - 300, (batch, length), generator=g)
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


def time_sft(model, device, batch, length, steps, peak) -> dict:
    from fl1_core.placement import autocast

    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-5)
    data = sft_batch(model, batch, length, spans=4, device=device)
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


def time_decode(model, device, prompt_len, new_tokens, bandwidth) -> dict:
    from fl1_core.decoding import generate_with_latents
    from fl1_core.placement import autocast

    vocab = model.config.text_config.vocab_size
    ids = torch.randint(0, vocab - 300, (1, prompt_len), generator=torch.Generator().manual_seed(1)).to(device)
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}

    def run(n: int) -> float:
        sync(device)
        t0 = time.perf_counter()
        with torch.no_grad(), autocast(model, device):
            generate_with_latents(model, inputs, max_new_tokens=n, eos_token_id=-1)
        sync(device)
        return time.perf_counter() - t0

    run(4)  # warm-up
    prefill = run(1)
    total = run(new_tokens)
    ms_step = 1000 * (total - prefill) / (new_tokens - 1)
    weight_bytes = 2 * text_params(model)
    bound = 1000 * weight_bytes / bandwidth if bandwidth else None
    return {"prompt_tokens": prompt_len, "new_tokens": new_tokens, "ms_per_step": ms_step, "prefill_s": prefill,
            "bound_ms_per_step": bound, "bound_ratio": (bound / ms_step) if bound else None}


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


def rl_update_memory(model, device, group, new_tokens) -> dict:
    from fl1_core.decoding import generate_with_latents, replay
    from fl1_core.losses import dapo_policy_loss
    from fl1_core.placement import autocast, enable_activation_checkpointing

    vocab = model.config.text_config.vocab_size
    ids = torch.randint(0, vocab - 300, (group, 256), generator=torch.Generator().manual_seed(2)).to(device)
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    with torch.no_grad(), autocast(model, device):
        gen = generate_with_latents(model, inputs, max_new_tokens=new_tokens, do_sample=True, temperature=0.9,
                                    seed=0, eos_token_id=-1)
    enable_activation_checkpointing(model.base)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-6)
    with autocast(model, device):
        rep = replay(model, inputs, gen, temperature=0.9, chunk_size=1024)
    adv = torch.linspace(-1, 1, group, device=device)
    mask = gen.valid_mask.to(device).float()
    loss, _ = dapo_policy_loss(rep.logprobs.float(), rep.logprobs.detach().float(), adv, mask, eps_low=0.2,
                               eps_high=0.28, dual_clip=3.0, agg="token", num_tokens=float(mask.sum()),
                               num_seqs=float(group))
    loss.backward()
    opt.step()
    sync(device)
    model.eval()
    disable = getattr(model.base, "activation_checkpointing_disable", None) or model.base.gradient_checkpointing_disable
    disable()
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    return {"group": group, "new_tokens": new_tokens, "seconds": time.perf_counter() - t0,
            "peak_memory_gib": peak / 1024**3 if peak is not None else None, "loss": float(loss.detach())}


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
    t0 = time.perf_counter()
    model = build(args.tiny, device)
    model.freeze_vision(True)
    apply_lora(model)
    upcast_trainable(model)
    built = time.perf_counter() - t0
    sizes = dict(sft=(1, 256, 2), decode=(64, 16), static=(32, (2, 4), 8), rl=(2, 16)) if args.tiny else \
        dict(sft=(1, 4096, 5), decode=(1024, 128), static=(1024, (16, 64), 128), rl=(4, 512))
    result = {
        "device": name, "tiny": args.tiny, "torch": torch.__version__, "build_s": built,
        "parameters": sum(p.numel() for p in model.base.parameters()), "text_parameters": text_params(model),
        "peak_bf16_flops": peak, "hbm_bytes_per_s": bandwidth,
        "sft": time_sft(model, device, *sizes["sft"], peak),
        "decode": time_decode(model, device, *sizes["decode"], bandwidth),
        "static_decode": static_decode_ratios(model, device, *sizes["static"]),
        "rl_update": rl_update_memory(model, device, *sizes["rl"]),
    }
    result["total_s"] = time.perf_counter() - t0
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
