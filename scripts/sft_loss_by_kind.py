"""The SFT loss of checkpoints per question kind, on the probe the SFT anchor's drift draw would set apart:

    python scripts/sft_loss_by_kind.py SFT_FILE REFERENCE_DIR MODEL_DIR [MODEL_DIR ...] [--probe N] [--seed S]
        [--key question_kind] [--out OUT.json]

For each group g of ``meta[key]`` in ``SFT_FILE`` (an SFT records file, e.g. ``data/world/sft.json``), CE_g is the mean
token CE of the chains of a seeded probe of up to N records (:func:`fl1_core.rl.anchor_drift.probe_indices`, the
same records for every checkpoint), with the gold future-frame embeddings at the latent slots as in latent SFT. It
prints CE_g of ``REFERENCE_DIR`` (e.g. an SFT init) and CE_g(model) − CE_g(reference) of every other folder, kinds
sorted by the mean rise; ``--out`` writes ``{"probe": {g: [record ids]}, "ce": {folder: {g: CE_g}}}``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fl1_core.model import load_future_l1  # noqa: E402
from fl1_core.rl.sft_anchor import SFTAnchor, load_anchor_records  # noqa: E402


def loss_by_kind(sft_file: Path, folders: list[Path], *, probe: int, seed: int, key: str,
                 system_prompt: str = "interleaved") -> tuple[dict[str, list[str]], dict[str, dict[str, float]]]:
    """The probe's record ids per group and CE_g of every folder (in the given order)."""
    records = load_anchor_records(sft_file)
    ce: dict[str, dict[str, float]] = {}
    probe_ids: dict[str, list[str]] = {}
    for folder in folders:
        if not (folder / "config.json").exists():
            raise FileNotFoundError(f"{folder}: no config.json (a model folder such as an SFT or RL final/)")
        model, processor = load_future_l1(folder, device=None)
        anchor = SFTAnchor(records, processor, model.latent_config, weight=1.0, batch=4, seed=seed,
                           system_prompt=system_prompt, draw="drift", group_key=key, probe_size=probe)
        probe_ids = {g: [records[i].id for i in ix] for g, ix in anchor.probe.items()}
        ce[str(folder)] = anchor.probe_losses(model, model)
    return probe_ids, ce


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sft_file", type=Path)
    parser.add_argument("reference", type=Path)
    parser.add_argument("models", type=Path, nargs="+")
    parser.add_argument("--probe", type=int, default=12, help="records per group (at most half of it)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--key", default="question_kind", help="the meta field that groups the records")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if not args.sft_file.exists():
        parser.error(f"no such SFT file: {args.sft_file}")
    folders = [args.reference, *args.models]
    probe_ids, ce = loss_by_kind(args.sft_file, folders, probe=args.probe, seed=args.seed, key=args.key)
    ref = ce[str(args.reference)]
    rises = {str(f): {g: ce[str(f)][g] - ref[g] for g in ref} for f in args.models}
    mean_rise = {g: sum(r[g] for r in rises.values()) / len(rises) for g in ref}
    names = [f.parent.name if f.name == "final" else f.name for f in args.models]
    print("kind | n | reference CE | " + " | ".join(f"Δ {n}" for n in names) + " | mean Δ")
    for g in sorted(ref, key=lambda g: -mean_rise[g]):
        print(f"{g} | {len(probe_ids[g])} | {ref[g]:.4f} | "
              + " | ".join(f"{rises[str(f)][g]:+.2e}" for f in args.models) + f" | {mean_rise[g]:+.2e}")
    if args.out:
        args.out.write_text(json.dumps({"probe": probe_ids, "ce": ce}, indent=1) + "\n")


if __name__ == "__main__":
    main()
