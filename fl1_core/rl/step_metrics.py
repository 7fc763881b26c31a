"""The metrics row of one RL step (``metrics.jsonl``): rewards, sampling, rollout lengths, the judge's counters, the
update's losses and timings, before they are reduced across processes.

Reward means are over the trained responses (kept groups) and, with the ``_all`` suffix, over every response drawn.
``rollout/truncated`` is the share of drawn responses cut by the token budget (no end-of-turn token; they score 0).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from fl1_core.rl.dynamic_sampling import SamplingResult
from fl1_core.rl.rollout import Response, RoundStats

#: fields summed across processes (the losses are normalised by global counts, so their process parts add up);
#: every other field is averaged
SUM_KEYS = ("judge/calls", "judge/requests", "judge/failures", "judge/unresolved", "sampling/dropped_groups",
            "sampling/drawn_groups", "sampling/kept_groups", "sampling/train_groups", "sampling/train_responses",
            "rollout/gen_tokens", "loss/tokens", "loss/total", "loss/policy", "loss/kl", "data/sft_anchor_rejected")
#: fields that depend on wall-clock time (everything else is reproducible on CPU)
TIMING_KEYS = ("time/step_s", "rollout/tokens_per_s", "time/rollout_s", "time/update_s")


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values)) if len(values) else 0.0


def step_row(step: int, sampling: SamplingResult, judge: RoundStats, update: dict[str, float], *, gen_tokens: int,
             eos_id: int, max_new_tokens: int, skipped_steps: int, lr: float,
             times: tuple[float, float, float]) -> dict[str, Any]:
    """This process's row of 0-based ``step`` (logged as ``step + 1``); ``times`` = (start, rollouts done, update
    done) from ``time.perf_counter``; ``update`` holds the update's loss/*, policy/* and optim/* means."""
    rows: list[Response] = [r for g in sampling.groups for r in g]
    drawn: list[Response] = [r for g in sampling.drawn for r in g]
    t0, t1, t2 = times
    return {
        "step": step + 1,
        "reward/acc": _mean([float(r.acc or 0.0) for r in rows]),
        "reward/fmt": _mean([r.fmt for r in rows]),
        "reward/r_ctr": _mean([r.r_ctr for r in rows]),
        "reward/div_cos2": _mean([r.div_cos2 for r in rows]),  # C̄² (the reward subtracts λ_div·C̄²)
        "reward/event": _mean([r.event for r in rows]),  # 0 unless w_event ≠ 0
        "reward/agree": _mean([r.agree for r in rows]),  # 0 unless w_agree ≠ 0
        "reward/overall": _mean([r.reward for r in rows]),
        "reward/acc_all": _mean([float(r.acc or 0.0) for r in drawn]),
        "reward/fmt_all": _mean([r.fmt for r in drawn]),
        "reward/overall_all": _mean([r.reward for r in drawn]),
        "sampling/kept_group_frac": sampling.kept_fraction,
        "sampling/refill_rounds": sampling.rounds - 1,
        "sampling/fallback": float(sampling.fallback),
        "sampling/short_batch": float(sampling.short),
        "sampling/drawn_groups": sampling.drawn_groups,
        "sampling/kept_groups": sampling.kept_groups,
        "sampling/train_groups": len(sampling.groups),
        "sampling/train_responses": len(rows),
        "sampling/dropped_groups": sampling.dropped_groups,
        "rollout/response_len": _mean([float(r.length) for r in drawn]),
        "rollout/truncated": _mean([float(int(r.sequence[-1]) != eos_id) for r in drawn]),
        "rollout/max_new_tokens": max_new_tokens,
        "rollout/latent_spans": _mean([float(len(r.span_counts)) for r in drawn]),
        "rollout/latents_per_response": _mean([float(r.latents.shape[0]) for r in drawn]),
        "rollout/gen_tokens": gen_tokens,
        "judge/calls": judge.judge_calls,
        "judge/requests": judge.judge_requests,
        "judge/failures": judge.judge_failures,
        "judge/unresolved": judge.judge_unresolved,
        **update,
        "optim/skipped_steps": skipped_steps,
        "optim/lr": lr,
        "time/rollout_s": t1 - t0,
        "time/update_s": t2 - t1,
        "time/step_s": t2 - t0,
    }
