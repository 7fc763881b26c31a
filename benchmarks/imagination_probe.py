"""Diagnostic: how well does a model imagine a future frame, slot by slot? The alignment error of
:func:`fl1_core.pretrain.imagination.imagination_error` for any number of checkpoints, one JSON line each.

    python benchmarks/imagination_probe.py artifacts/world_base_follow_reading fl1_core/assets/world_base \\
        CHECK_DIR/sft/latent/final [--n 64] [--threads 2]
    python benchmarks/imagination_probe.py runs/world_base/phase-1-*/checkpoints/step-* \\
        --init artifacts/world_base_follow_reading      # a pretraining run's checkpoints (model.pt)
    python benchmarks/imagination_probe.py --smoke        # CI: the shipped base, 2 chains

For each model: the MSE per element of each latent slot's projected prediction against its gold embedding, by row
of the 3 × 3 grid (the bottom row holds the objects), teacher-forced (``model``) and after the model's own earlier
predictions (``own``), beside the slot means and the last question image's cell (``present``).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from checkpoint_probe_args import checkpoint_parser, parse_checkpoint_args


def load(path: str, init: str | None):
    """A model folder, or a pretraining checkpoint (``model.pt``) loaded into the architecture of ``init``."""
    from fl1_core.model import load_future_l1

    state = Path(path) / "model.pt"
    if not state.exists():
        return load_future_l1(path)
    if init is None:
        raise SystemExit(f"{path} is a pretraining checkpoint: give --init, the folder it continues from")
    model, processor = load_future_l1(init)
    model.load_state_dict(torch.load(state, map_location="cpu"))
    return model, processor


def main(argv: list[str] | None = None) -> int:
    from fl1_core.pretrain.imagination import imagination_error

    ap = checkpoint_parser(__doc__.splitlines()[1], 64, "chains", "model folders (a world base, an SFT/RL final) or "
                                                                   "pretraining checkpoints (with --init)")
    ap.add_argument("--init", default=None, help="the model folder whose architecture pretraining checkpoints use")
    args = parse_checkpoint_args(ap, argv)
    for path in args.models:
        model, processor = load(path, args.init)
        out = imagination_error(model, processor, n=args.n)
        row = {"checkpoint": path, "n_chains": out["n_chains"], "n_slots": out["n_slots"],
               **{name: {**{r: round(v, 3) for r, v in out[name]["by_row"].items()}, "all": round(out[name]["all"], 3)}
                  for name in ("model", "own", "slot_mean", "present")}}
        print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
