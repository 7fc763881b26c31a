"""Move a fine-tuned model part of the way back to its init, weight by weight (WiSE-FT's interpolation):

    python scripts/interpolate_checkpoints.py INIT_DIR TUNED_DIR OUT_DIR ALPHA

writes θ = θ_init + α (θ_tuned − θ_init) for every floating-point weight (α = 0 gives the init, 1 the tuned
model; integer buffers are the tuned model's). Both folders are model folders of one architecture (``fl1 rl``'s
``final/``, an SFT ``final/``); the output takes the tuned folder's processor and latent config. Adapter folders
are refused: merge them first.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fl1_core.checkpoints import save_model  # noqa: E402
from fl1_core.model import load_future_l1  # noqa: E402


def interpolate_checkpoints(init_dir: Path, tuned_dir: Path, out_dir: Path, alpha: float) -> Path:
    """Write ``init + alpha · (tuned − init)`` as a model folder ``out_dir``; raises ``ValueError`` naming what is
    wrong (a missing or adapter folder, different architectures, a non-finite alpha, a taken output folder)."""
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
    mixed = {k: start[k].to(v.dtype) + alpha * (v - start[k].to(v.dtype)) if v.is_floating_point() else v
             for k, v in end.items()}
    tuned.load_state_dict(mixed)
    return save_model(tuned, processor, out_dir)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("init_dir", type=Path)
    p.add_argument("tuned_dir", type=Path)
    p.add_argument("out_dir", type=Path)
    p.add_argument("alpha", type=float)
    args = p.parse_args(argv)
    try:
        print(interpolate_checkpoints(args.init_dir, args.tuned_dir, args.out_dir, args.alpha))
    except ValueError as err:
        p.error(str(err))
    return 0


if __name__ == "__main__":
    sys.exit(main())
