"""Accuracy reward of LA-DAPO (docs/PAPER.md#rewards): a rule check first, the LLM judge only on rule failures.

Rule check (exact, model-free):

- multiple choice: the strict option letter of the response (last ``<answer>`` span, standalone letter only)
  equals the reference letter;
- free-form: the normalised last answer span equals the normalised reference, e.g. a world event sentence.

Both are :func:`fl1_core.answers.rule_correct`: :func:`~fl1_core.answers.is_correct` with ``rule="exact"`` (the one
correctness rule of the repository).

A response without an answer span is wrong (0) without asking anybody. Rule failures with an answer go to the yes/no
judge (``judge_on="free-form"``: only free-form rows; ``"all"``: MCQ rows too) through
:func:`fl1_core.judge.client.judge_many` (bounded retries, per-request timeout, strict yes/no parsing). A judge
failure is never scored as wrong: under ``judge_failure_policy="retry"`` the failed items are sent again (up to
``judge_retry_rounds`` more rounds); whatever still fails comes back as ``None`` and the caller drops its group.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fl1_core.answers import answer_span, rule_correct
from fl1_core.data.records import RLRecord
from fl1_core.judge.client import judge_many
from fl1_core.judge.config import JudgeConfig, YesNoJudgeItem

__all__ = ["AccuracyResult", "score_accuracy"]

log = logging.getLogger(__name__)


@dataclass
class AccuracyResult:
    """Per-response accuracy (1.0 / 0.0, ``None`` = the judge failed), where it came from, and judge counters."""

    correct: list[float | None]
    source: list[str]  # "rule", "judge", "no_answer", "judge_failed"
    judge_calls: int = 0  # items sent to the judge (first round)
    judge_requests: int = 0  # HTTP requests, retries included
    judge_failures: int = 0  # items whose judging failed in some round
    judge_unresolved: int = 0  # items still failed after all rounds
    judge_errors: dict[str, int] = field(default_factory=dict)
    # every item sent to the judge: {"id", "reference", "answer", "verdict"} (verdict None = the judge failed)
    judged: list[dict] = field(default_factory=list)


def score_accuracy(
    texts: Sequence[str],
    records: Sequence[RLRecord],
    *,
    judge_config: JudgeConfig | None = None,
    judge_on: str = "free-form",
    failure_policy: str = "drop_group",
    retry_rounds: int = 2,
    cache_dir: str | Path | None = None,
) -> AccuracyResult:
    """Accuracy of each ``texts[i]`` for ``records[i]``: rule check, then the judge on rule failures (if configured)."""
    if len(texts) != len(records):
        raise ValueError(f"texts ({len(texts)}) and records ({len(records)}) differ in length")
    correct: list[float | None] = []
    source: list[str] = []
    pending: list[int] = []
    for i, (text, rec) in enumerate(zip(texts, records)):
        if rule_correct(text, rec):
            correct.append(1.0)
            source.append("rule")
            continue
        correct.append(0.0)
        ans = answer_span(text)
        if not ans:
            source.append("no_answer")
            continue
        source.append("rule")
        if judge_config is not None and (judge_on == "all" or not rec.is_multiple_choice):
            pending.append(i)
    result = AccuracyResult(correct=correct, source=source, judge_calls=len(pending))
    if not pending:
        return result
    sent = list(pending)
    rounds = 1 + (max(0, int(retry_rounds)) if failure_policy == "retry" else 0)
    failed_ever: set[int] = set()
    for r in range(rounds):
        items = [
            YesNoJudgeItem(doc_id=f"{records[i].id}#{i}", question=records[i].question_text,
                           ground_truth=records[i].answer, model_answer=answer_span(texts[i]))
            for i in pending
        ]
        results, stats = judge_many(items, judge_config, cache_dir=cache_dir, progress=False, desc="rl judge")
        result.judge_requests += stats.requests_sent
        for kind, count in stats.errors.items():
            result.judge_errors[kind] = result.judge_errors.get(kind, 0) + count
        still: list[int] = []
        for i, res in zip(pending, results):
            if res.get("judge_error") is None and isinstance(res.get("verdict"), bool):
                correct[i] = 1.0 if res["verdict"] else 0.0
                source[i] = "judge"
            else:
                failed_ever.add(i)
                still.append(i)
        pending = still
        if not pending:
            break
        log.warning("judge round %d: %d item(s) failed%s", r + 1, len(pending),
                    "; retrying" if r + 1 < rounds else "; their groups will be dropped")
    for i in pending:
        correct[i] = None
        source[i] = "judge_failed"
    result.judge_failures = len(failed_ever)
    result.judge_unresolved = len(pending)
    result.judged = [{"id": records[i].id, "reference": records[i].answer, "answer": answer_span(texts[i]),
                      "verdict": None if correct[i] is None else correct[i] == 1.0} for i in sent]
    return result
