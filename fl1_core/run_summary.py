"""A run's headline metrics (``<run>/metrics/summary.json``): written by the evaluation notebook, read by sweeps and
the seed study. One schema, here.

Per evaluated model name: ``futurebench_strict`` and ``futurebench_faithful`` (overall accuracy, %), ``hop:<split>``
(strict accuracy per hop split, %), and, when the model was judged on TwiFF-Bench, ``twiff_cot``, ``twiff_answer``,
``twiff_avg`` (0–5).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

SUMMARY_FILE = "summary.json"

#: the checkpoints of a run, in stage order, by the one name every notebook, metric file and table uses, and the
#: label figures and tables show (``base_chain`` is the base scored on the chain route, not another checkpoint)
CHECKPOINT_LABELS = {"base": "base", "base_chain": "base (chain route)", "text_sft": "text-only SFT",
                     "pause_sft": "pause SFT", "sft_init": "latent SFT", "grpo": "GRPO", "dapo": "DAPO",
                     "la-dapo": "LA-DAPO"}


def headline_metrics(futurebench: Mapping[str, Mapping[str, Any]],
                     twiffbench: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, dict[str, Any]]:
    """The headline row of every model from its FutureBench result (``scores.strict`` / ``scores.faithful``) and, if
    present, its TwiFF-Bench result (``scores.cot`` / ``answer`` / ``avg``)."""
    twiffbench = twiffbench or {}
    out: dict[str, dict[str, Any]] = {}
    for name, result in futurebench.items():
        scores = result["scores"]
        row: dict[str, Any] = {"futurebench_strict": scores["strict"]["overall"],
                               "futurebench_faithful": scores["faithful"]["overall"]}
        row.update({f"hop:{k}": v for k, v in scores["strict"]["table"].items()})
        if name in twiffbench:
            row.update({f"twiff_{k}": twiffbench[name]["scores"][k] for k in ("cot", "answer", "avg")})
        out[name] = row
    return out


def write_run_summary(metrics_dir: str | Path, headline: Mapping[str, Any]) -> Path:
    """``<metrics_dir>/summary.json``, written atomically."""
    from .runs import atomic_write_json

    return atomic_write_json(Path(metrics_dir) / SUMMARY_FILE, dict(headline))


def read_run_summary(run_dir: str | Path) -> dict[str, Any] | None:
    """The headline metrics of a run folder, or None when its evaluation has not written them."""
    path = Path(run_dir) / "metrics" / SUMMARY_FILE
    return json.loads(path.read_text()) if path.exists() else None
