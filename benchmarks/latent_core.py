"""Side-by-side performance ratios of the latent core, measured in one process.

1. decoding throughput of ``generate_with_latents`` vs HF ``model.generate`` (same model, same 8 prompts, same
   number of steps): without latent spans, and with ~30 % of the steps inside latent spans;
2. an SFT step (forward + backward) on a batch with latent spans vs the same batch with the spans as plain text
   tokens (same length): the extra cost should be only the frozen vision pass over the future frames;
3. decoding time as the latent budget grows (8, 16, 32, 64): time per step should stay flat (linear in steps).

Usage: ``python benchmarks/latent_core.py [--model tiny|PATH] [--repeats 5] [--threads N]`` (prints ratios; nothing
is asserted). ``--smoke`` runs the smallest sizes (CI): 2 prompts or records, 10 decode steps, budgets 2 and 4, one
repeat.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from PIL import Image

from fl1_core.data.collator import PromptExample, SFTCollator, SFTExample
from fl1_core.data.prompt_inputs import build_prompt_inputs
from fl1_core.decoding import generate_with_latents


def load(model_arg: str):
    if model_arg == "tiny":
        from fl1_core.tiny import build_tiny_future_l1

        return build_tiny_future_l1(seed=0)
    from fl1_core.model import load_future_l1

    return load_future_l1(model_arg, device="cuda" if torch.cuda.is_available() else None)


def timed(fn, repeats: int) -> float:
    """Median wall time of ``fn`` over ``repeats`` runs after one warm-up."""
    fn()
    times = []
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def images(rng, n):
    return [Image.fromarray(rng.integers(0, 255, (96, 96, 3), dtype=np.uint8)) for _ in range(n)]


def decoding(model, processor, repeats: int, steps: int = 64, rows: int = 8) -> None:
    rng = np.random.default_rng(0)
    prompts = [PromptExample(str(i), "what happens next? " * (1 + i % 3), images(rng, 1 + i % 2))
               for i in range(rows)]
    inputs = build_prompt_inputs(processor, prompts)
    cfg = model.latent_config
    hf = timed(lambda: model.base.generate(**inputs, max_new_tokens=steps, min_new_tokens=steps, do_sample=False), repeats)
    ours = timed(lambda: generate_with_latents(model, inputs, max_new_tokens=steps, eos_token_id=[]), repeats)
    span = int(0.3 * steps) - 2
    latent_cfg = cfg.replace(force_initial_latent=True, budget_mode="fixed", max_latent_token=span)
    gen = generate_with_latents(model, inputs, max_new_tokens=steps, eos_token_id=[], latent_config=latent_cfg)
    share = float(gen.latent_mask.float().mean())
    ours_lat = timed(
        lambda: generate_with_latents(model, inputs, max_new_tokens=steps, eos_token_id=[], latent_config=latent_cfg),
        repeats,
    )
    tps = lambda t: rows * steps / t  # noqa: E731
    print(f"decoding, {rows} prompts x {steps} steps")
    print(f"  HF generate                 {tps(hf):9.1f} tok/s")
    print(f"  generate_with_latents       {tps(ours):9.1f} tok/s   ratio {hf / ours:.3f}x  (target >= 0.9)")
    print(f"  with latent spans ({share:.0%})   {tps(ours_lat):9.1f} tok/s   ratio {hf / ours_lat:.3f}x  (target >= 0.85)")


def sft_step(model, processor, repeats: int, rows: int = 4) -> None:
    rng = np.random.default_rng(1)
    examples = [
        SFTExample(
            str(i),
            "what happens next?",
            ["the ball moves", "it hits the box", "the box slides"],
            "the red ball hits the blue box",
            question_images=images(rng, 2),
            future_frames=images(rng, 2),
        )
        for i in range(rows)
    ]
    latent_batch = SFTCollator(processor, model.latent_config)(examples)
    text_batch = {k: v for k, v in latent_batch.items() if k not in ("pixel_values_latent", "image_grid_thw_latent")}
    filler = processor.tokenizer.convert_tokens_to_ids("Ġthe")
    is_latent = latent_batch["input_ids"] == model.latent_config.latent_token_id
    text_batch["input_ids"] = latent_batch["input_ids"].masked_fill(is_latent, filler)
    text_batch["labels"] = latent_batch["labels"].masked_fill(is_latent, filler)
    model.train()
    model.freeze_vision(True)

    def step(batch):
        def run():
            model.zero_grad(set_to_none=True)
            model(**batch).loss.backward()

        return run

    t_latent, t_text = timed(step(latent_batch), repeats), timed(step(text_batch), repeats)
    pixels, grid = latent_batch["pixel_values_latent"], latent_batch["image_grid_thw_latent"]
    t_vision = timed(lambda: model.latent_targets(pixels, grid), repeats)
    model.eval()
    print(f"SFT step (forward + backward), {rows} records x 2 future frames, "
          f"{latent_batch['input_ids'].shape[1]} tokens")
    print(f"  spans as plain text tokens  {t_text * 1e3:8.1f} ms")
    print(f"  latent spans                {t_latent * 1e3:8.1f} ms   ratio {t_latent / t_text:.3f}x  (target <= 1.15)")
    print(f"  of which frozen vision pass {t_vision * 1e3:8.1f} ms   ratio without it {(t_latent - t_vision) / t_text:.3f}x")


def budget_scaling(model, processor, repeats: int, budgets=(8, 16, 32, 64), rows: int = 8, text_steps: int = 16
                   ) -> None:
    rng = np.random.default_rng(2)
    inputs = build_prompt_inputs(processor, [PromptExample(str(i), "what happens next?", images(rng, 1))
                                             for i in range(rows)])
    print(f"decoding time vs latent budget (one forced span, then {text_steps} text steps)")
    base = None
    for budget in budgets:
        cfg = model.latent_config.replace(force_initial_latent=True, budget_mode="fixed", max_latent_token=budget)
        steps = budget + 2 + text_steps
        t = timed(lambda: generate_with_latents(model, inputs, max_new_tokens=steps, eos_token_id=[], latent_config=cfg), repeats)
        per_step = t / steps * 1e3
        base = base or per_step
        print(f"  budget {budget:3d}: {steps:3d} steps  {t * 1e3:8.1f} ms   {per_step:6.2f} ms/step  "
              f"({per_step / base:.2f}x of budget {budgets[0]})")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny", help="'tiny' or a local Qwen3-VL / Future-L1 checkpoint dir")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads (default: torch's)")
    parser.add_argument("--smoke", action="store_true", help="smallest sizes (CI): 2 rows, 10 steps, budgets 2 and 4")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    rows, steps, budgets, text_steps = (2, 10, (2, 4), 2) if args.smoke else (8, 64, (8, 16, 32, 64), 16)
    repeats = 1 if args.smoke else args.repeats
    torch.manual_seed(0)
    model, processor = load(args.model)
    print(f"device {model.device}, threads {torch.get_num_threads()}, "
          f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters")
    decoding(model, processor, repeats, steps, rows)
    sft_step(model, processor, repeats, min(rows, 4))
    budget_scaling(model, processor, repeats, budgets, rows, text_steps)


if __name__ == "__main__":
    main()
