"""SFT tokens/s of ``fl1_core.sft.train_sft`` vs a plain ``transformers`` forward/backward loop, side by side.

Same tiny Qwen3-VL (seed 0), the same 8 world records as one batch (``--batch``), fp32 on CPU, AdamW + grad
clipping in both:

* ``plain``: ``Qwen3VLForConditionalGeneration(**batch, labels=…)`` → ``loss.backward()`` → clip → ``AdamW.step()``
  on a batch collated once (text mode: plain transformers has no latent slots) — the ideal upper bound;
* ``plain+collate``: the same, collating the batch every step (what any real loop must do);
* ``ours-text`` / ``ours-latent``: ``train_sft`` (accelerate, metrics file, collation, NaN checks), tokens/s from its
  per-step metrics (first step dropped).

Runs alternate (plain, ours, plain, ours, …) and the median per step is reported, so load changes on a shared machine
hit both sides. Prints the ratios ours / plain. Usage::

    python benchmarks/sft_throughput.py [--steps 12] [--rounds 2] [--batch 8] [--threads 2] [--world DIR]

``--smoke`` runs the smallest sizes (CI): 2 steps (one timed), 1 round, a batch of 2.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch


def plain_loop(records, steps: int, collate_every_step: bool) -> list[float]:
    """tokens/s per step of a plain HF loop on a fresh tiny model."""
    from fl1_core.data.collator import SFTCollator
    from fl1_core.data.examples import sft_example
    from fl1_core.tiny import build_tiny_future_l1

    model, proc = build_tiny_future_l1(seed=0)
    base = model.base
    base.model.visual.requires_grad_(False)
    base.train()
    collator = SFTCollator(proc, model.latent_config, mode="text")
    examples = [sft_example(r, with_future=False) for r in records]
    params = [p for p in base.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.01)
    batch = None
    rates = []
    for _ in range(steps):
        t0 = time.perf_counter()
        if batch is None or collate_every_step:
            batch = collator(examples)
            batch.pop("ids")
        out = base(**batch)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        rates.append(float(batch["attention_mask"].sum()) / (time.perf_counter() - t0))
    return rates[1:]


def our_loop(records, steps: int, mode: str) -> list[float]:
    """tokens/s per step of train_sft (from metrics.jsonl) on a fresh tiny model."""
    from fl1_core.sft import SFTConfig, train_sft
    from fl1_core.tiny import build_tiny_future_l1

    model, proc = build_tiny_future_l1(seed=0)
    cfg = SFTConfig.cpu_world(per_device_batch_size=len(records), gradient_accumulation_steps=1, max_steps=steps,
                              save_every=0, progress_bar=False, learning_rate=1e-3, warmup_ratio=0.0)
    with tempfile.TemporaryDirectory() as out:
        result = train_sft(model, proc, records, cfg, out, mode=mode)
    return [r["time/tokens_per_s"] for r in result.metrics[1:]]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--batch", type=int, default=8, help="records per step (the first N of the world's SFT set)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--world", type=Path, default=None, help="an existing world dir (default: generate a small one)")
    ap.add_argument("--smoke", action="store_true", help="smallest sizes (CI): 2 steps, 1 round, batch 2")
    args = ap.parse_args(argv)
    if args.smoke:
        args.steps, args.rounds, args.batch = 2, 1, 2
    torch.set_num_threads(args.threads)

    from fl1_core.data.formats import load_sft_records
    from fl1_core.data.world import WorldConfig, generate_world

    tmp = tempfile.TemporaryDirectory()
    world = args.world or Path(tmp.name) / "world"
    if args.world is None:
        generate_world(world, seed=0, config=WorldConfig.small())
    records = list(load_sft_records(world / "sft.json").records)[: args.batch]

    rates: dict[str, list[float]] = {"plain": [], "plain+collate": [], "ours-text": [], "ours-latent": []}
    for _ in range(args.rounds):
        rates["plain"] += plain_loop(records, args.steps, collate_every_step=False)
        rates["ours-text"] += our_loop(records, args.steps, "text")
        rates["plain+collate"] += plain_loop(records, args.steps, collate_every_step=True)
        rates["ours-latent"] += our_loop(records, args.steps, "latent")
    med = {k: statistics.median(v) for k, v in rates.items()}
    print(f"batch {len(records)} examples, {args.steps} steps × {args.rounds} rounds, {args.threads} threads (median tokens/s)")
    for k, v in med.items():
        print(f"  {k:14s} {v:9.0f} tokens/s")
    print(f"ratio ours-text / plain          = {med['ours-text'] / med['plain']:.3f}")
    print(f"ratio ours-text / plain+collate  = {med['ours-text'] / med['plain+collate']:.3f}")
    print(f"ratio ours-latent / plain        = {med['ours-latent'] / med['plain']:.3f}  (latent mode also encodes the "
          "future frames for the MSE targets)")


if __name__ == "__main__":
    main()
