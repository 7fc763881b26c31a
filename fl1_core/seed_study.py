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

from .data.world.world_types import TEXT_KINDS
from .evaluation.heldout_pairs import METRICS, hit
from .intervals import paired_difference, wilson_interval
from .run_summary import CHECKPOINT_LABELS
from .runs import read_jsonl

HELDOUT_MODELS = ("base", "base_chain", "text_sft", "pause_sft", "sft_init", "grpo", "dapo", "la-dapo")
#: ``all`` = every event kind (text-solvable and vision-dependent); ``frame`` = the frame-needing kinds, and
#: ``frame_changed`` those whose answer differs from the last observed frame's
GROUPS = ("all", "text", "vision", "frame", "frame_changed")
GROUP_LABELS = {"all": "all event kinds", "text": "text-solvable", "vision": "vision-dependent",
                "frame": "frame-needing", "frame_changed": "frame-needing, changed"}
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
                table.append({"model": CHECKPOINT_LABELS[name], "key": name, "group": group, "items_per_seed": n,
                              **t_interval(accs)})
    return table


def paired_delta(runs: Mapping[int, Path], a: str, b: str, group: str = "all", metric: str = "letter"
                 ) -> dict[str, Any]:
    """Δ = accuracy(a) − accuracy(b) on the same held-out items (by ``metric``, see :func:`hit`): per-seed Δ with
    its t-interval, and the pooled item-level paired interval. ``a`` and ``b`` are keys of :data:`HELDOUT_MODELS`."""
    return _paired_delta(_rows_by_seed(runs), a, b, group, metric)


def _paired_delta(per_seed: Mapping[int, Mapping[str, list[dict]]], a: str, b: str, group: str, metric: str
                  ) -> dict[str, Any]:
    seeds, hits_a, hits_b = [], [], []
    for rows in per_seed.values():
        if a not in rows or b not in rows:
            continue
        right = {r["id"]: hit(r, metric) for r in _group(rows[b], group)}
        pairs = [(hit(r, metric), right[r["id"]]) for r in _group(rows[a], group) if r["id"] in right]
        if pairs:
            seeds.append(paired_difference(*zip(*pairs))["delta"])
            hits_a.extend(x for x, _ in pairs)
            hits_b.extend(y for _, y in pairs)
    if not hits_a:
        return {"a": a, "b": b, "group": group, "k": 0}
    pooled = paired_difference(hits_a, hits_b)
    return {"a": a, "b": b, "group": group, "metric": metric, "over_seeds": t_interval(seeds),
            "pooled": {"mean": pooled["delta"], "ci95": pooled["ci95"], "n_items": pooled["n"]}}


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


def spans_by_hop(runs: Mapping[int, Path], model: str = "LA-DAPO") -> dict[str, Any]:
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


def pool_paired(parts: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Pool per-seed paired differences ``{"n", "delta", "ci95"}`` (each ``d̄ ± 1.96·sd/√n``) into the item-level
    interval over every item, exactly: each seed's ``Σd = n·d̄`` and ``Σd² = (n−1)·sd² + n·d̄²`` are recovered."""
    parts = [p for p in parts if p.get("n")]
    if not parts:
        return {"n_items": 0}
    n = sum(p["n"] for p in parts)
    total = sum(p["n"] * p["delta"] for p in parts)
    squares = 0.0
    for p in parts:
        sd = (p["ci95"][1] - p["delta"]) * math.sqrt(p["n"]) / 1.96
        squares += (p["n"] - 1) * sd ** 2 + p["n"] * p["delta"] ** 2
    mean = total / n
    sd = math.sqrt(max(0.0, (squares - n * mean ** 2) / (n - 1))) if n > 1 else 0.0
    half = 1.96 * sd / math.sqrt(n)
    return {"mean": mean, "ci95": [mean - half, mean + half], "n_items": n}


def audit_summary(runs: Mapping[int, Path]) -> dict[str, Any]:
    """Notebook 07's results over seeds (``<run>/audit/audit.json``): the oracle − shuffled contrast per subset and
    score (t-interval over seeds, and pooled over items by :func:`pool_paired`), and every flat probe's R² per
    source and target with the own-latent − untrained gap (t-interval over seeds)."""
    results = {seed: json.loads(f.read_text()) for seed, path in runs.items()
               if (f := path / "audit" / "audit.json").exists()}
    per_seed = [(r.get("contrasts") or {}).get("oracle - oracle_shuffled", {}) for r in results.values()]
    contrasts: dict[str, dict[str, Any]] = {}
    for key in sorted({k for c in per_seed for k in c}):
        for score in ("event", "letter"):
            parts = [c[key][score] for c in per_seed if key in c]
            contrasts[f"{key} ({score})"] = {"over_seeds": t_interval([p["delta"] for p in parts]),
                                             "pooled": pool_paired(parts)}
    probes: dict[str, Any] = {}
    for r in results.values():
        for row in r.get("probes_flat", []):
            if row["metric"] == "r2":
                probes.setdefault(row["target"], {}).setdefault(row["source"], []).append(row["score"])
    for target, by_source in probes.items():
        own, floor = by_source.get("latent SFT · flat"), by_source.get("untrained · flat")
        gap = [a - b for a, b in zip(own, floor)] if own and floor and len(own) == len(floor) else []
        probes[target] = {**{src: t_interval(v) for src, v in by_source.items()}, "own − untrained": t_interval(gap)}
    return {"seeds": sorted(results), "oracle_minus_shuffled": contrasts, "probes_flat_r2": probes,
            "frame_reading": pool_readings([r["frame_reading"] for r in results.values() if r.get("frame_reading")])}


def pool_readings(per_seed: Sequence[Mapping[str, Mapping[str, Any]]]) -> dict[str, dict[str, Any]]:
    """The audit's frame-reading split (:mod:`fl1_core.audit.frame_reading`) pooled over seeds: per decode and
    measure, the counts summed (each part's ``k``; ``share · n`` for parts written before ``k`` was) and a Wilson
    interval on the sum; ``changed`` the same."""
    def pool(blocks: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key in sorted({k for b in blocks for k in b if k != "changed"}):
            parts = [b[key] for b in blocks if key in b and b[key]["n"]]
            n = sum(p["n"] for p in parts)
            k = sum(p["k"] if "k" in p else round(p["share"] * p["n"]) for p in parts)
            out[key] = {"n": n, "share": k / n if n else None, "ci95": list(wilson_interval(k, n)) if n else None}
        if any("changed" in b for b in blocks):
            out["changed"] = pool([b["changed"] for b in blocks if "changed" in b])
        return out

    decodes = sorted({name for r in per_seed for name in r})
    return {name: pool([r[name] for r in per_seed if name in r]) for name in decodes}


def run_machines(runs: Mapping[int, Path]) -> list[dict[str, Any]]:
    """The CPUs the runs computed on, as their manifests record them (``runs.cpu_description``), each with its seeds:
    CPU float results can differ between kernel sets, so a re-run elsewhere is compared knowing this. A run whose
    manifest has no CPU record (written before manifests kept one) is listed under ``"cpu": None``."""
    machines: list[dict[str, Any]] = []
    for seed, run in sorted(runs.items()):
        path = Path(run) / "manifest.json"
        cpu = json.loads(path.read_text()).get("cpu") if path.is_file() else None
        same = next((m for m in machines if m["cpu"] == cpu), None)
        if same is None:
            machines.append({"cpu": cpu, "seeds": [seed]})
        else:
            same["seeds"].append(seed)
    return machines


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
        "machines": run_machines(runs),
        "stages": _stage_table(per_seed, "letter"),
        "deltas": deltas("letter"),
        "event_stages": _stage_table(per_seed, "event") if "event" in metrics else [],
        "event_deltas": deltas("event"),
        "curation": curation_delta(runs),
        "spans_by_hop": spans_by_hop(runs),
        "audit": audit_summary(runs),
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
        fig.add_bar(name=GROUP_LABELS[group],
                    x=[r["model"] for r in rows], y=[r["mean"] for r in rows], marker_color=_color(i),
                    error_y={"type": "data", "symmetric": False,
                             "array": [r["ci95"][1] - r["mean"] for r in rows],
                             "arrayminus": [r["mean"] - r["ci95"][0] for r in rows]})
    fig.add_hline(y=0.25, line_dash="dot", line_color="grey", annotation_text="chance")
    fig.update_layout(barmode="group", yaxis={"range": [0, 1], "title": "accuracy"})
    return _style(fig, title)


def imagination_targets(summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The frame-needing targets in one table (points of the concluded event unless said): oracle − shuffled
    latents (the audit), latent − pause and latent − text-only SFT, latent SFT − the base on its chain route (all
    event kinds), and the flat layout probe's R² from the model's own latents against the untrained floor and the
    true frame. Pooled item-level 95 % intervals where items exist; the t-interval over seeds beside them."""
    from .display import interval_text

    rows = []

    def add(what, over_seeds, pooled=None, scale=100.0):
        rows.append({"target": what, "mean of seeds": round(scale * over_seeds["mean"], 2 if scale == 1 else 1),
                     "95 % CI over seeds": interval_text(over_seeds["ci95"], scale, 2 if scale == 1 else 1, True),
                     "pooled": None if pooled is None else round(scale * pooled["mean"], 1),
                     "95 % CI pooled items": "" if pooled is None else interval_text(pooled["ci95"], signed=True),
                     "items": None if pooled is None else pooled["n_items"], "seeds": over_seeds["k"]})

    oracle = (summary.get("audit") or {}).get("oracle_minus_shuffled", {}).get("all (event)")
    if oracle and oracle["pooled"].get("n_items"):
        add("oracle − shuffled latents (audit, frame-needing)", oracle["over_seeds"], oracle["pooled"])
    wanted = {("sft_init", "pause_sft", "frame"): "latent − pause-token SFT (frame-needing)",
              ("sft_init", "text_sft", "frame"): "latent − text-only SFT (frame-needing)",
              ("sft_init", "text_sft", "frame_changed"): "latent − text-only SFT (frame-needing, changed)",
              ("sft_init", "base_chain", "all"): "latent SFT − base on the chain route (event kinds)"}
    for d in summary.get("event_deltas", []):
        what = wanted.get((d["a"], d["b"], d["group"]))
        if what:
            add(what, d["over_seeds"], d["pooled"])
    probe = (summary.get("audit") or {}).get("probes_flat_r2", {}).get("layout", {})
    for source, label in (("latent SFT · flat", "own latents"), ("untrained · flat", "untrained floor"),
                          ("frame embedding · flat", "true frame"), ("own − untrained", "own − untrained"),
                          ("latent SFT · flat · read by frame embedding · flat", "own latents, true-frame probe")):
        if source in probe and probe[source]["k"]:
            add(f"layout probe R², flat: {label}", probe[source], scale=1.0)
    return rows


def delta_table(deltas: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Rows for display: comparison, group, Δ over seeds [t-interval], pooled Δ [interval], items."""
    from .display import interval_text

    out = []
    for d in deltas:
        if not d.get("k", 1):
            continue
        s, p = d["over_seeds"], d["pooled"]
        out.append({"comparison": f"{CHECKPOINT_LABELS[d['a']]} − {CHECKPOINT_LABELS[d['b']]}", "group": d["group"],
                    "Δ (mean of seeds)": round(100 * s["mean"], 1),
                    "95 % CI over seeds": interval_text(s["ci95"], signed=True),
                    "seeds": s["k"], "Δ pooled": round(100 * p["mean"], 1),
                    "95 % CI pooled items": interval_text(p["ci95"], signed=True),
                    "items": p["n_items"]})
    return out
