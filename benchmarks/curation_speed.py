"""Wall time of visual-gain curation on the default world (480 SFT records), likelihood vs rollouts, one process.

    python benchmarks/curation_speed.py --world runs/world [--model CKPT] [--out /tmp/curation_speed]
        [--modes likelihood rollouts:8:16 rollouts:4:8]

A mode is ``likelihood`` or ``rollouts:N:MAX_NEW_TOKENS``. Without ``--model`` the tiny random-init model is used
(its scores are noise: see the printed kept-vs-all comparison). The world is generated when missing. Prints one line
per mode: wall and process-CPU seconds (CPU time is the steadier number on a shared machine), records/s, kept count,
mean gain kept vs dropped, needs_vision share kept vs all. ``--smoke`` runs the smallest sizes (CI): the first 4
records, batches of 2, the modes ``likelihood`` and ``rollouts:2:4``.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import time
from pathlib import Path

import torch

from fl1_core.curation import CurationConfig, curate

logger = logging.getLogger("curation_speed")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--world", default="runs/world")
    ap.add_argument("--model", default=None, help="a Future-L1 checkpoint (default: tiny random model)")
    ap.add_argument("--out", default="/tmp/curation_speed")
    ap.add_argument("--modes", nargs="+", default=["likelihood", "rollouts:8:16"])
    ap.add_argument("--limit", type=int, default=None, help="score only the first N records")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--smoke", action="store_true", help="smallest sizes (CI): 4 records, batch 2, 2 short rollouts")
    args = ap.parse_args(argv)
    if args.smoke:
        args.limit, args.batch_size, args.modes = 4, 2, ["likelihood", "rollouts:2:4"]
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    torch.set_num_threads(args.threads)

    world = Path(args.world)
    if not (world / "sft.json").exists():
        from fl1_core.data.world import generate_world

        generate_world(world, seed=0)
    sft = world / "sft.json"
    out = Path(args.out)
    if args.limit:
        import json

        out.mkdir(parents=True, exist_ok=True)  # the subset lives in --out: the world stays as generated
        sft = out / f"sft_first{args.limit}.json"
        sft.write_text(json.dumps(json.loads((world / "sft.json").read_text())[: args.limit]))
        shutil.copy(world / "world.json", out / "world.json")  # the base's world-version check reads it next to sft

    if args.model:
        from fl1_core.model import load_future_l1

        model, processor = load_future_l1(args.model)
    else:
        from fl1_core.tiny import build_tiny_future_l1

        model, processor = build_tiny_future_l1(seed=0)
    model.eval()

    print(f"load average before: {os.getloadavg()}")
    for spec in args.modes:
        parts = spec.split(":")
        cfg = CurationConfig(mode=parts[0], batch_size=args.batch_size)
        if parts[0] == "rollouts":
            cfg = cfg.replace(n_rollouts=int(parts[1]), max_new_tokens=int(parts[2]))
        run_dir = out / spec.replace(":", "_")
        shutil.rmtree(run_dir, ignore_errors=True)
        t0, c0 = time.perf_counter(), time.process_time()
        res = curate(model, processor, sft, run_dir, cfg, video_root=world, progress=False)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        s = res.summary
        print(
            f"{spec:>16}: {wall:7.1f} s wall  {cpu:7.1f} s cpu  {len(res.scores) / wall:6.2f} rec/s  kept {s['counts']['kept']}/{len(res.scores)}"
            f"  gain kept {s['kept']['mean_gain']} dropped {s['dropped']['mean_gain']}"
            f"  needs_vision kept {s['kept']['needs_vision_share']} all {s['all']['needs_vision_share']}"
            f"  random-K {s['random_baseline']['needs_vision_share']}  load {os.getloadavg()[0]:.1f}"
        )


if __name__ == "__main__":
    main()
