"""A one-seed reproduction of the key imagination differences, for a reviewer to re-run on seeds of their choice.

``python -m fl1_core.imagination_check WORLD_SEED TRAIN_SEED OUT_DIR`` (or ``scripts/imagination_check.sh``):

1. generates the world of ``WORLD_SEED`` (default sizes) into ``OUT_DIR/world``;
2. from the shipped world base, with no curation, trains latent, pause-token and text-only SFT on the world's SFT
   file at the demo's sizes (``SFTConfig.cpu_world``, 226 steps, seed ``TRAIN_SEED``), into ``OUT_DIR/sft/<mode>``;
3. decodes the world's frame-needing held-out items (all of them, >= 300 on the default world) with the latent
   model as it is, with oracle latents (the true future-frame embeddings), with shuffled ones (the gold frames of
   another item of the same kind and slot count) and with the present (the last question frame at every span), and
   with the pause-token and text-only models: the same items for every comparison;
4. writes versions, the base's sha256, every prediction and ``summary.json`` into ``OUT_DIR``, and prints as its
   last line ``{"n": N, "oracle_minus_shuffled": {...}, "latent_minus_pause": {...}, "latent_minus_text": {...}}``:
   paired differences in points of the primary score (the concluded option: the final thought names the gold
   option), each with its 95 % item-level interval ``mean ± 1.96 · sd(d) / √n``.

Same seeds, same machine → the same JSON (threads are fixed; timings are kept out of it). Re-running the same
command resumes the SFT runs; an ``OUT_DIR`` that holds a run of other seeds is refused. Exit codes: 0 whatever the
numbers, 2 on a usage error, 1 when a step fails.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

USAGE = "usage: imagination_check.sh WORLD_SEED TRAIN_SEED OUT_DIR   (seeds: non-negative integers)"
SFT_STEPS = 226  # the demo's SFT size (2 epochs of the curated 900 records)
THREADS = 2
MODES = ("latent", "pause", "text")
CONDITIONS = ("none", "oracle", "oracle_shuffled", "present")

log = logging.getLogger(__name__)


class UsageError(ValueError):
    """Bad command-line input (exit code 2)."""


def parse_args(argv: list[str]) -> argparse.Namespace:
    """``WORLD_SEED TRAIN_SEED OUT_DIR`` (+ ``--sft-steps``, ``--items``, ``--set k=v`` SFT overrides)."""
    p = argparse.ArgumentParser(prog="imagination_check", usage=USAGE, add_help=True)
    p.add_argument("world_seed")
    p.add_argument("train_seed")
    p.add_argument("out_dir")
    p.add_argument("--sft-steps", type=int, default=SFT_STEPS)
    p.add_argument("--items", type=int, default=None, help="frame-needing items (default: all of the world's)")
    p.add_argument("--set", nargs="*", default=[], help="SFTConfig overrides k=v for all three modes")
    p.add_argument("--base", default=None, help="a candidate base checkpoint folder (default: the shipped world base)")
    try:
        args = p.parse_args(argv)
    except SystemExit as exc:  # argparse's own usage errors
        raise UsageError(USAGE) from exc
    for name in ("world_seed", "train_seed"):
        value = getattr(args, name)
        if not value.isdigit():
            raise UsageError(f"{USAGE}\n{name.upper()} must be a non-negative integer, got {value!r}")
        setattr(args, name, int(value))
    return args


def _sha256_dir(path: Path) -> str:
    digest = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(f.relative_to(path).as_posix().encode())
        digest.update(hashlib.sha256(f.read_bytes()).digest())
    return digest.hexdigest()


def _claim(out: Path, identity: dict[str, Any]) -> None:
    """Refuse an OUT_DIR holding another run; mark it as this run's (same identity: resume)."""
    marker = out / "run.json"
    if marker.exists():
        have = json.loads(marker.read_text())
        if have != identity:
            raise UsageError(f"{out} holds another imagination check ({have}); choose an empty OUT_DIR")
    elif out.exists() and any(out.iterdir()):
        raise UsageError(f"{out} is not empty and holds no imagination check; choose an empty OUT_DIR")
    out.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps(identity, indent=1, sort_keys=True))


def run_check(world_seed: int, train_seed: int, out_dir: str | Path, *, sft_steps: int = SFT_STEPS,
              items: int | None = None, overrides: dict[str, Any] | None = None, world_config: Any = None,
              max_new_tokens: int | None = None, base: str | Path | None = None) -> dict[str, Any]:
    """Steps 1–4 of the module docstring; returns the summary (also ``OUT_DIR/summary.json``). ``world_config``
    (a :class:`~fl1_core.data.world.WorldConfig`) and ``max_new_tokens`` shrink the check for tests; ``base`` replaces
    the shipped world base with a candidate checkpoint folder."""
    import torch

    from .audit.ablations import run_ablations
    from .intervals import paired_difference
    from .audit.decode import decode_items, load_audit_items
    from .audit.frame_reading import reading_decomposition, reading_points
    from .audit.world_states import read_clips
    from .data.world import generate_world
    from .model import load_future_l1
    from .world_base import world_base_path
    from .evaluation.heldout import HELDOUT_MAX_NEW_TOKENS
    from .runs import atomic_write_json, git_commit, package_versions, write_jsonl
    from .sft import SFTConfig, run_sft

    torch.set_num_threads(THREADS)
    out = Path(out_dir)
    overrides = dict(overrides or {})
    identity = {"world_seed": world_seed, "train_seed": train_seed, "sft_steps": sft_steps, "items": items,
                "overrides": overrides}
    if base is not None:
        base = Path(base).resolve()
        if not (base / "config.json").exists():
            raise UsageError(f"--base {base}: not a checkpoint folder (no config.json)")
        identity["base"] = str(base)
    _claim(out, identity)
    base = base or world_base_path()
    world = out / "world"
    if not (world / "world.json").exists():
        generate_world(world, seed=world_seed, config=world_config)
    times: dict[str, float] = {}
    for mode in MODES:
        t0 = time.perf_counter()
        cfg = SFTConfig.cpu_world(seed=train_seed, max_steps=sft_steps, progress_bar=False, **overrides)
        run_sft(base, world / "sft.json", out / "sft" / mode, cfg, mode=mode)
        times[f"sft_{mode}_s"] = time.perf_counter() - t0
    frame_items = [it for it in load_audit_items(world / "heldout_mcq.jsonl") if it.meta.get("needs_frame")]
    frame_items = frame_items[:items] if items else frame_items
    kw = dict(batch_size=16, max_new_tokens=max_new_tokens or HELDOUT_MAX_NEW_TOKENS)
    t0 = time.perf_counter()
    latent, proc = load_future_l1(out / "sft" / "latent" / "final")
    clean = decode_items(latent, proc, frame_items, **kw)
    notes = []
    if any(d.latents.shape[0] for d in clean):
        abl = run_ablations(latent, proc, frame_items, clips=read_clips(world), conditions=CONDITIONS,
                            seed=train_seed, clean=clean, **kw)
        decoded = {f"latent/{c}": abl["decoded"][c] for c in CONDITIONS}
    else:  # no slot to feed: the oracle and the shuffled frames cannot reach the answer
        notes.append("the latent model wrote no latent span on these items: oracle and shuffled equal 'as is'")
        decoded = {f"latent/{c}": clean for c in CONDITIONS}
    for mode in ("pause", "text"):
        model, proc = load_future_l1(out / "sft" / mode / "final")
        decoded[mode] = decode_items(model, proc, frame_items, **kw)
    times["decode_s"] = time.perf_counter() - t0
    for name, rows in decoded.items():
        write_jsonl(out / "predictions" / f"{name.replace('/', '.')}.jsonl", [
            {"id": it.record.id, "kind": it.kind, "changed": it.changed, "answer": it.record.answer, "pred": d.pred,
             "letter_correct": d.correct, "concluded_correct": d.event_correct, "spans": d.span_counts,
             "text": d.text} for it, d in zip(frame_items, rows)])

    def points(a: str, b: str, metric: str = "event_correct") -> dict[str, float]:
        d = paired_difference([getattr(x, metric) for x in decoded[a]], [getattr(x, metric) for x in decoded[b]])
        return {"mean": round(100 * d["delta"], 2), "lo": round(100 * d["ci95"][0], 2),
                "hi": round(100 * d["ci95"][1], 2)}

    line = {"n": len(frame_items),
            "oracle_minus_shuffled": points("latent/oracle", "latent/oracle_shuffled"),
            "latent_minus_pause": points("latent/none", "pause"),
            "latent_minus_text": points("latent/none", "text")}
    summary = {
        "line": line,
        "letter": {"oracle_minus_shuffled": points("latent/oracle", "latent/oracle_shuffled", "correct"),
                   "latent_minus_pause": points("latent/none", "pause", "correct"),
                   "latent_minus_text": points("latent/none", "text", "correct")},
        "accuracy": {name: {"concluded": round(100 * sum(d.event_correct for d in rows) / len(rows), 2),
                            "letter": round(100 * sum(d.correct for d in rows) / len(rows), 2)}
                     for name, rows in decoded.items()},
        "world_seed": world_seed, "train_seed": train_seed, "sft_steps": sft_steps, "overrides": overrides,
        "base_sha256": _sha256_dir(base), "threads": THREADS, "notes": notes,
        "latent_spans": {name: round(sum(len(d.span_counts) for d in rows) / len(rows), 3)
                         for name, rows in decoded.items()},
        "frame_reading": {name: reading_points(reading_decomposition([d.text for d in rows],
                                                                     [it.meta for it in frame_items]))
                          for name, rows in decoded.items()},
    }
    atomic_write_json(out / "summary.json", summary)
    atomic_write_json(out / "environment.json", {"versions": package_versions(), "commit": git_commit(),
                                                 "python": sys.version.split()[0], "times_s": times})
    return summary


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        args = parse_args(list(sys.argv[1:] if argv is None else argv))
        from .cli import _parse_params

        summary = run_check(args.world_seed, args.train_seed, args.out_dir, sft_steps=args.sft_steps,
                            items=args.items, overrides=_parse_params(args.set) if args.set else None,
                            base=args.base)
    except UsageError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    except Exception as exc:  # a failing step: say which, exit 1
        log.exception("imagination check failed")
        print(f"imagination check failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(summary["line"], sort_keys=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


def pool_checks(out_dirs: list[str | Path]) -> dict[str, Any]:
    """Several checks (e.g. training seeds 0, 1, 2 on one world) pooled: for each difference of the JSON line, the
    mean over checks with its t-interval over checks, and the item-level paired interval pooled over all their items
    (``d̄ ± 1.96 · sd(d) / √n``). Reads each ``OUT_DIR/predictions``."""
    from .intervals import paired_difference
    from .runs import read_jsonl
    from .seed_study import t_interval

    pairs = {"oracle_minus_shuffled": ("latent.oracle", "latent.oracle_shuffled"),
             "latent_minus_pause": ("latent.none", "pause"), "latent_minus_text": ("latent.none", "text")}
    out: dict[str, Any] = {"checks": [str(d) for d in out_dirs]}
    for name, (a, b) in pairs.items():
        per_check, pooled_a, pooled_b = [], [], []
        for d in out_dirs:
            ra = {r["id"]: r["concluded_correct"] for r in read_jsonl(Path(d) / "predictions" / f"{a}.jsonl")}
            rb = {r["id"]: r["concluded_correct"] for r in read_jsonl(Path(d) / "predictions" / f"{b}.jsonl")}
            ids = [i for i in ra if i in rb]
            per_check.append(100 * paired_difference([ra[i] for i in ids], [rb[i] for i in ids])["delta"])
            pooled_a += [ra[i] for i in ids]
            pooled_b += [rb[i] for i in ids]
        pooled = paired_difference(pooled_a, pooled_b)
        out[name] = {"over_checks": t_interval(per_check),
                     "pooled": {"mean": 100 * pooled["delta"], "lo": 100 * pooled["ci95"][0],
                                "hi": 100 * pooled["ci95"][1], "n": pooled["n"]}}
    return out
