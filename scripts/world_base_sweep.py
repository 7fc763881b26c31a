"""The world-base recipe sweep: short runs of several PretrainRecipe configurations, then a results table.

    python scripts/world_base_sweep.py run --world data/world [--only NAME ...] [--threads 1]   # resumable
    python scripts/world_base_sweep.py report                                                   # table + figure

Runs land in runs/world_base_sweep/<name>/ (log.jsonl, eval.jsonl); the report writes
docs/world_base/sweep_results.{md,csv} and docs/world_base/sweep_curves.{html,png}: held-out measures against the
CPU minutes each configuration spent training.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
from pathlib import Path

import torch
import yaml

from fl1_core.pretrain import PretrainRecipe, pretrain_world_base
from fl1_core.runs import read_jsonl

ROOT = Path(__file__).resolve().parents[1]
SWEEP = ROOT / "configs" / "world_base" / "sweep.yaml"
RUNS = ROOT / "runs" / "world_base_sweep"
DOCS = ROOT / "docs" / "world_base"


def recipes(path: Path = SWEEP) -> dict[str, PretrainRecipe]:
    spec = yaml.safe_load(path.read_text())
    common = spec.get("common", {})
    return {name: PretrainRecipe.from_dict({**common, **(over or {})}) for name, over in spec["configs"].items()}


def run(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    for name, recipe in recipes().items():
        if args.only and name not in args.only:
            continue
        logging.info("sweep: %s", name)
        pretrain_world_base(recipe, RUNS / name, world_dir=args.world, eval_mcq=args.eval_mcq, progress=False)


def _pct(summary: dict | None) -> str:
    if not summary:
        return "–"
    lo, hi = summary["ci95"]
    return f"{100 * summary['accuracy']:.1f} [{100 * lo:.0f}, {100 * hi:.0f}]"


def report(args: argparse.Namespace) -> None:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    DOCS.mkdir(parents=True, exist_ok=True)
    measures = [("scene exact", lambda r: r["scene"]["exact"]), ("colour slots", lambda r: r["scene"]["colour_slots"]),
                ("option look-up", lambda r: r.get("lookup")), ("MCQ text-solvable", lambda r: (r.get("mcq") or {}).get("text")),
                ("MCQ vision-dependent", lambda r: (r.get("mcq") or {}).get("vision"))]
    fig = make_subplots(rows=1, cols=len(measures), subplot_titles=[m for m, _ in measures])
    rows_md, rows_csv = [], []
    for ci, (name, recipe) in enumerate(recipes().items()):
        evals = read_jsonl(RUNS / name / "eval.jsonl")
        if not evals:
            continue
        logs = read_jsonl(RUNS / name / "log.jsonl")
        ce = sum(r["ce"] for r in logs[-50:]) / max(1, len(logs[-50:]))
        last = evals[-1]
        rows_md.append(f"| {name} | {last['step']} | {last['cpu_minutes']:.1f} | {ce:.3f} | "
                       + " | ".join(_pct(get(last)) for _, get in measures) + " |")
        rows_csv.append({"config": name, "steps": last["step"], "cpu_minutes": round(last["cpu_minutes"], 2),
                         "final_ce": round(ce, 4), **{m: (get(last) or {}).get("accuracy") for m, get in measures}})
        for j, (m, get) in enumerate(measures):
            pts = [(r["cpu_minutes"], get(r)["accuracy"]) for r in evals if get(r)]
            if pts:
                fig.add_trace(go.Scatter(x=[p[0] for p in pts], y=[p[1] for p in pts], mode="lines+markers", name=name,
                                         legendgroup=name, showlegend=j == 0,
                                         line={"color": f"hsl({ci * 50 % 360},70%,45%)"}), row=1, col=j + 1)
    fig.update_xaxes(title_text="CPU minutes")
    fig.update_yaxes(range=[0, 1])
    fig.update_layout(title="World-base sweep: held-out accuracy against CPU minutes", height=380, width=1500)
    header = ("| config | steps | CPU min | CE (last 50 steps) | " + " | ".join(m for m, _ in measures)
              + " |\n|---|---|---|---|" + "---|" * len(measures))
    text = ("Held-out accuracy in % with Wilson 95 % CIs (scene: 64 frames of unseen clips; look-up: option sets of "
            "the world's held-out MCQ records; MCQ: held-out MCQ records of test clips).\n\n" + header + "\n"
            + "\n".join(rows_md) + "\n")
    (DOCS / "sweep_results.md").write_text(text)
    with open(DOCS / "sweep_results.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows_csv[0]))
        w.writeheader()
        w.writerows(rows_csv)
    fig.write_html(DOCS / "sweep_curves.html", include_plotlyjs="cdn")
    try:
        fig.write_image(DOCS / "sweep_curves.png", scale=1)
    except Exception as err:  # noqa: BLE001 - static export needs Chromium
        logging.warning("PNG export failed: %s", err)
    print(text)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--world", default=str(ROOT / "data" / "world"))
    r.add_argument("--only", nargs="*", default=None)
    r.add_argument("--threads", type=int, default=1)
    r.add_argument("--eval-mcq", type=int, default=100)
    sub.add_parser("report")
    args = ap.parse_args()
    (run if args.cmd == "run" else report)(args)


if __name__ == "__main__":
    main()
