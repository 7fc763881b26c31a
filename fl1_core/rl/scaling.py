"""RL data scaling (the paper's 5K / 10K / 20K retained visual-gain samples): train from the same SFT checkpoint on
nested subsets and collect per-size results.

Subsets are *prefixes* of ``records`` (so they are nested: the first 5 ⊂ the first 10 ⊂ …); order the records by
visual gain (or any priority) before calling. Each size trains in ``out_root/size_{n}`` from a fresh load of
``init_checkpoint_dir``, with the same config and seed, and resumes there if interrupted.

:func:`world_data_scaling` is the world's Fig. 5: each size's model scored on TwiFF-Bench-style data by the judge.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from fl1_core.data.records import RLRecord
from fl1_core.evaluation.eval_config import EvalConfig
from fl1_core.evaluation.runner import evaluate_twiffbench
from fl1_core.judge.config import JudgeConfig
from fl1_core.rl.config import RLConfig
from fl1_core.rl.trainer import train_rl
from fl1_core.runs import atomic_write_json

__all__ = ["rl_data_scaling", "world_data_scaling"]

log = logging.getLogger(__name__)

EvalFn = Callable[[Any, Any], dict[str, Any]]


def rl_data_scaling(
    init_checkpoint_dir: str | Path,
    records: Sequence[RLRecord],
    sizes: Sequence[int],
    config: RLConfig,
    out_root: str | Path,
    eval_fn: EvalFn | None = None,
    *,
    judge_config: JudgeConfig | None = None,
    device: str | None = "auto",
) -> list[dict[str, Any]]:
    """For each n in ``sizes`` (ascending, ≤ len(records)): train on ``records[:n]`` from the init checkpoint.

    The step budget follows the config (``total_steps`` when set, else ``num_epochs`` over the n records — so larger
    subsets train for more steps, as in the paper's 1-epoch runs). Returns one dict per size: ``size``, ``out_dir``,
    ``steps``, the first and last metric rows' ``acc_all`` / ``overall_all``, and ``eval`` (``eval_fn(model,
    processor)`` of the trained model) when ``eval_fn`` is given. Also written to ``out_root/scaling.json``.
    """
    from fl1_core.model import load_future_l1

    sizes = [int(s) for s in sizes]
    if not sizes or any(s < 1 for s in sizes):
        raise ValueError(f"sizes must be positive integers, got {sizes}")
    if sorted(sizes) != sizes:
        raise ValueError(f"sizes must be ascending (nested subsets), got {sizes}")
    if sizes[-1] > len(records):
        raise ValueError(f"largest size {sizes[-1]} exceeds the {len(records)} records available")
    out_root = Path(out_root)
    results: list[dict[str, Any]] = []
    for n in sizes:
        model, processor = load_future_l1(init_checkpoint_dir, device=device)
        out_dir = out_root / f"size_{n}"
        log.info("RL data scaling: %d records → %s", n, out_dir)
        res = train_rl(model, processor, list(records[:n]), config, out_dir, judge_config)
        row: dict[str, Any] = {"size": n, "out_dir": str(out_dir), "steps": res.steps}
        if res.metrics:
            first, last = res.metrics[0], res.metrics[-1]
            for key in ("acc_all", "overall_all", "acc", "overall"):
                row[f"{key}_first"] = first.get(f"reward/{key}")
                row[f"{key}_last"] = last.get(f"reward/{key}")
        if eval_fn is not None:
            row["eval"] = eval_fn(model, processor)
        results.append(row)
        atomic_write_json(out_root / "scaling.json", results)
    return results


def world_data_scaling(
    init_checkpoint_dir: str | Path,
    records: Sequence[RLRecord],
    sizes: Sequence[int],
    config: RLConfig,
    out_root: str | Path,
    twiffbench_dir: str | Path,
    *,
    judge_config: JudgeConfig | None,
    eval_limit: int | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """:func:`rl_data_scaling` on the sizes that fit, each trained model scored on TwiFF-Bench-style data with the
    judge (``out_root/eval_size_{n}``). Returns (the per-size results, the figure rows ``size, cot, answer, avg,
    steps``)."""
    sizes = [s for s in sizes if s <= len(records)]
    trained: list[int] = []

    def score(model: Any, processor: Any) -> dict[str, Any]:
        trained.append(sizes[len(trained)])
        out = Path(out_root) / f"eval_size_{trained[-1]}"
        cfg = EvalConfig.world(limit=eval_limit, progress_bar=False)
        return evaluate_twiffbench(model, processor, twiffbench_dir, out, cfg, judge_config)["scores"]

    results = rl_data_scaling(init_checkpoint_dir, records, sizes, config, out_root,
                              eval_fn=score if judge_config is not None else None, judge_config=judge_config)
    rows = [{"size": r["size"], "cot": r["eval"]["cot"], "answer": r["eval"]["answer"], "avg": r["eval"]["avg"],
             "steps": r["steps"]} for r in results if r.get("eval")]
    return results, rows
