"""Export the model of one training checkpoint as a model folder, so that any stage can evaluate it (for example
held-out accuracy along an RL run):

    python scripts/export_training_checkpoint.py RUN_DIR STEP OUT_DIR

``RUN_DIR`` is a finished RL run (``fl1 rl --out RUN_DIR``). Its ``final/`` folder gives the architecture, the
processor and the latent config; ``RUN_DIR/checkpoints/step-XXXXXXXX/model.pt`` gives the weights. The checkpoint is
verified first (:func:`fl1_core.checkpoints.integrity.verify_checkpoint`). Checkpoints written sharded under FSDP
hold no ``model.pt`` and are refused; SFT's checkpoints are accelerate states, which ``fl1 sft`` resumes from.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fl1_core.checkpoints import (  # noqa: E402
    STATE_FILE, Checkpoint, checkpoint_path, read_state, save_model, verify_checkpoint,
)
from fl1_core.model import load_future_l1  # noqa: E402
from fl1_core.rl.trainer_state import MODEL_STATE_FILE  # noqa: E402


def export_checkpoint(run_dir: Path, step: int, out_dir: Path) -> Path:
    """Write step ``step`` of ``run_dir`` as a model folder ``out_dir``; raises ``ValueError`` naming what is wrong."""
    final = run_dir / "final"
    ckpt = checkpoint_path(run_dir, step)
    if not (final / "config.json").is_file() and not (final / "adapter_config.json").is_file():
        raise ValueError(f"{final}: no model folder (the run must have finished; its final/ gives the architecture)")
    if not (ckpt / STATE_FILE).is_file():
        raise ValueError(f"{ckpt}: no complete checkpoint of step {step}")
    problems = verify_checkpoint(ckpt)
    if problems:
        raise ValueError(f"{ckpt} fails its file check: {'; '.join(problems)}")
    if not (ckpt / MODEL_STATE_FILE).is_file():
        raise ValueError(f"{ckpt}: no {MODEL_STATE_FILE} (a sharded FSDP checkpoint; export it on its GPUs)")
    if out_dir.exists() and any(out_dir.iterdir()):
        raise ValueError(f"{out_dir} exists and is not empty")
    model, processor = load_future_l1(final, device=None)
    model.load_state_dict(Checkpoint(ckpt, read_state(ckpt)).load(MODEL_STATE_FILE))
    return save_model(model, processor, out_dir)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", type=Path)
    p.add_argument("step", type=int)
    p.add_argument("out_dir", type=Path)
    args = p.parse_args(argv)
    try:
        print(export_checkpoint(args.run_dir, args.step, args.out_dir))
    except ValueError as err:
        p.error(str(err))
    return 0


if __name__ == "__main__":
    sys.exit(main())
