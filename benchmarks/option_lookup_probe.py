"""Diagnostic: can the tiny model learn to *read* multiple-choice options?

Answering a world MCQ means finding, among four near-identical option lines, the one that says what the reasoning
concluded and writing its letter. This probe isolates that look-up: text-only prompts

    A. <option>\\nB. <option>\\nC. <option>\\nD. <option>\\nWhich option says: <one of them>?\\n<answer>

(options of the world's MCQ records, shuffled; the asked option drawn uniformly), trained by next-token cross-entropy
on the letter, and scored on prompts built from ``heldout_mcq.jsonl`` (test clips). Chance is 25 %.

    python benchmarks/option_lookup_probe.py --world data/world [--hidden 128 --layers 4] [--steps 2000]
        [--batch 32] [--lr 2e-3] [--eval-every 100] [--threads 2] [--init CKPT]

Prints one line per evaluation: step, training loss, held-out look-up accuracy, seconds. ``--init`` starts from a
Future-L1 checkpoint (e.g. a stage-0 base) instead of a fresh tiny model of the given sizes.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

LETTERS = "ABCD"


def option_sets(world: Path) -> tuple[list[list[str]], list[list[str]]]:
    """(train, held-out) lists of the four option texts of every MCQ record."""
    train = [list(r["meta"]["options"].values()) for r in json.loads((world / "sft.json").read_text())
             if r["meta"]["format"] == "mcq"]
    rl = [json.loads(line) for line in (world / "rl.jsonl").read_text().splitlines() if line.strip()]
    train += [list(r["meta"]["options"].values()) for r in rl if "options" in r["meta"]]
    held = [json.loads(line) for line in (world / "heldout_mcq.jsonl").read_text().splitlines() if line.strip()]
    return train, [list(r["meta"]["options"].values()) for r in held]


def lookup_batch(sets: list[list[str]], n: int, rng: np.random.Generator, tokenizer) -> tuple[torch.Tensor, ...]:
    """``n`` left-padded look-up prompts (ids, attention mask) and their answer-letter token ids."""
    prompts, letters = [], []
    for _ in range(n):
        opts = sets[int(rng.integers(len(sets)))]
        options = [opts[i] for i in rng.permutation(len(opts))]
        asked = int(rng.integers(len(options)))
        lines = "\n".join(f"{LETTERS[j]}. {text}" for j, text in enumerate(options))
        prompts.append(f"{lines}\nWhich option says: {options[asked]}?\n<answer>")
        letters.append(LETTERS[asked])
    enc = [tokenizer(p)["input_ids"] for p in prompts]
    width = max(map(len, enc))
    ids = torch.full((n, width), tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros((n, width), dtype=torch.long)
    for i, e in enumerate(enc):
        ids[i, width - len(e):] = torch.tensor(e)
        mask[i, width - len(e):] = 1
    return ids, mask, torch.tensor([letter_id(tokenizer, c) for c in letters])


def letter_id(tokenizer, letter: str) -> int:
    ids = tokenizer(letter)["input_ids"]
    if len(ids) != 1:
        raise ValueError(f"letter {letter!r} is not one token: {ids}")
    return int(ids[0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--world", default="data/world")
    ap.add_argument("--init", default=None, help="a Future-L1 checkpoint to start from (default: fresh tiny model)")
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument("--eval-size", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    if args.init:
        from fl1_core.model import load_future_l1

        model, processor = load_future_l1(args.init)
    else:
        from fl1_core.tiny import TinySizes, build_tiny_future_l1

        heads = max(4, args.hidden // 32)
        sizes = TinySizes(hidden_size=args.hidden, intermediate_size=3 * args.hidden, num_hidden_layers=args.layers,
                          num_attention_heads=heads, num_key_value_heads=heads // 2)
        model, processor = build_tiny_future_l1(seed=args.seed, sizes=sizes)
    tok, lm = processor.tokenizer, model.base
    train_sets, held_sets = option_sets(Path(args.world))
    print(f"parameters {sum(p.numel() for p in lm.parameters()) / 1e6:.2f} M; {len(train_sets)} train / "
          f"{len(held_sets)} held-out option sets", flush=True)
    rng = np.random.default_rng(args.seed)
    held = lookup_batch(held_sets, args.eval_size, np.random.default_rng(10_000 + args.seed), tok)
    opt = torch.optim.AdamW(lm.parameters(), lr=args.lr, weight_decay=0.01)
    t0 = time.perf_counter()

    @torch.no_grad()
    def held_out_accuracy() -> float:
        lm.eval()
        ids, mask, y = held
        acc = (lm(input_ids=ids, attention_mask=mask).logits[:, -1].argmax(-1) == y).float().mean().item()
        lm.train()
        return acc

    print(f"step 0 held-out look-up {held_out_accuracy():.3f}", flush=True)
    lm.train()
    for step in range(1, args.steps + 1):
        ids, mask, y = lookup_batch(train_sets, args.batch, rng, tok)
        loss = F.cross_entropy(lm(input_ids=ids, attention_mask=mask).logits[:, -1], y)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(lm.parameters(), 1.0)
        opt.step()
        if step % args.eval_every == 0 or step == args.steps:
            print(f"step {step} loss {loss.item():.3f} held-out look-up {held_out_accuracy():.3f} "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
