"""SFT variants against the loss of letter binding: the curated set plus fresh stream questions, any SFTConfig
override (learning rate, LoRA, steps), then the held-out MCQ (letter and event accuracy).

    python scripts/sft_binding/variants.py NAME --curated runs/seed-study-seed=0/curation/sft_curated.json \\
        [--extra 900 --form conclude] [--mode latent] [--set max_steps=340 learning_rate=2e-4 ...]

Writes ``runs/sft_binding/NAME/`` (the SFT run) and ``runs/sft_binding/NAME.heldout.json``.
"""

from __future__ import annotations

import argparse

import torch

from fl1_core.cli import _parse_params
from fl1_core.data.formats import load_sft_records
from fl1_core.model import load_future_l1
from fl1_core.world_base import WORLD_BASE_DIR
from fl1_core.evaluation.heldout import run_heldout_mcq
from fl1_core.sft import SFTConfig, train_sft

from stream_questions import stream_questions


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("name")
    ap.add_argument("--curated", required=True)
    ap.add_argument("--extra", type=int, default=0, help="fresh stream questions added to the curated set")
    ap.add_argument("--form", default="reason", choices=["reason", "conclude", "direct"])
    ap.add_argument("--mode", default="latent", choices=["latent", "text", "pause"])
    ap.add_argument("--world", default="data/world")
    ap.add_argument("--set", nargs="*", default=[])
    args = ap.parse_args()
    torch.set_num_threads(2)
    out = f"runs/sft_binding/{args.name}"
    model, processor = load_future_l1(WORLD_BASE_DIR)
    items = list(load_sft_records(args.curated).records) + stream_questions(11, args.extra, args.form)
    train_sft(model, processor, items, SFTConfig.cpu_world(seed=0, **_parse_params(args.set)), out, args.mode)
    res = run_heldout_mcq({args.name: f"{out}/final"}, f"{args.world}/heldout_mcq.jsonl",
                          f"runs/sft_binding/{args.name}.heldout.json", progress=False)[args.name]
    print(args.name, {k: res[k] for k in ("accuracy", "event_accuracy", "binding", "letters")})


if __name__ == "__main__":
    main()
