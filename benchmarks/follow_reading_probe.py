"""Diagnostic: does a model conclude what its reading says? The forced choice of
:func:`fl1_core.pretrain.following.follow_accuracy` for any number of checkpoints, one JSON line each.

    python benchmarks/follow_reading_probe.py artifacts/world_base_frame_chains fl1_core/assets/world_base \\
        CHECK_DIR/sft/latent/final [--n 200] [--threads 2]
    python benchmarks/follow_reading_probe.py --smoke        # CI: the shipped base, 2 questions per context

For each model: the share of MCQ frame-needing questions whose highest-scoring conclusion, after the gold layout
reading, is the reading's place for the asked object, in the text and the chain context, split by whether the
asked object is listed last (Wilson 95 % CIs). Chance is 25 %; copying the most recent place scores 100 % on
``last`` and about 0 on ``earlier``.
"""

from __future__ import annotations

import json

from checkpoint_probe_args import checkpoint_parser, parse_checkpoint_args


def main(argv: list[str] | None = None) -> int:
    from fl1_core.model import load_future_l1
    from fl1_core.pretrain.following import follow_accuracy

    ap = checkpoint_parser(__doc__.splitlines()[1], 200, "questions per context",
                           "checkpoint directories (a world base or an SFT/RL final)")
    args = parse_checkpoint_args(ap, argv)
    for path in args.models:
        model, processor = load_future_l1(path)
        out = follow_accuracy(model, processor, n=args.n)
        row = {"model": path, **{f"{c}/{g}": [round(100 * s["accuracy"], 1), *(round(100 * x, 1) for x in s["ci95"]),
                                              s["n"]] for c, split in out.items() for g, s in split.items()}}
        print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
