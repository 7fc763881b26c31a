"""RL optimiser-step throughput: our LA-DAPO trainer vs TRL's ``GRPOTrainer`` (``loss_type="dapo"``), side by side.

Both sides train the SAME tiny Qwen3-VL (``fl1_core.tiny``, fresh copies of one seed) on the SAME text prompts (the
world's RL questions without frames, so TRL's text path applies), with the same group size, completion length,
sampling (T = 0.9, top-p 0.99), clip (0.2 / 0.28), β = 0.01 against a frozen reference, one optimiser step per
rollout, token-mean ("dapo") aggregation, no dynamic sampling (TRL has none) and latents off (our decoder never
enters a latent span). One step = generate n completions for each prompt → reward → old/ref log-probs → loss →
backward → AdamW step. Steps are timed after one warm-up step each (ours first, then TRL's ``train()`` loop timed
per step by a callback); the median over repeats is reported.

    python benchmarks/rl_vs_trl.py --prompts 4 --n 8 --max-new-tokens 32 --steps 3 --repeats 2 [--world DIR]

Prints steps/s and completion tokens/s of each and the ratio ours / TRL (target ≥ 1.0×). TRL is a benchmark-only
extra (``pip install -e .[bench]``); without it, TRL's side is skipped with a printed line and ours still runs.
``--world`` reuses a generated world (default: a small one is generated); ``--smoke`` runs the smallest sizes (CI).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import logging
import statistics
import tempfile
import time
from pathlib import Path

import torch


log = logging.getLogger("rl_vs_trl")
SAME_AS_TRL = "dapo-all-groups"  # the registered algorithm of our side


def world_questions(n: int, world: Path | None, scratch: Path, seed: int = 0):
    """(id, question, answer) and the records of the first n RL questions of ``world`` (default: a small world
    generated under ``scratch``)."""
    from fl1_core.data.formats import load_rl_records
    from fl1_core.data.world import WorldConfig, generate_world

    if world is None:
        world = scratch / "world"
        generate_world(world, seed=seed, config=WorldConfig.small(rl_size=max(8, n)))
    recs = load_rl_records(world / "rl.jsonl").records[:n]
    if len(recs) < n:
        raise ValueError(f"{world}/rl.jsonl has {len(recs)} questions; {n} prompts asked for")
    return [(r.id, r.prompt_text, r.answer) for r in recs], recs


def make_ours(model, processor, records, questions, args, out_dir):
    """Our trainer on text-only prompts, latents off, one round, one optimiser step per rollout."""
    from fl1_core.data.collator import PromptExample
    from fl1_core.data.prompt_inputs import encode_prompt
    from fl1_core.rl.algorithms import ALGORITHMS, register_algorithm
    from fl1_core.rl.config import RLConfig
    from fl1_core.rl.trainer import RLTrainer

    # TRL's GRPOTrainer with loss_type="dapo" draws one round and keeps every group: DAPO without dynamic sampling
    if SAME_AS_TRL not in ALGORITHMS:
        register_algorithm(dataclasses.replace(ALGORITHMS["dapo"], name=SAME_AS_TRL, dynamic_sampling=False))
    cfg = RLConfig(
        implementation="corrected", mode=SAME_AS_TRL, group_size=args.n, prompts_per_step=args.prompts,
        max_new_tokens=args.max_new_tokens, temperature=0.9, top_p=0.99, learning_rate=1e-5, kl_beta=0.01, mini_batches=1,
        epochs_per_rollout=1, system_prompt="plain", latent={"force_initial_latent": False}, max_steps=10**6,
        progress_bar=False, save_every=10**6,
    )
    tr = RLTrainer(model, processor, records, cfg, out_dir)
    if not callable(getattr(tr, "_prompt", None)):  # the override below must replace the trainer's prompt path
        raise AttributeError("RLTrainer has no _prompt method: update the text-prompt override of this benchmark")
    # latents off: a start id that can never be emitted, so decoding never enters a latent span
    tr.latent_config = tr.latent_config.replace(latent_start_id=-1)
    texts = {q[0]: q[1] for q in questions}

    def text_prompt(record):
        return encode_prompt(processor, PromptExample(record.id, texts[record.id]), "plain", record=record)

    tr._prompt = text_prompt  # type: ignore[method-assign]
    return tr


def time_ours(tr, steps: int, start_step: int) -> tuple[float, int]:
    tokens = 0
    t0 = time.perf_counter()
    for s in range(start_step, start_step + steps):
        row = tr.train_step(s)
        tokens += int(row["rollout/gen_tokens"])
    return time.perf_counter() - t0, tokens


def make_trl(model, processor, questions, args, out_dir):
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from fl1_core.answers import answer_span
    from fl1_core.judge.rules import normalize_text

    answers = {q[1]: q[2] for q in questions}
    ds = Dataset.from_list([{"prompt": [{"role": "user", "content": q[1]}], "answer": q[2]} for q in questions])

    def reward(prompts, completions, answer, **kw):  # the same rule check as ours (free-form equality)
        out = []
        for c, a in zip(completions, answer):
            text = c[0]["content"] if isinstance(c, list) else c
            out.append(1.0 if normalize_text(answer_span(text)) == normalize_text(a) else 0.0)
        return out

    class Clock(TrainerCallback):
        def __init__(self):
            self.stamps: list[float] = []

        def on_step_end(self, a, state, control, **kw):
            self.stamps.append(time.perf_counter())

    clock = Clock()
    cfg = GRPOConfig(
        output_dir=str(out_dir), per_device_train_batch_size=args.prompts * args.n, num_generations=args.n,
        gradient_accumulation_steps=1, max_completion_length=args.max_new_tokens, temperature=0.9, top_p=0.99,
        beta=0.01, loss_type="dapo", epsilon=0.2, epsilon_high=0.28, num_iterations=1, learning_rate=1e-5,
        max_steps=1 + args.steps * args.repeats, logging_steps=10**6, save_strategy="no", report_to="none",
        use_cpu=True, bf16=False, seed=0, shuffle_dataset=False, lr_scheduler_type="constant", warmup_steps=0,
        weight_decay=0.01, max_grad_norm=1.0, disable_dropout=True, dataloader_num_workers=0,
    )
    tok = processor.tokenizer
    trainer = GRPOTrainer(model=model, reward_funcs=reward, args=cfg, train_dataset=ds, processing_class=tok,
                          callbacks=[clock])
    return trainer, clock


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--prompts", type=int, default=4)
    p.add_argument("--n", type=int, default=8)
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--world", type=Path, default=None, help="a generated world (default: generate a small one)")
    p.add_argument("--smoke", action="store_true", help="smallest sizes (CI): 2 prompts x n=2, 4 tokens, 1 x 1 step")
    args = p.parse_args(argv)
    if args.smoke:
        args.prompts, args.n, args.max_new_tokens, args.steps, args.repeats = 2, 2, 4, 1, 1
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    torch.set_num_threads(args.threads)
    try:
        import trl
    except ImportError:
        trl = None

    from fl1_core.tiny import build_tiny_future_l1

    with tempfile.TemporaryDirectory(prefix="rl_vs_trl_") as scratch:
        tmp = Path(scratch)
        questions, records = world_questions(args.prompts, args.world, tmp)
        model, processor = build_tiny_future_l1(seed=0)
        ours = make_ours(copy.deepcopy(model), processor, records, questions, args, tmp / "ours")
        print(f"setting: {args.prompts} prompts x n={args.n}, <= {args.max_new_tokens} new tokens, 1 optimiser step "
              f"per rollout, beta=0.01, dapo loss, latents off, {args.threads} threads")
        ours_times, ours_tokens = [], 0
        time_ours(ours, 1, 0)  # warm-up
        step = 1
        for _ in range(args.repeats):
            dt, tok = time_ours(ours, args.steps, step)
            step += args.steps
            ours_times.append(dt / args.steps)
            ours_tokens += tok
        ours_sps = 1.0 / statistics.median(ours_times)
        print(f"ours : {ours_sps:.3f} optimiser steps/s  (median of {args.repeats} x {args.steps} steps; "
              f"{ours_tokens / sum(t * args.steps for t in ours_times):.1f} completion tokens/s)")
        if trl is None:
            print("TRL  : skipped, trl is not installed (pip install -e .[bench], a benchmark-only extra)")
            return
        # TRL builds its reference model from the policy's checkpoint path: save the same weights, load from there
        model.base.save_pretrained(tmp / "init")
        processor.save_pretrained(tmp / "init")
        from transformers import Qwen3VLForConditionalGeneration

        trl_base = Qwen3VLForConditionalGeneration.from_pretrained(tmp / "init", dtype=torch.float32)
        trl_trainer, clock = make_trl(trl_base, processor, questions, args, tmp / "trl")
        # TRL runs its whole loop in train(); time its steps from the callback's stamps (first step = warm-up)
        t0 = time.perf_counter()
        trl_trainer.train()
        stamps = [t0] + clock.stamps
        per_step = [b - a for a, b in zip(stamps[1:], stamps[2:])]  # skip the warm-up step
        trl_times = [statistics.mean(per_step[i : i + args.steps]) for i in range(0, len(per_step), args.steps)]
        trl_sps = 1.0 / statistics.median(trl_times)
        print(f"TRL  : {trl_sps:.3f} optimiser steps/s  (median of {len(trl_times)} x {args.steps} steps; "
              f"trl {trl.__version__})")
        print(f"ratio ours / TRL = {ours_sps / trl_sps:.2f}x")


if __name__ == "__main__":
    main()
