"""Can a checkpoint see which bodies move? And how far do they move between the frames a question shows?

    python scripts/motion_reading.py [NAME=]CKPT [[NAME=]CKPT …] [--world data/world] [--pairs 200] [--out F.json]

For each checkpoint (greedy, CPU or the accelerator):
* ``motion task``: the pretraining ``motion`` task on ``--pairs`` two-frame pairs of clips no training stream uses
  (:func:`fl1_core.pretrain.evaluate.motion_accuracy`): the bodies described as moving are exactly the moving ones,
  and per body, grouped by how far it moved between the two frames, how often the model says it moves;
* ``chain route``: every held-out MCQ item of the world answered after the forced prefix "At the end of the video,"
  (:data:`fl1_core.evaluation.heldout.CHAIN_PREFIX`); on the event kinds, the first thought has exactly the world's
  bodies moving (:func:`fl1_core.pretrain.evaluate.movers_read_share`).

Once, from the world's ``events.jsonl``: the displacement of moving and resting bodies between the last two observed
frames of its test clips, in pixels and in merged vision tokens of the first checkpoint's processor
(:mod:`fl1_core.evaluation.motion_visibility`), and on both measures what a reader that says every body moves and one
that reads exact displacements would score. Each model's share comes with its Wilson 95 % interval.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fl1_core.audit.world_states import read_clips  # noqa: E402
from fl1_core.evaluation.motion_visibility import (  # noqa: E402
    displacement_summary, last_observed_displacements, reader_baselines, references_by_clip)


def token_px(processor) -> int:
    """Width in pixels of one merged vision token: ``patch_size · merge_size``."""
    ip = processor.image_processor
    return int(ip.patch_size) * int(ip.merge_size)


def _share(s: dict) -> str:
    lo, hi = s["ci95"]
    return f"{100 * s['accuracy']:.1f} % [{100 * lo:.1f}, {100 * hi:.1f}] of {s['n']}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="+", help="[NAME=]CKPT checkpoint directories")
    ap.add_argument("--world", default="data/world", help="a generated world (heldout_mcq.jsonl, events.jsonl)")
    ap.add_argument("--pairs", type=int, default=200, help="two-frame pairs of the motion task per checkpoint")
    ap.add_argument("--out", help="write every number as JSON here")
    args = ap.parse_args(argv)
    world = Path(args.world)
    for name in ("heldout_mcq.jsonl", "events.jsonl"):
        if not (world / name).exists():
            print(f"{world / name}: missing; generate the world with `fl1 world --out {world}`", file=sys.stderr)
            return 2
    if args.pairs < 1:
        print(f"--pairs must be >= 1, got {args.pairs}", file=sys.stderr)
        return 2
    named = [m.split("=", 1) if "=" in m else [Path(m).name, m] for m in args.models]
    for _, path in named:
        if not (Path(path) / "config.json").exists():
            print(f"{path}: not a checkpoint directory (no config.json)", file=sys.stderr)
            return 2

    from fl1_core.evaluation.heldout import CHAIN_PREFIX
    from fl1_core.model import load_future_l1
    from fl1_core.pretrain.evaluate import heldout_mcq_by_group, motion_accuracy, read_heldout

    rows = read_heldout(world)
    out: dict = {"world": str(world), "checkpoints": {}}
    for name, path in named:
        model, processor = load_future_l1(path)
        model.eval()
        if "displacement" not in out:
            clips, references = read_clips(world), references_by_clip(rows)
            out["displacement"] = displacement_summary(last_observed_displacements(clips, references),
                                                       token_px(processor))
            out["chain_route_readers"] = reader_baselines(clips, references)
        motion = motion_accuracy(model, processor, n=args.pairs)
        chain = heldout_mcq_by_group(model, processor, world, assistant_prefix=CHAIN_PREFIX)
        out.setdefault("motion_task_readers",  # the same pairs for every checkpoint: set once
                       {k: motion[k] for k in ("every_body_moves", "exact_displacement")})
        out["checkpoints"][name] = {"path": path, "motion_task_movers": motion["movers"],
                                    "motion_task_exact": motion["exact"], "chain_route_movers": chain["movers_read"],
                                    "motion_task_calls_by_displacement": motion["calls_by_displacement"]}
        print(f"{name}: motion task, movers right {_share(motion['movers'])}; chain route, first thought's movers "
              f"right {_share(chain['movers_read'])}", flush=True)
        print("  motion task, per body: " + "; ".join(
            f"{g['px'][0]:g}-{g['px'][1]:g} px: {g['bodies']} bodies, {100 * g['truly_moving']:.0f} % moving, said "
            f"{100 * g['said_moving']:.0f} %" for g in motion["calls_by_displacement"] if g["bodies"]), flush=True)
    d = out["displacement"]
    for group in ("moving", "resting"):
        g = d[group]
        q = ", ".join(f"{x:.1f}" for x in g["px_quartiles"])
        t = ", ".join(f"{x:.2f}" for x in g["token_quartiles"])
        print(f"{group} bodies ({g['n']}): displacement between the last two observed frames, quartiles {q} px "
              f"= {t} tokens of {d['token_px']} px")
    print(f"movers under half a token: {100 * d['movers_under_half_a_token']:.1f} %")
    for what in ("motion_task", "chain_route"):
        r = out[f"{what}_readers"]
        print(f"{what.replace('_', ' ')}: saying every body moves scores {100 * r['every_body_moves']:.1f} %, reading "
              f"exact displacements {100 * r['exact_displacement']:.1f} %")
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
