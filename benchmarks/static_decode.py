"""Side-by-side ratios of the static-cache latent decode loop against the frozen reference loop, in one process.

On the shipped world base (CPU, fixed threads, one fixed prompt of two frames and a question):

1. per decode step: (t(T2 steps) − t(T1 steps)) / (T2 − T1) with a fixed budget (no EOS), so prefill is excluded;
2. per rollout: a group of n sampled responses to one prompt, as RL draws them (temperature 0.9, top-p 0.99, real
   EOS, up to 128 tokens): the reference decodes n copies of the prompt, the static loop prefills it once.

Both open with a latent span (forced ``<|latent_start|>``, loose cap 16: the world base is not latent-trained, so
without the force it would never enter one), so the latent feed is part of what is timed.

Both loops draw the same tokens (``tests/test_static_decode.py``), so they do the same work per row. Timings are
medians over interleaved repeats. Usage: ``python benchmarks/static_decode.py [--threads 2] [--repeats 5]``;
``--smoke`` runs tiny sizes (CI). Nothing is asserted; ratio = reference time / static time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch
from PIL import Image

from fl1_core.data.collator import PromptExample
from fl1_core.data.prompt_inputs import build_prompt_inputs
from fl1_core.decoding import generate_with_latents
from fl1_core.model import load_future_l1
from fl1_core.world_base import world_base_path
from reference_decode import reference_generate_with_latents

QUESTION = "the red ball rolls toward the blue box. what happens next, and which light turns on?"


def medians(fns: dict, repeats: int) -> dict:
    """Median wall time of each function, runs interleaved (one warm-up each) so machine load hits both alike."""
    for fn in fns.values():
        fn()
    times = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def prompt_inputs(processor, rows: int) -> dict:
    rng = np.random.default_rng(0)
    frames = [Image.fromarray(rng.integers(0, 255, (96, 96, 3), dtype=np.uint8)) for _ in range(2)]
    return build_prompt_inputs(processor, [PromptExample("q", QUESTION, question_images=frames)] * rows)


def line(label: str, ref: float, new: float, unit: str = "ms") -> None:
    scale = 1e3 if unit == "ms" else 1.0
    print(f"  {label:<34} reference {ref * scale:9.2f} {unit}   static {new * scale:9.2f} {unit}   "
          f"ratio {ref / new:.2f}x")


def latent_config(model):
    return model.latent_config.replace(budget_mode="loose", loose_cap=16, force_initial_latent=True)


def per_step(model, processor, rows: int, t1: int, t2: int, repeats: int) -> None:
    one, many = prompt_inputs(processor, 1), prompt_inputs(processor, rows)
    kw = dict(latent_config=latent_config(model), do_sample=True, temperature=0.9, top_p=0.99, seed=0,
              eos_token_id=[])
    fns = {(name, t): fn for t in (t1, t2) for name, fn in (
        ("ref", lambda t=t: reference_generate_with_latents(model, many, max_new_tokens=t, **kw)),
        ("new", lambda t=t: generate_with_latents(model, one, num_samples=rows, max_new_tokens=t, check_every=0,
                                                  **kw)))}
    m = medians(fns, repeats)
    step = {name: (m[(name, t2)] - m[(name, t1)]) / (t2 - t1) for name in ("ref", "new")}
    line(f"per step, {rows} rows", step["ref"], step["new"])


def per_rollout(model, processor, rows: int, max_new_tokens: int, repeats: int) -> None:
    one, many = prompt_inputs(processor, 1), prompt_inputs(processor, rows)
    kw = dict(max_new_tokens=max_new_tokens, latent_config=latent_config(model), do_sample=True, temperature=0.9,
              top_p=0.99, seed=1)
    ref_gen = reference_generate_with_latents(model, many, **kw)
    new_gen = generate_with_latents(model, one, num_samples=rows, **kw)
    same = torch.equal(ref_gen.sequences, new_gen.sequences)
    m = medians({"ref": lambda: reference_generate_with_latents(model, many, **kw),
                 "new": lambda: generate_with_latents(model, one, num_samples=rows, **kw)}, repeats)
    line(f"per rollout, {rows} samples of 1 prompt", m["ref"], m["new"])
    print(f"    {int(ref_gen.lengths.sum())} tokens, {sum(ref_gen.num_latents)} latents, same tokens: {same}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "2")))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (CI): rows 2 and 4, a few steps")
    args = parser.parse_args(argv)
    before = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        model, processor = load_future_l1(world_base_path(), device=None)
        model.eval()
        rows, (t1, t2), new_tokens, repeats = ((2, 4), (2, 6), 6, 1) if args.smoke else ((16, 64), (16, 80), 128,
                                                                                           args.repeats)
        width = prompt_inputs(processor, 1)["input_ids"].shape[1]
        print(f"static-cache decode vs reference: world base, CPU, {torch.get_num_threads()} threads, "
              f"prompt {width} tokens, fp32")
        for r in rows:
            per_step(model, processor, r, t1, t2, repeats)
        for r in rows:
            per_rollout(model, processor, r, new_tokens, repeats)
    finally:
        torch.set_num_threads(before)


if __name__ == "__main__":
    main()
