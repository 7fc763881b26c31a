"""Diagnostic: does weighting the answer-letter tokens teach the world base to map its conclusion to a letter?

The shipped base concludes the right answer text in most held-out MCQs but writes one constant letter. In an MCQ
example with reasoning, the letter is ~2 of ~100 supervised tokens. This probe continues training the base on MCQ
world questions (reasoning or direct) plus option look-up, with the cross-entropy of letter tokens (A–D, with or
without a leading space) multiplied by ``--letter-weight``, and scores held-out MCQ accuracy greedily:

    python benchmarks/letter_weight_probe.py --letter-weight 10 [--steps 600] [--threads 1] [--world data/world]

Prints one JSON line before and one after: the held-out MCQ accuracy (all / text-solvable / vision-dependent, Wilson
95 % CIs), letters written, and option look-up. ``--smoke`` runs the smallest sizes (CI): 2 steps of 2 items, 4
held-out MCQs and 4 look-ups.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch
import torch.nn.functional as F


def main(argv: list[str] | None = None) -> None:
    from fl1_core.data.collator import SFTCollator
    from fl1_core.model import load_future_l1
    from fl1_core.pretrain import TaskSampler
    from fl1_core.pretrain.evaluate import heldout_mcq_by_group, lookup_accuracy, read_heldout
    from fl1_core.world_base import WORLD_BASE_DIR

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--init", default=str(WORLD_BASE_DIR))
    ap.add_argument("--world", default="data/world")
    ap.add_argument("--letter-weight", type=float, default=10.0)
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--lookup-share", type=float, default=0.3)
    ap.add_argument("--eval-mcq", type=int, default=200)
    ap.add_argument("--eval-lookup", type=int, default=None, help="option sets scored for look-up (default: all)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--smoke", action="store_true", help="smallest sizes (CI): 2 steps, batch 2, 4 MCQs, 4 look-ups")
    args = ap.parse_args(argv)
    if args.smoke:
        args.steps, args.batch, args.eval_mcq, args.eval_lookup = 2, 2, 4, 4
    torch.set_num_threads(args.threads)
    model, processor = load_future_l1(args.init)
    model.freeze_vision(True)
    tok = processor.tokenizer
    letters = torch.tensor(sorted({tok.convert_tokens_to_ids(t) for c in "ABCD" for t in tok.tokenize(c) + tok.tokenize(" " + c)}))
    sampler = TaskSampler(args.seed, qa_variants={"reason": 0.7, "direct": 0.3}, mcq_fraction=1.0)
    collators = {s: SFTCollator(processor, model.latent_config, system_prompt=s, mode="text", allow_text_only=True)
                 for s in ("none", "interleaved")}
    held = read_heldout(args.world, args.eval_lookup)

    def report(tag: str) -> None:
        mcq = heldout_mcq_by_group(model, processor, args.world, limit=args.eval_mcq)
        look = lookup_accuracy(model, processor, held)
        out = {g: f"{100 * mcq[g]['accuracy']:.1f} [{100 * mcq[g]['ci95'][0]:.1f}, {100 * mcq[g]['ci95'][1]:.1f}] "
                  f"(n={mcq[g]['n']})" for g in ("all", "text", "vision")}
        print(json.dumps({"at": tag, "letter_weight": args.letter_weight, "mcq": out, "letters": mcq["letters"],
                          "lookup": round(look["accuracy"], 3)}), flush=True)

    report("start")
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.01)
    rng = np.random.default_rng([args.seed, 5])
    model.train()
    for step in range(args.steps):
        task = "lookup" if rng.random() < args.lookup_share else "qa"
        items = [sampler.item(task, step * args.batch + j) for j in range(args.batch)]
        batch = collators["none" if task == "lookup" else "interleaved"]([it.example for it in items])
        batch.pop("ids")
        labels = batch.pop("labels")
        logits = model(**batch).logits[:, :-1].float()
        target = labels[:, 1:]
        ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1), ignore_index=-100,
                             reduction="none").view_as(target)
        weight = (target != -100).float() * torch.where(torch.isin(target, letters), args.letter_weight, 1.0)
        loss = (ce * weight).sum() / weight.sum()
        for g in opt.param_groups:
            g["lr"] = args.lr * min(1.0, (step + 1) / 30)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
    model.eval()
    report(f"after {args.steps} steps")


if __name__ == "__main__":
    main()
