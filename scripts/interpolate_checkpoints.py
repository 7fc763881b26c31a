"""Move a fine-tuned model part of the way back to its init, weight by weight (WiSE-FT's interpolation), or
along a random direction as far as it moved:

    python scripts/interpolate_checkpoints.py INIT_DIR TUNED_DIR OUT_DIR ALPHA [--permute-update SEED]

writes θ = θ_init + α (θ_tuned − θ_init) for every floating-point weight (α = 0 gives the init, 1 the tuned
model; integer buffers are the tuned model's). ``--permute-update SEED`` is the random-direction control: each
weight's update Δ = θ_tuned − θ_init has its entries permuted (one seeded permutation per weight tensor), so
θ = θ_init + α·perm(Δ) moves every tensor as far as the tuned model did, with the same values, in a random
direction. Both folders are model folders of one architecture (``fl1 rl``'s
``final/``, an SFT ``final/``); the output takes the tuned folder's processor and latent config. Adapter folders
are refused: merge them first.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fl1_core.checkpoints import save_model  # noqa: E402
from fl1_core.model import load_future_l1  # noqa: E402


def permuted(update: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """``update`` with its entries in a random order (same shape, same multiset of values)."""
    flat = update.reshape(-1)
    return flat[torch.randperm(flat.numel(), generator=generator)].reshape(update.shape)


def interpolate_checkpoints(init_dir: Path, tuned_dir: Path, out_dir: Path, alpha: float,
                            permute_seed: int | None = None) -> Path:
    """Write ``init + alpha · (tuned − init)`` as a model folder ``out_dir`` (with ``permute_seed``, each tensor's
    update permuted, :func:`permuted`, in the state dict's key order); raises ``ValueError`` naming what is wrong
    (a missing or adapter folder, different architectures, a non-finite alpha, a taken output folder)."""
    if not math.isfinite(alpha):
        raise ValueError(f"alpha must be a finite number, got {alpha}")
    for folder in (init_dir, tuned_dir):
        if (folder / "adapter_config.json").is_file():
            raise ValueError(f"{folder}: an adapter folder; merge it into its base first")
        if not (folder / "config.json").is_file():
            raise ValueError(f"{folder}: no model folder (config.json missing)")
    if out_dir.exists() and any(out_dir.iterdir()):
        raise ValueError(f"{out_dir} exists and is not empty")
    init, _ = load_future_l1(init_dir, device=None)
    tuned, processor = load_future_l1(tuned_dir, device=None)
    start, end = init.state_dict(), tuned.state_dict()
    if start.keys() != end.keys() or any(start[k].shape != end[k].shape for k in end):
        different = sorted(start.keys() ^ end.keys()) or [k for k in end if start[k].shape != end[k].shape]
        raise ValueError(f"{init_dir} and {tuned_dir} differ in architecture (e.g. {different[0]})")
    generator = torch.Generator().manual_seed(permute_seed) if permute_seed is not None else None
    mixed = {}
    for k, v in end.items():
        if not v.is_floating_point():
            mixed[k] = v
            continue
        update = v - start[k].to(v.dtype)
        mixed[k] = start[k].to(v.dtype) + alpha * (permuted(update, generator) if generator else update)
    tuned.load_state_dict(mixed)
    return save_model(tuned, processor, out_dir)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("init_dir", type=Path)
    p.add_argument("tuned_dir", type=Path)
    p.add_argument("out_dir", type=Path)
    p.add_argument("alpha", type=float)
    p.add_argument("--permute-update", type=int, metavar="SEED", default=None,
                   help="permute each weight's update with this seed (the random-direction control)")
    args = p.parse_args(argv)
    try:
        print(interpolate_checkpoints(args.init_dir, args.tuned_dir, args.out_dir, args.alpha, args.permute_update))
    except ValueError as err:
        p.error(str(err))
    return 0


if __name__ == "__main__":
    sys.exit(main())
