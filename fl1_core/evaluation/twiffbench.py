"""TwiFF-Bench aggregation (docs/PAPER.md#evaluation): CoT, answer and Avg = (CoT + Ans)/2 on the judge's 0–5 scale.

The headline means are over successfully judged samples (as the release), but failures are counted and a
failures-as-zero variant is reported next to them. Scores outside 0–5 are clamped here too and counted in
``n_clamped`` together with records the judge client already flagged ``clamped``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from fl1_core.judge.parsing import clamp_score_pair

__all__ = ["score_twiffbench"]


def _mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def _avg(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else (a + b) / 2


def score_twiffbench(records: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Aggregate per-sample judge results (``cot_score``, ``answer_score`` or ``None``, ``judge_error``).

    A sample counts as failed when either score is ``None`` or ``judge_error`` is set. Returns ``cot``, ``answer``,
    ``avg`` (over judged samples; ``None`` if none), ``n``, ``n_judged``, ``n_failed``, ``n_clamped`` and
    ``failures_as_zero`` = ``{"cot", "answer", "avg"}`` over all samples with failures scored 0.
    """
    cots: list[float] = []
    answers: list[float] = []
    n = n_failed = n_clamped = 0
    for rec in records:
        n += 1
        cot, ans = rec.get("cot_score"), rec.get("answer_score")
        if cot is None or ans is None or rec.get("judge_error"):
            n_failed += 1
            continue
        (cot, ans), clamped = clamp_score_pair((cot, ans))
        if clamped or rec.get("clamped"):
            n_clamped += 1
        cots.append(cot)
        answers.append(ans)
    cot_mean, ans_mean = _mean(cots), _mean(answers)
    cot0 = sum(cots) / n if n else None
    ans0 = sum(answers) / n if n else None
    return {
        "scale": "0-5",
        "cot": cot_mean,
        "answer": ans_mean,
        "avg": _avg(cot_mean, ans_mean),
        "n": n,
        "n_judged": len(cots),
        "n_failed": n_failed,
        "n_clamped": n_clamped,
        "failures_as_zero": {"cot": cot0, "answer": ans0, "avg": _avg(cot0, ans0)},
    }
