"""Load test of the judge client against the local judge server (no faults): prints judged samples per second.

    python benchmarks/judge_load.py [--n 2000] [--concurrency 16] [--server thread|process|both]

``thread`` runs the server in a background thread of this process (client and server share one GIL, the way tests
and notebooks use it); ``process`` runs it in a separate process (the way ``fl1 judge-serve`` is used). Both are
measured side by side in one run with ``both`` (the default).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import time

from fl1_core.judge.client import judge_many
from fl1_core.judge.config import JudgeConfig, TwiffJudgeItem
from fl1_core.judge.server import start_judge_server

EVENTS = [
    "the red ball hits the blue box.",
    "the blue box slides to the right.",
    "the green lamp switches on.",
    "the yellow block falls off the table.",
]


def make_items(n: int) -> list[TwiffJudgeItem]:
    """``n`` distinct TwiFF-style items over the synthetic world's event sentences."""
    items = []
    for i in range(n):
        k = 1 + i % len(EVENTS)
        items.append(
            TwiffJudgeItem(
                doc_id=i,
                question=f"<image><image>Sample {i}: what happens next?",
                reference_reasoning="<rimage>".join(f"THOUGHT {j}: {e}" for j, e in enumerate(EVENTS)),
                ground_truth=EVENTS[-1],
                model_reasoning=f"<reason>{' '.join(EVENTS[:k])} (sample {i})</reason>",
                model_answer=EVENTS[-1] if i % 2 else "the block stays",
            )
        )
    return items


def _serve_in_child(conn, stop) -> None:  # type: ignore[no-untyped-def]
    handle = start_judge_server()
    conn.send(handle.base_url)
    stop.wait()
    handle.close()


def run_load(base_url: str, n: int, concurrency: int) -> float:
    """Judge ``n`` items (no cache) and return judged samples per second."""
    items = make_items(n)
    cfg = JudgeConfig(base_url=base_url, model="fl1-rule-judge", concurrency=concurrency, timeout_s=30.0)
    judge_many(items[: min(64, n)], cfg, progress=False)  # warm-up: connections, imports
    t0 = time.perf_counter()
    results, stats = judge_many(items, cfg, progress=False)
    dt = time.perf_counter() - t0
    judged = sum(r["judge_error"] is None for r in results)
    assert judged == n and stats.failures == 0, stats
    return judged / dt


def main() -> None:
    """Parse arguments, run the load test(s), print the throughput."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--server", choices=("thread", "process", "both"), default="both")
    args = ap.parse_args()
    if args.server in ("thread", "both"):
        with start_judge_server() as handle:
            rate = run_load(handle.base_url, args.n, args.concurrency)
        print(f"server in a thread of this process : {rate:8.1f} judged samples/s "
              f"(n={args.n}, concurrency={args.concurrency})")
    if args.server in ("process", "both"):
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe()
        stop = ctx.Event()
        proc = ctx.Process(target=_serve_in_child, args=(child, stop), daemon=True)
        proc.start()
        try:
            base_url = parent.recv()
            rate = run_load(base_url, args.n, args.concurrency)
        finally:
            stop.set()
            proc.join(timeout=10)
        print(f"server in a separate process       : {rate:8.1f} judged samples/s "
              f"(n={args.n}, concurrency={args.concurrency})")


if __name__ == "__main__":
    main()
