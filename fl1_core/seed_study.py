"""The seed study: effect sizes of every stage over several training seeds, with 95 % confidence intervals.

``fl1 batch configs/seed_study.yaml`` runs notebooks 02–05 once per seed (same world, same shipped base); this module
reads those runs and aggregates:

* held-out MCQ accuracy of every checkpoint (base, text-only SFT, latent SFT, GRPO, DAPO, LA-DAPO), overall and by
  group of question kinds (text-solvable / vision-dependent), scored two ways (:func:`hit`): the strict option letter
  (the paper's score) and the concluded event (the option the final thought states), which separates predicting
  the event from binding it to a letter;
* paired differences between two checkpoints on the same items (latent vs text-only SFT; each RL mode vs its SFT
  init), their mean over seeds with a t-interval over seeds, and the interval of the item-level paired differences
  pooled over seeds;
* curation: the vision-dependent share of the kept records against a random pick of the same size;
* latent spans per FutureBench response by hop, and RL data scaling.

Intervals:

    t-interval over seeds:     x̄ ± t_{0.975, k−1} · s / √k          (k seeds; s = sample std of the seed values)
    pooled paired interval:    d̄ ± 1.96 · sd(d) / √n               (d = per-item differences, n items × seeds)
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .data.world.questions import TEXT_KINDS
from .runs import read_jsonl

HELDOUT_MODELS = ("base", "base_chain", "text_sft", "pause_sft", "sft_init", "grpo", "dapo", "la-dapo")
MODEL_LABELS = {"base": "base", "base_chain": "base (chain route)", "text_sft": "text-only SFT",
                "pause_sft": "pause SFT", "sft_init": "latent SFT", "grpo": "GRPO", "dapo": "DAPO", "la-dapo": "LA-DAPO"}
#: ``all`` = every event kind (text-solvable and vision-dependent); ``frame`` = the frame-needing kinds, and
#: ``frame_changed`` those whose answer differs from the last observed frame's
GROUPS = ("all", "text", "vision", "frame", "frame_changed")
#: the paired comparisons (a − b) of the study; the pause-token control when its SFT ran
COMPARISONS = (("sft_init", "text_sft"), ("sft_init", "pause_sft"), ("pause_sft", "text_sft"), ("dapo", "sft_init"),
               ("la-dapo", "sft_init"), ("grpo", "sft_init"), ("sft_init", "base"), ("sft_init", "base_chain"))


def t_interval(values: Sequence[float]) -> dict[str, Any]:
    """Mean and t-interval ``x̄ ± t_{0.975,k−1}·s/√k`` of per-seed values (a single value has no interval)."""
    from scipy import stats

    x = np.asarray(values, dtype=np.float64)
    k = len(x)
    mean = float(x.mean()) if k else float("nan")
    if k < 2:
        return {"mean": mean, "ci95": [mean, mean], "k": k, "values": x.tolist()}
    half = float(stats.t.ppf(0.975, k - 1) * x.std(ddof=1) / math.sqrt(k))
    return {"mean": mean, "ci95": [mean - half, mean + half], "k": k, "values": x.tolist()}


def seed_runs(runs_root: str | Path, name: str = "seed-study") -> dict[int, Path]:
    """``{seed: run dir}`` of the runs ``<runs_root>/<name>-seed=<k>`` that finished notebook 04."""
    out: dict[int, Path] = {}
    for path in sorted(Path(runs_root).glob(f"{name}-seed=*")):
        m = re.fullmatch(rf"{re.escape(name)}-seed=(\d+)", path.name)
        if m and (path / "metrics" / "rl.json").exists():
            out[int(m.group(1))] = path
    return out


def heldout_rows(run_dir: str | Path) -> dict[str, list[dict]]:
    """Per checkpoint name, the held-out MCQ rows (``id``, ``kind``, ``group``, ``correct``) that notebook 04 wrote
    (the base's chain route in ``rl_heldout_chain.base_chain.jsonl``)."""
    metrics = Path(run_dir) / "metrics"
    out = {}
    for name in HELDOUT_MODELS:
        for stem in ("rl_heldout", "rl_heldout_chain"):
            path = metrics / f"{stem}.{name}.jsonl"
            if path.exists():
                out[name] = read_jsonl(path)
    return out


METRICS = ("letter", "event")  # strict option letter (the paper's score) / concluded option (fl1_core.answers)


def hit(row: Mapping, metric: str = "letter") -> bool:
    """One held-out row scored by ``metric``: ``letter`` → its strict letter is right; ``event`` → its final thought
    states the right option (``concluded``, written by :func:`fl1_core.rl.heldout.evaluate_heldout_mcq`)."""
    if metric == "letter":
        return bool(row["correct"])
    if metric == "event":
        if "concluded" not in row:
            raise KeyError("held-out rows without 'concluded' (written before event accuracy existed); "
                           "re-run `fl1 heldout` on the checkpoints")
        return row["concluded"] == row["answer"]
    raise ValueError(f"unknown metric {metric!r}; expected one of {METRICS}")


def _group(rows: Sequence[Mapping], group: str) -> list[Mapping]:
    """The rows of a group (:data:`GROUPS`); rows written before the frame-needing kinds have no ``group``."""
    frame = [r.get("group") == "frame" for r in rows]
    if group == "frame":
        return [r for r, f in zip(rows, frame) if f]
    if group == "frame_changed":
        return [r for r, f in zip(rows, frame) if f and r.get("changed")]
    events = [r for r, f in zip(rows, frame) if not f]
    if group == "all":
        return events
    return [r for r in events if (r["kind"] in TEXT_KINDS) == (group == "text")]


def stage_table(runs: Mapping[int, Path], metric: str = "letter") -> list[dict[str, Any]]:
    """One row per (checkpoint, group): accuracy (by ``metric``, see :func:`hit`) per seed, its mean with the
    t-interval, items per seed."""
    return _stage_table(_rows_by_seed(runs), metric)


def _rows_by_seed(runs: Mapping[int, Path]) -> dict[int, dict[str, list[dict]]]:
    return {seed: heldout_rows(path) for seed, path in runs.items()}


def _stage_table(per_seed: Mapping[int, Mapping[str, list[dict]]], metric: str) -> list[dict[str, Any]]:
    table = []
    for name in HELDOUT_MODELS:
        for group in GROUPS:
            accs, n = [], []
            for rows in per_seed.values():
                if name in rows:
                    g = _group(rows[name], group)
                    accs.append(sum(hit(r, metric) for r in g) / max(1, len(g)))
                    n.append(len(g))
            if accs:
                table.append({"model": MODEL_LABELS[name], "key": name, "group": group, "items_per_seed": n,
                              **t_interval(accs)})
    return table


def paired_delta(runs: Mapping[int, Path], a: str, b: str, group: str = "all", metric: str = "letter"
                 ) -> dict[str, Any]:
    """Δ = accuracy(a) − accuracy(b) on the same held-out items (by ``metric``, see :func:`hit`): per-seed Δ with
    its t-interval, and the pooled item-level paired interval. ``a`` and ``b`` are keys of :data:`HELDOUT_MODELS`."""
    return _paired_delta(_rows_by_seed(runs), a, b, group, metric)


def _paired_delta(per_seed: Mapping[int, Mapping[str, list[dict]]], a: str, b: str, group: str, metric: str
                  ) -> dict[str, Any]:
    seeds, diffs = [], []
    for rows in per_seed.values():
        if a not in rows or b not in rows:
            continue
        right = {r["id"]: hit(r, metric) for r in _group(rows[b], group)}
        d = [float(hit(r, metric)) - float(right[r["id"]]) for r in _group(rows[a], group) if r["id"] in right]
        if d:
            seeds.append(float(np.mean(d)))
            diffs.extend(d)
    if not diffs:
        return {"a": a, "b": b, "group": group, "k": 0}
    d = np.asarray(diffs)
    half = 1.96 * d.std(ddof=1) / math.sqrt(len(d)) if len(d) > 1 else 0.0
    return {"a": a, "b": b, "group": group, "metric": metric, "over_seeds": t_interval(seeds),
            "pooled": {"mean": float(d.mean()), "ci95": [float(d.mean() - half), float(d.mean() + half)],
                       "n_items": len(d)}}


def curation_delta(runs: Mapping[int, Path]) -> dict[str, Any]:
    """Vision-dependent share of the kept records minus that of a random pick of the same size, per seed."""
    kept, rand = [], []
    for path in runs.values():
        f = path / "metrics" / "curation.json"
        if not f.exists():
            continue
        summary = json.loads(f.read_text())["summary"]
        k, r = summary.get("kept", {}).get("needs_vision_share"), summary.get("random_baseline", {}).get("needs_vision_share")
        if k is not None and r is not None:
            kept.append(float(k))
            rand.append(float(r))
    return {"kept": t_interval(kept), "random": t_interval(rand),
            "delta": t_interval([k - r for k, r in zip(kept, rand)])}


def spans_by_hop(runs: Mapping[int, Path], model: str = "la-dapo") -> dict[str, Any]:
    """Mean latent spans per FutureBench response of ``model`` (a notebook-05 name) per hop split, over seeds."""
    per_split: dict[str, list[float]] = {}
    for path in runs.values():
        f = path / "metrics" / "eval.json"
        if not f.exists():
            continue
        res = json.loads(f.read_text())["results"]["futurebench"].get(model)
        if not res:
            continue
        for split, dist in res["latent_stats"]["distribution"]["per_split"].items():
            per_split.setdefault(split, []).append(float(dist["mean_spans"]))
    return {split: t_interval(v) for split, v in sorted(per_split.items())}


def scaling_means(runs: Mapping[int, Path]) -> dict[str, Any]:
    """TwiFF-style answer score of RL data scaling per subset size, over seeds."""
    per_size: dict[int, list[float]] = {}
    for path in runs.values():
        for row in json.loads((path / "metrics" / "rl.json").read_text()).get("scaling", []):
            if row.get("eval"):
                per_size.setdefault(int(row["size"]), []).append(float(row["eval"]["avg"]))
    return {str(size): t_interval(v) for size, v in sorted(per_size.items())}


def summarize(runs_root: str | Path, name: str = "seed-study") -> dict[str, Any]:
    """Everything the seed-study notebook shows, as one JSON-friendly dict."""
    runs = seed_runs(runs_root, name)
    if not runs:
        raise FileNotFoundError(f"no finished seed-study runs {name}-seed=* under {runs_root}; "
                                "run `fl1 batch configs/seed_study.yaml --parallel 3` first")
    per_seed = _rows_by_seed(runs)  # read once: every table and comparison below uses the same rows
    with_events = all("concluded" in rows[0] for by_name in per_seed.values() for rows in by_name.values() if rows)
    metrics = METRICS if with_events else ("letter",)

    def deltas(metric: str) -> list[dict[str, Any]]:
        if metric not in metrics:
            return []
        return [d for a, b in COMPARISONS for g in GROUPS
                if (d := _paired_delta(per_seed, a, b, g, metric)).get("k", 1) != 0]

    return {
        "seeds": sorted(runs),
        "stages": _stage_table(per_seed, "letter"),
        "deltas": deltas("letter"),
        "event_stages": _stage_table(per_seed, "event") if "event" in metrics else [],
        "event_deltas": deltas("event"),
        "curation": curation_delta(runs),
        "spans_by_hop": spans_by_hop(runs),
        "scaling": scaling_means(runs),
    }


def stage_bars(stages: Sequence[Mapping[str, Any]], title: str = "Held-out MCQ accuracy by stage (mean over seeds, "
               "95 % t-interval)"):
    """Grouped bars: one group per checkpoint, one bar per group of kinds, error bars = the t-interval over seeds."""
    import plotly.graph_objects as go

    from .plots.style import _color, _style

    fig = go.Figure()
    for i, group in enumerate(GROUPS):
        rows = [r for r in stages if r["group"] == group]
        fig.add_bar(name={"all": "all kinds", "text": "text-solvable", "vision": "vision-dependent"}[group],
                    x=[r["model"] for r in rows], y=[r["mean"] for r in rows], marker_color=_color(i),
                    error_y={"type": "data", "symmetric": False,
                             "array": [r["ci95"][1] - r["mean"] for r in rows],
                             "arrayminus": [r["mean"] - r["ci95"][0] for r in rows]})
    fig.add_hline(y=0.25, line_dash="dot", line_color="grey", annotation_text="chance")
    fig.update_layout(barmode="group", yaxis={"range": [0, 1], "title": "accuracy"})
    return _style(fig, title)


def delta_table(deltas: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Rows for display: comparison, group, Δ over seeds [t-interval], pooled Δ [interval], items."""
    out = []
    for d in deltas:
        if not d.get("k", 1):
            continue
        s, p = d["over_seeds"], d["pooled"]
        out.append({"comparison": f"{MODEL_LABELS[d['a']]} − {MODEL_LABELS[d['b']]}", "group": d["group"],
                    "Δ (mean of seeds)": round(100 * s["mean"], 1),
                    "95 % CI over seeds": f"[{100 * s['ci95'][0]:.1f}, {100 * s['ci95'][1]:.1f}]",
                    "seeds": s["k"], "Δ pooled": round(100 * p["mean"], 1),
                    "95 % CI pooled items": f"[{100 * p['ci95'][0]:.1f}, {100 * p['ci95'][1]:.1f}]",
                    "items": p["n_items"]})
    return out
