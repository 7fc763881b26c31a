"""Learning curves of world-base runs side by side: held-out measures against CPU minutes.

    python scripts/world_base_curves.py --run "shipped chain=runs/world_base" \
        --run "first base + 2 reading phases=runs/world_base:runs/world_base_lookup_long:runs/world_base_lookup_long3"

A run is one folder, or several folders joined by ``:`` whose phases ran one after the other (their CPU minutes add
up). A chain folder of ``fl1 pretrain`` is read through its combined ``eval.jsonl``. Writes
docs/world_base/training_curves.{html,png,json}.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from fl1_core.plots import save_figure
from fl1_core.plots.pretraining import pretraining_curves
from fl1_core.runs import read_jsonl

DOCS = Path(__file__).resolve().parents[1] / "docs" / "world_base"


def phases_rows(folders: list[str]) -> list[dict]:
    """Evaluation rows of consecutive phases, CPU minutes counted from the first phase's start."""
    rows, before = [], 0.0
    for folder in folders:
        evals = read_jsonl(Path(folder) / "eval.jsonl")
        log = read_jsonl(Path(folder) / "log.jsonl")
        rows += [{**r, "cpu_minutes": r["cpu_minutes"] + before} for r in evals]
        before += log[-1]["cpu_s"] / 60.0 if log else 0.0
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", action="append", required=True, metavar="LABEL=FOLDER[:FOLDER...]")
    parser.add_argument("--out", default=str(DOCS), help="folder of training_curves.{html,png,json}")
    args = parser.parse_args()
    runs = {}
    for spec in args.run:
        label, _, folders = spec.partition("=")
        if not folders:
            raise SystemExit(f"--run {spec!r}: expected LABEL=FOLDER[:FOLDER...]")
        runs[label] = phases_rows(folders.split(":"))
    fig = pretraining_curves(runs, title="World base: held-out accuracy against CPU minutes")
    # committed docs: plotly.js from its CDN, as docs/world_base/sweep_curves.html (no 4.7 MB copy in git)
    print(save_figure(fig, Path(args.out), "training_curves", include_plotlyjs="cdn"))


if __name__ == "__main__":
    main()
