"""Fed-back latents against the gold frames they stand for, on the world's frame-needing held-out items.

    python benchmarks/fed_back_latents.py --model fl1_core/assets/world_base --items 48 [--world data/world]

Greedy free-running decode (the model writes its own spans); for every response whose spans line up with the
item's reference frames, each fed latent is compared with the gold embedding of its slot
(:func:`fl1_core.audit.feedback.fed_back_fidelity`): norm ratio, MSE per element and the slot-mean baseline. Prints
one JSON line. ``--smoke`` runs the smallest sizes (CI): 2 items, 16 new tokens.
"""

from __future__ import annotations

import argparse
import json

import torch

from fl1_core.audit.ablations import reasoning_frame_targets
from fl1_core.audit.decode import decode_items, load_audit_items
from fl1_core.audit.feedback import fed_back_fidelity
from fl1_core.audit.world_states import read_clips
from fl1_core.model import load_future_l1


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="fl1_core/assets/world_base")
    p.add_argument("--world", default="data/world")
    p.add_argument("--items", type=int, default=48, help="frame-needing held-out items (the first N)")
    p.add_argument("--max-new-tokens", type=int, default=96)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--smoke", action="store_true", help="smallest sizes (CI): 2 items, 16 new tokens")
    args = p.parse_args(argv)
    if args.smoke:
        args.items, args.max_new_tokens = 2, 16
    torch.set_num_threads(args.threads)
    items = [it for it in load_audit_items(f"{args.world}/heldout_mcq.jsonl") if it.group == "frame"][: args.items]
    model, processor = load_future_l1(args.model)
    decoded = decode_items(model, processor, items, max_new_tokens=args.max_new_tokens, batch_size=16)
    targets = reasoning_frame_targets(model, processor, items, read_clips(args.world))
    result = fed_back_fidelity([d.latents for d in decoded], [d.span_counts for d in decoded], targets)
    result["spans_per_item"] = sum(len(d.span_counts) for d in decoded) / len(decoded)
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in result.items()
                      if k != "mse_by_position"}))


if __name__ == "__main__":
    main()
