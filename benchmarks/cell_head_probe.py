"""Diagnostic: does the auxiliary cell head let the tiny Qwen3-VL read small objects?

One task only, on world frames of fresh procedural clips: "List the objects from left to right." → "the red ball,
the blue box". A fresh tiny model (vision tower, merger and LM all trained) learns it with and without the cell head
(:mod:`fl1_core.pretrain.perception`); every ``--eval-every`` steps both are scored greedily on ``--eval-items`` (64)
frames of unseen clips (exact list and colour in the right slot), side by side:

    python benchmarks/cell_head_probe.py [--steps 600] [--lr 2e-3] [--batch 16] [--cell-weight 1.0]

``--smoke`` runs the smallest sizes (CI): 2 steps of 2 frames, one evaluation on 2 frames.

Prints one line per evaluation and model: step, training CE, cell loss, exact share, colour-slot share.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

QUESTION = "List the objects from left to right."


def example(stream, index: int):
    from fl1_core.data.collator import SFTExample
    from fl1_core.pretrain.perception import cell_targets

    clip = stream.clip(index)
    frame = int(np.random.default_rng([stream.seed, 7, index]).integers(0, clip.sim.states.shape[0]))
    order = np.argsort(clip.sim.states[frame, :, 0], kind="stable")
    answer = ", ".join(f"the {clip.sim.scene.bodies[i].name}" for i in order)
    ex = SFTExample(f"probe-{index}", QUESTION, [], answer, [stream.frame(clip, frame)])
    return ex, cell_targets(clip.sim, frame, stream.colors)


def main(argv: list[str] | None = None) -> None:
    from fl1_core.data.collator import PromptExample, SFTCollator
    from fl1_core.pretrain.evaluate import _answer_span, _greedy
    from fl1_core.pretrain.perception import CellHead, VisionTap, cell_channels, cell_loss
    from fl1_core.pretrain.tasks import ClipStream
    from fl1_core.tiny import build_tiny_future_l1

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--cell-weight", type=float, default=1.0)
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument("--eval-items", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--smoke", action="store_true", help="smallest sizes (CI): 2 steps, batch 2, 2 eval frames")
    args = ap.parse_args(argv)
    if args.smoke:
        args.steps, args.batch, args.eval_every, args.eval_items = 2, 2, 2, 2
    torch.set_num_threads(args.threads)
    train, held = ClipStream(1), ClipStream(999)
    test = [example(held, i) for i in range(args.eval_items)]
    runs = {}
    for name, weight in (("without cell head", 0.0), ("with cell head", args.cell_weight)):
        model, processor = build_tiny_future_l1(seed=0)
        head = CellHead(model.config.get_text_config().hidden_size, len(cell_channels()))
        params = list(model.parameters()) + list(head.parameters())
        runs[name] = dict(model=model, processor=processor, head=head, weight=weight, tap=VisionTap(model.base.model.visual),
                          opt=torch.optim.AdamW(params, lr=args.lr, weight_decay=0.01), params=params,
                          collator=SFTCollator(processor, model.latent_config, system_prompt="none", mode="text"))
    for step in range(1, args.steps + 1):
        batch = [example(train, step * args.batch + j) for j in range(args.batch)]
        for name, r in runs.items():
            for g in r["opt"].param_groups:
                g["lr"] = args.lr * min(1.0, step / 50)
            inputs = r["collator"]([e for e, _ in batch])
            inputs.pop("ids")
            r["model"].train()
            out = r["model"](**inputs)
            lc = cell_loss(r["head"](r["tap"].pop()), torch.from_numpy(np.concatenate([c for _, c in batch])))
            r["opt"].zero_grad()
            (out.loss + r["weight"] * lc).backward()
            torch.nn.utils.clip_grad_norm_(r["params"], 1.0)
            r["opt"].step()
            r["last"] = (out.loss.item(), lc.item())
        if step % args.eval_every == 0 or step == args.steps:
            for name, r in runs.items():
                r["model"].eval()
                texts = _greedy(r["model"], r["processor"], [PromptExample(e.id, e.question, e.question_images)
                                                             for e, _ in test], "none", max_new_tokens=24)
                r["tap"].pop()
                exact, slots = [], []
                for text, (e, _) in zip(texts, test):
                    got = _answer_span(text)
                    exact.append(got == e.answer)
                    want = [w.strip(",") for w in e.answer.split() if w.strip(",") in train.colors]
                    said = [w.strip(",") for w in got.split() if w.strip(",") in train.colors] + [None] * len(want)
                    slots.extend(a == b for a, b in zip(want, said))
                print(f"step {step:4d} {name:<18} CE {r['last'][0]:.3f} cell {r['last'][1]:.3f} "
                      f"exact {np.mean(exact):.3f} colour slots {np.mean(slots):.3f}", flush=True)


if __name__ == "__main__":
    main()
