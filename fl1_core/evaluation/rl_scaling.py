"""RL data scaling on the world (Fig. 5): :func:`fl1_core.rl.scaling.rl_data_scaling` with each size's model scored on
TwiFF-Bench-style data by the judge (lives above ``rl``: it evaluates)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fl1_core.data.records import RLRecord
from fl1_core.evaluation.runner import evaluate_twiffbench
from fl1_core.evaluation.eval_config import EvalConfig
from fl1_core.judge.config import JudgeConfig
from fl1_core.rl.config import RLConfig
from fl1_core.rl.scaling import rl_data_scaling

__all__ = ["world_data_scaling"]


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
