"""Diagnostic: which world-state targets can a probe read from a frame's own embedding?

The audit's upper bound (``frame embedding``) probes the ground-truth embedding of the frame a latent span stands for.
A target that this bound cannot read says nothing about the latents. This script embeds test-clip frames with the
checkpoint's frozen vision tower and merger (what latent SFT aligns to), then fits the audit's clip-grouped probes
(:func:`fl1_core.audit.fit_probe`) on the mean of the frame's merged tokens and on the tokens flattened, for every
regression target of :func:`fl1_core.audit.state_at`:

    python benchmarks/probe_targets.py [--ckpt fl1_core/assets/world_base] [--clips 100] [--world data/world]

Prints one line per (target, pooling): R² out-of-fold, frames, clips. ``--smoke`` runs the smallest size (CI): 2 test
clips, the fewest the clip-grouped folds accept.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch


def main(argv: list[str] | None = None) -> None:
    import decord
    from PIL import Image

    from fl1_core.audit import fit_probe, read_clips, state_at
    from fl1_core.audit.world_states import REGRESSION_TARGETS, target_matrix
    from fl1_core.data.collator import latent_pixel_inputs
    from fl1_core.model import load_future_l1
    from fl1_core.world_base import WORLD_BASE_DIR

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", default=str(WORLD_BASE_DIR))
    ap.add_argument("--world", default="data/world")
    ap.add_argument("--clips", type=int, default=100)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--smoke", action="store_true", help="smallest size (CI): 2 test clips")
    args = ap.parse_args(argv)
    if args.smoke:
        args.clips = 2
    torch.set_num_threads(args.threads)
    model, processor = load_future_l1(args.ckpt)
    model.eval()
    clips = [c for c in read_clips(args.world).values() if c["split"] == "test"][: args.clips]
    means, flats, states, groups = [], [], [], []
    for clip in clips:
        video = decord.VideoReader(f"{args.world}/{clip['video']}")
        for frame in clip["pool"][2:]:  # the frames after the observed part: the ones spans stand for
            inputs, _ = latent_pixel_inputs(processor, model.latent_config, [Image.fromarray(video[frame].asnumpy())])
            with torch.no_grad():
                tokens = model.latent_targets(inputs["pixel_values"], inputs["image_grid_thw"])[0]
            means.append(tokens.mean(0).numpy())
            flats.append(tokens.reshape(-1).numpy())
            states.append(state_at(clip, frame))
            groups.append(clip["clip_id"])
    groups = np.asarray(groups)
    for target in REGRESSION_TARGETS:
        y = target_matrix(states, target)
        for pooling, x in (("mean", np.stack(means)), ("flat", np.stack(flats))):
            score = fit_probe(x, y, groups, target)[1]["score"]
            print(f"{target:10s} {pooling:5s} R² {score:+.3f}   frames {len(y)}  clips {len(clips)}", flush=True)


if __name__ == "__main__":
    main()
