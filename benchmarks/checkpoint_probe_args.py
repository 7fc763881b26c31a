"""Shared command line of the checkpoint probes (``follow_reading_probe.py``, ``imagination_probe.py``): checkpoint
folders as positional arguments, ``--n`` items, ``--threads`` and ``--smoke`` (the shipped base unless folders are
given, 2 items). Imported by those scripts, not a script itself."""

from __future__ import annotations

import argparse

import torch


def checkpoint_parser(description: str, n: int, n_help: str, models_help: str) -> argparse.ArgumentParser:
    """The parser; a script adds its own options to it before :func:`parse_checkpoint_args`."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("models", nargs="*", help=models_help)
    ap.add_argument("--n", type=int, default=n, help=n_help)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--smoke", action="store_true", help="the shipped base (unless models are given), 2 items")
    return ap


def parse_checkpoint_args(ap: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """Parsed arguments with ``--smoke`` applied and torch's thread count set; no checkpoint is a usage error."""
    args = ap.parse_args(argv)
    if args.smoke:
        from fl1_core.world_base import WORLD_BASE_DIR

        args.n, args.models = 2, args.models or [str(WORLD_BASE_DIR)]
    if not args.models:
        ap.error("give at least one checkpoint directory")
    torch.set_num_threads(args.threads)
    return args
