"""Every RL run kept under a seed study, paired against its SFT init, in one table, then per algorithm:

    python scripts/rl_replicate_summary.py docs/seed_study [docs/seed_study/world1 ...] [--group "event kinds"]
        [--score event] [--kind KIND ...] [--drop-kind KIND ...] [--trade-off HTML]

Several study folders (one per world, say) give one table of every run of them all; each run set is then named
with its study folder, and the per-algorithm table adds one line per algorithm and study folder.

A *run set* is the study's ``heldout_rows/`` or a folder below its ``rl_replicates/`` that holds ``seed0/``,
``seed1/``, ... with ``rl_heldout.<model>.jsonl`` in each (what ``fl1 heldout`` writes, one file per training
seed); a model is every name found in all of its seeds, except the references (``sft_init`` and the SFT and base
controls). Each is paired, seed by seed and pooled, with
``<reference folder>/seedS/rl_heldout.sft_init.jsonl``: ``heldout_rows`` (the study's own inits), or the folder that
``rl_replicates/references.json`` names for the run set (``{"run set": "reference folder"}``, paths relative to the
study folder), for runs made from other inits.

``--kind`` keeps only the items of those question kinds, ``--drop-kind`` leaves those kinds out (both
repeatable; the group still applies): ``--kind interpolation`` and ``--drop-kind interpolation`` split the event
kinds in two.

The second table groups the runs by algorithm (the model name's prefix: ``la-dapo``, ``dapo``, ``grpo``) and gives
the spread of the chosen score's Δ, and how many runs meet "≥ 0": the mean ≥ 0 and the 95 % CI's low ≥ −2
points.

``--trade-off HTML`` pairs every run on the frame-needing items too and writes, one marker per run, its Δ on the
event kinds against its Δ on the frame-needing items (a plotly scatter with the CIs as error bars), and prints the
Pearson r of the two over the runs and the runs that meet "≥ 0" on both: where the settings tried sit against the
targets together.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Collection
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fl1_core.evaluation.heldout_pairs import GROUPS, METRICS, paired_table, read_pooled  # noqa: E402

REFERENCE = "sft_init"
CONTROLS = (REFERENCE, "base", "base_chain", "pause_sft", "text_sft")
ALGORITHMS = ("la-dapo", "dapo", "grpo")  # longest prefix first


def run_sets(study: Path) -> list[Path]:
    """``study/heldout_rows`` and the folders below ``study/rl_replicates`` that hold ``seed0/`` with
    ``rl_heldout.*.jsonl``, in path order."""
    found = {seed0.parent for seed0 in (study / "rl_replicates").rglob("seed0")
             if any(seed0.glob("rl_heldout.*.jsonl"))}
    return [study / "heldout_rows", *sorted(found)]


def seed_dirs(run_set: Path) -> list[Path]:
    """``seed0/``, ``seed1/``, ... up to the first missing one."""
    out = []
    while (run_set / f"seed{len(out)}").is_dir():
        out.append(run_set / f"seed{len(out)}")
    return out


def models(run_set: Path) -> list[str]:
    """The model names whose rows every seed of ``run_set`` holds, the references and controls left out."""
    names = [{f.name[len("rl_heldout."):-len(".jsonl")] for f in d.glob("rl_heldout.*.jsonl")}
             for d in seed_dirs(run_set)]
    return sorted(set.intersection(*names) - set(CONTROLS)) if names else []


def algorithm(model: str) -> str | None:
    return next((a for a in ALGORITHMS if model == a or model.startswith(a + "-")), None)


def of_kinds(rows: dict[str, dict], kinds: Collection[str] | None, drop_kinds: Collection[str] = ()) -> dict[str, dict]:
    """The rows whose question kind is in ``kinds`` (all when ``None``) and not in ``drop_kinds``; ``ValueError``
    when a kind is asked for and a row has none."""
    if kinds is None and not drop_kinds:
        return rows
    missing = next((i for i, r in rows.items() if "kind" not in r), None)
    if missing is not None:
        raise ValueError(f"row {missing} has no question kind; re-run `fl1 heldout` to select by kind")
    return {i: r for i, r in rows.items() if (kinds is None or r["kind"] in kinds) and r["kind"] not in drop_kinds}


def summary_rows(study: Path, group: str, kinds: Collection[str] | None = None, drop_kinds: Collection[str] = ()
                 ) -> list[dict]:
    """One row per (run set, model): its paired Δ of every score on ``group`` (the items of ``kinds``, less those
    of ``drop_kinds``, :func:`of_kinds`) against its reference."""
    references = {}
    ref_file = study / "rl_replicates" / "references.json"
    if ref_file.is_file():
        references = {study / k: study / v for k, v in json.loads(ref_file.read_text()).items()}
    rows, read = [], {}  # read: each reference's pooled rows, read once per seed count
    for run_set in run_sets(study):
        reference = references.get(run_set, study / "heldout_rows")
        seeds = seed_dirs(run_set)
        if (reference, len(seeds)) not in read:
            pooled = read_pooled([reference / d.name / f"rl_heldout.{REFERENCE}.jsonl" for d in seeds])
            read[reference, len(seeds)] = of_kinds(pooled, kinds, drop_kinds)
        ref = read[reference, len(seeds)]
        if not ref:
            raise ValueError(f"{reference.relative_to(study)}: no item of the chosen question kinds")
        others = {m: read_pooled([d / f"rl_heldout.{m}.jsonl" for d in seeds]) for m in models(run_set)}
        if not others:
            continue
        for row in paired_table(ref, others):
            if row["group"] == group:
                rows.append({"run set": run_set.relative_to(study).as_posix(), "seeds": len(seeds), **row})
    return rows


def meets(delta: dict) -> bool:
    """The target's "≥ 0": the mean ≥ 0 and the CI's low ≥ −2 points."""
    return delta["delta"] >= 0 and delta["ci95"][0] >= -0.02


def format_rows(rows: list[dict]) -> str:
    def cell(d: dict) -> str:
        return f"{100 * d['delta']:+.1f} [{100 * d['ci95'][0]:+.1f}, {100 * d['ci95'][1]:+.1f}]"

    lines = ["run set | model | n | " + " | ".join(f"{s} Δ" for s in METRICS)]
    lines += [f"{r['run set']} | {r['model']} | {r['n']} | " + " | ".join(cell(r[f"{s} delta"]) for s in METRICS)
              for r in rows]
    return "\n".join(lines)


def by_algorithm(rows: list[dict], score: str) -> str:
    """Per algorithm, over every row, then (when the rows come from several study folders) per algorithm and study
    folder: the runs, the mean, lowest and highest Δ of ``score`` and how many meet "≥ 0"."""
    studies = sorted({r["study"] for r in rows if "study" in r})
    lines = [f"algorithm | runs | {score} Δ mean over runs | lowest | highest | runs meeting ≥ 0"]
    for study in [None, *studies] if len(studies) > 1 else [None]:
        for a in ALGORITHMS[::-1]:
            mine = [r[f"{score} delta"] for r in rows
                    if algorithm(r["model"]) == a and (study is None or r["study"] == study)]
            if mine:
                means = [100 * d["delta"] for d in mine]
                name = a if study is None else f"{a} ({study})"
                lines.append(f"{name} | {len(mine)} | {sum(means) / len(means):+.1f} | {min(means):+.1f} | "
                             f"{max(means):+.1f} | {sum(meets(d) for d in mine)}")
    return "\n".join(lines)


def trade_off(rows_x: list[dict], rows_y: list[dict], score: str) -> list[dict]:
    """One point per RL run (a model an algorithm names) present in both tables: ``x`` its Δ of ``score`` on the
    event kinds (``rows_x``), ``y`` on the frame-needing items (``rows_y``), each with its CI."""
    ys = {(r["run set"], r["model"]): r[f"{score} delta"] for r in rows_y}
    return [{"run set": r["run set"], "model": r["model"], "x": r[f"{score} delta"], "y": ys[key]}
            for r in rows_x if (key := (r["run set"], r["model"])) in ys and algorithm(r["model"])]


def pearson(xs: list[float], ys: list[float]) -> float:
    """r = Σ(x−x̄)(y−ȳ) / √(Σ(x−x̄)² · Σ(y−ȳ)²) (:func:`statistics.correlation`); nan for fewer than 2 points or a
    constant side."""
    try:
        return statistics.correlation(xs, ys)
    except statistics.StatisticsError:
        return float("nan")


def trade_off_text(points: list[dict], score: str) -> str:
    """Pearson r of the two Δ over the runs, and the runs that meet "≥ 0" on both."""
    both = [f"{p['run set']}:{p['model']}" for p in points if meets(p["x"]) and meets(p["y"])]
    r = pearson([p["x"]["delta"] for p in points], [p["y"]["delta"] for p in points])
    return (f"trade-off, {score} Δ on the event kinds against the frame-needing items, {len(points)} runs: Pearson r "
            f"{r:+.2f}; meeting ≥ 0 on both: {len(both)}" + (f" ({', '.join(both)})" if both else ""))


def trade_off_figure(points: list[dict], score: str):
    """A plotly scatter of :func:`trade_off` (one marker per run, its 95 % CIs as error bars, one colour per
    algorithm), the quadrant where both Δ ≥ 0 shaded."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for a in ALGORITHMS[::-1]:
        mine = [p for p in points if algorithm(p["model"]) == a]
        if not mine:
            continue
        fig.add_trace(go.Scatter(
            x=[100 * p["x"]["delta"] for p in mine], y=[100 * p["y"]["delta"] for p in mine], mode="markers", name=a,
            text=[f"{p['run set']}: {p['model']}" for p in mine], hovertemplate="%{text}<br>(%{x:+.1f}, %{y:+.1f})",
            error_x={"type": "data", "symmetric": False, "thickness": 0.6,
                     "array": [100 * (p["x"]["ci95"][1] - p["x"]["delta"]) for p in mine],
                     "arrayminus": [100 * (p["x"]["delta"] - p["x"]["ci95"][0]) for p in mine]},
            error_y={"type": "data", "symmetric": False, "thickness": 0.6,
                     "array": [100 * (p["y"]["ci95"][1] - p["y"]["delta"]) for p in mine],
                     "arrayminus": [100 * (p["y"]["delta"] - p["y"]["ci95"][0]) for p in mine]}))
    fig.add_shape(type="rect", x0=0, y0=0, x1=max([1.0] + [100 * p["x"]["ci95"][1] for p in points]),
                  y1=max([1.0] + [100 * p["y"]["ci95"][1] for p in points]), fillcolor="green", opacity=0.08,
                  line_width=0, layer="below")
    fig.add_hline(y=0, line_width=1, line_color="grey")
    fig.add_vline(x=0, line_width=1, line_color="grey")
    fig.update_layout(title=f"RL − SFT init, {score} (points; 95 % CIs): event kinds against frame-needing items",
                      xaxis_title="event kinds Δ", yaxis_title="frame-needing Δ", template="plotly_white")
    return fig


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("studies", type=Path, nargs="+", metavar="study",
                   help="a seed study's folder (docs/seed_study), or several")
    p.add_argument("--group", choices=sorted(GROUPS), default="event kinds")
    p.add_argument("--score", choices=METRICS, default="event", help="the score of the per-algorithm table")
    p.add_argument("--kind", action="append", default=None, help="keep only this question kind (repeatable)")
    p.add_argument("--drop-kind", action="append", default=[], help="leave this question kind out (repeatable)")
    p.add_argument("--trade-off", type=Path, default=None, metavar="HTML",
                   help="also pair every run on the frame-needing items and write the event-kind against "
                        "frame-needing Δ of --score as a plotly scatter here (whole groups: not with --kind, "
                        "--drop-kind or --group)")
    args = p.parse_args(argv)
    if args.trade_off is not None and (args.kind or args.drop_kind or args.group != "event kinds"):
        p.error("--trade-off compares the whole event-kind and frame-needing groups: leave out --kind, --drop-kind "
                "and --group")
    rows, frame_rows = [], []
    for study in args.studies:
        if not (study / "heldout_rows").is_dir():
            p.error(f"{study}: no heldout_rows/ folder (not a seed study's folder)")
        try:
            found = summary_rows(study, args.group, args.kind, args.drop_kind)
            framed = summary_rows(study, "frame") if args.trade_off is not None else []
        except (ValueError, json.JSONDecodeError) as err:
            p.error(f"{study}: {err}")
        if len(args.studies) > 1:
            found, framed = ([{**r, "study": study.as_posix(), "run set": f"{study.as_posix()}/{r['run set']}"}
                              for r in got] for got in (found, framed))
        rows += found
        frame_rows += framed
    chosen = "".join([f", kinds {', '.join(args.kind)}" if args.kind else "",
                      f", without {', '.join(args.drop_kind)}" if args.drop_kind else ""])
    if not rows:
        p.error(f"no item of {args.group}{chosen}")
    print(f"{args.group}{chosen}, Δ points against each run's SFT init (pooled over seeds, paired, 95 % CI)\n")
    print(format_rows(rows) + "\n")
    print(by_algorithm(rows, args.score))
    if args.trade_off is not None:
        points = trade_off(rows, frame_rows, args.score)
        print("\n" + trade_off_text(points, args.score))
        args.trade_off.parent.mkdir(parents=True, exist_ok=True)
        trade_off_figure(points, args.score).write_html(args.trade_off, include_plotlyjs="cdn")
        print(f"wrote {args.trade_off}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
