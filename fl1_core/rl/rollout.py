"""Rollouts, rewards and dynamic sampling with refill rounds (docs/PAPER.md#la-dapo).

One *round* draws ``prompts_per_step`` prompts, samples ``group_size`` responses per prompt with
:func:`generate_with_latents` (temperature 0.9, top-p 0.99, loose latent cap), recording the fed latent vectors and
per-span counts, and scores every response:

    acc   ∈ {1, 0}  rule check, then the judge on rule failures (:mod:`fl1_core.rl.accuracy`);
    acc  ← −1       when repetition_score(text) > 0.5  (after judging);
    fmt   ∈ {0, 1}  :func:`format_reward`;
    R_ctr           :func:`outcome_contrastive_reward` within the group (la-dapo);
    C̄²              :func:`temporal_diversity_cos2` of the response's spans (la-dapo);
    event ∈ {0, 1}  the MCQ final thought names the right option (only when w_event ≠ 0; not in the paper);
    agree ∈ {0, 1}  the MCQ final thought names the option of the response's own answer letter, right or wrong
                    (only when w_agree ≠ 0; not in the paper);
    overall = w_acc·acc + w_fmt·fmt + λ_ctr·R_ctr − λ_div·C̄² + w_event·event + w_agree·agree.

A group with a response whose judging failed is *dropped* (never scored as wrong).

Dynamic sampling (filter, refill rounds, fallback) lives in :mod:`fl1_core.rl.dynamic_sampling`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from fl1_core.config import LatentConfig
from fl1_core.data.records import RLRecord
from fl1_core.data.prompt_inputs import PromptTensors, pad_prompts
from fl1_core.decoding import LatentGeneration, generate_with_latents
from fl1_core.judge.config import JudgeConfig
from fl1_core.rewards import (
    accuracy_with_repetition,
    combine_rewards,
    format_reward,
    outcome_contrastive_reward,
    repetition_score,
    temporal_diversity_cos2,
)
from fl1_core.answers import concluded_letter, extract_answer_letter
from fl1_core.rl.accuracy import score_accuracy

__all__ = [
    "Response",
    "RoundStats",
    "collate_responses",
    "generate_group_round",
    "score_groups",
]

log = logging.getLogger(__name__)



@dataclass
class Response:
    """One sampled response with what replay needs (tokens, masks, latents) and its rewards."""

    group: int
    prompt: PromptTensors
    sequence: torch.Tensor  # [L] emitted ids (EOS included)
    latent_mask: torch.Tensor  # [L] bool
    forced_mask: torch.Tensor  # [L] bool
    logprobs: torch.Tensor  # [L] rollout log-probs (log-softmax(logits / T) of the emitted token)
    latents: torch.Tensor  # [n_latents, H] fp32
    span_counts: list[int]
    text: str
    acc: float | None = None  # after the repetition penalty; None = judge failed
    acc_source: str = ""
    fmt: float = 0.0
    repetition: float = 0.0
    r_ctr: float = 0.0
    div_cos2: float = 0.0
    event: float = 0.0  # 1 when an MCQ final thought names the answer (scored only when w_event ≠ 0)
    agree: float = 0.0  # 1 when an MCQ final thought names the response's own letter (scored only when w_agree ≠ 0)
    reward: float = 0.0

    @property
    def length(self) -> int:
        return int(self.sequence.shape[0])


@dataclass
class RoundStats:
    """Counters of scoring one round."""

    judge_calls: int = 0
    judge_requests: int = 0
    judge_failures: int = 0
    judge_unresolved: int = 0
    dropped_groups: int = 0
    judge_errors: dict[str, int] = field(default_factory=dict)
    judged: list[dict] = field(default_factory=list)  # the judge's verdicts (AccuracyResult.judged)

    def add(self, other: "RoundStats") -> None:
        self.judge_calls += other.judge_calls
        self.judge_requests += other.judge_requests
        self.judge_failures += other.judge_failures
        self.judge_unresolved += other.judge_unresolved
        self.dropped_groups += other.dropped_groups
        self.judged.extend(other.judged)
        for k, v in other.judge_errors.items():
            self.judge_errors[k] = self.judge_errors.get(k, 0) + v


# ------------------------------------------------------------------------------------------------------ tensors
def collate_responses(rows: Sequence[Response], pad_id: int) -> tuple[dict[str, torch.Tensor], LatentGeneration]:
    """Prompt inputs (left-padded) and a :class:`LatentGeneration` (right-padded) for :func:`replay`."""
    inputs = pad_prompts([r.prompt for r in rows], pad_id)
    width = max(1, max(r.length for r in rows))
    b = len(rows)
    seq = torch.full((b, width), pad_id, dtype=torch.long)
    lat = torch.zeros((b, width), dtype=torch.bool)
    forced = torch.zeros((b, width), dtype=torch.bool)
    logp = torch.zeros((b, width), dtype=torch.float32)
    for i, r in enumerate(rows):
        n = r.length
        seq[i, :n] = r.sequence
        lat[i, :n] = r.latent_mask
        forced[i, :n] = r.forced_mask
        logp[i, :n] = r.logprobs
    gen = LatentGeneration(
        sequences=seq,
        lengths=torch.tensor([r.length for r in rows], dtype=torch.long),
        texts=[r.text for r in rows],
        latents=[r.latents for r in rows],
        latent_mask=lat,
        span_counts=[list(r.span_counts) for r in rows],
        forced_mask=forced,
        logprobs=logp,
    )
    return inputs, gen


# ------------------------------------------------------------------------------------------------------ rollouts
def generate_group_round(
    model: Any,
    prompts: Sequence[PromptTensors],
    *,
    group_size: int,
    first_group_id: int,
    latent_config: LatentConfig,
    max_new_tokens: int,
    temperature: float,
    top_p: float,
    seed: int,
    pad_id: int,
    batch_rows: int | None = None,
    tokenizer: Any = None,
) -> list[list[Response]]:
    """Sample ``group_size`` responses for every prompt; returns one list of responses per prompt (a group).

    Rows are generated in chunks of ``batch_rows`` (default: all at once); the chunk holding global rows
    ``[k·c, (k+1)·c)`` (global row = ``first_group_id · group_size`` + local row) uses seed ``seed + k``, so with a
    rank-independent ``seed`` and chunks that do not straddle processes, P processes draw exactly the responses one
    process draws.
    ``generate_with_latents`` never samples the vision placeholders, so every response replays exactly.
    """
    rows = [p for p in prompts for _ in range(group_size)]
    chunk = batch_rows or len(rows)
    out: list[Response] = []
    for start in range(0, len(rows), chunk):
        k = (first_group_id * group_size + start) // chunk
        part = rows[start : start + chunk]
        # one prefill per distinct prompt of the chunk (rows of a prompt are consecutive), shared by its samples
        firsts = [i for i in range(len(part)) if (start + i) % group_size == 0 or i == 0]
        counts = [b - a for a, b in zip(firsts, firsts[1:] + [len(part)])]
        inputs = pad_prompts([part[i] for i in firsts], pad_id)
        gen = generate_with_latents(
            model,
            inputs,
            max_new_tokens=max_new_tokens,
            latent_config=latent_config,
            num_samples=counts,
            do_sample=True,
            temperature=temperature,
            top_p=top_p,
            seed=seed + k,
            tokenizer=tokenizer,
        )
        seqs = gen.sequences.cpu()
        for i, p in enumerate(part):
            n = int(gen.lengths[i])
            text, spans, latents = gen.texts[i], list(gen.span_counts[i]), gen.latents[i].float().cpu()
            g = (start + i) // group_size
            out.append(
                Response(
                    group=first_group_id + g,
                    prompt=p,
                    sequence=seqs[i, :n].clone(),
                    latent_mask=gen.latent_mask[i, :n].cpu(),
                    forced_mask=gen.forced_mask[i, :n].cpu(),
                    logprobs=gen.logprobs[i, :n].float().cpu(),
                    latents=latents,
                    span_counts=spans,
                    text=text,
                )
            )
    return [out[g * group_size : (g + 1) * group_size] for g in range(len(prompts))]


def event_correct(text: str, record: RLRecord) -> float:
    """1.0 when ``record`` is an MCQ and the response's final thought names its answer option
    (:func:`fl1_core.answers.concluded_letter`), else 0.0."""
    return float(record.is_multiple_choice and concluded_letter(text, record) == record.answer)


def conclusion_agrees(text: str, record: RLRecord) -> float:
    """1.0 when ``record`` is an MCQ and the response's final thought names the option of its own strict answer
    letter (:func:`fl1_core.answers.concluded_letter` = the answer letter, whether or not that letter is right),
    else 0.0."""
    if not record.is_multiple_choice:
        return 0.0
    letter = extract_answer_letter(text, mode="strict")
    return float(bool(letter) and concluded_letter(text, record) == letter)


def score_groups(
    groups: Sequence[Sequence[Response]],
    *,
    w_acc: float,
    w_fmt: float,
    lambda_ctr: float,
    lambda_div: float,
    tau: float,
    w_event: float = 0.0,
    w_agree: float = 0.0,
    repetition_threshold: float = 0.5,
    judge_config: JudgeConfig | None = None,
    judge_on: str = "free-form",
    failure_policy: str = "drop_group",
    retry_rounds: int = 2,
    cache_dir: str | None = None,
) -> RoundStats:
    """Fill in the rewards of every response in place (see the module docstring); return judge counters.

    R_ctr and C̄² are computed only when their weight is non-zero (else 0). A group containing a response whose
    judging failed gets ``acc = None`` on those responses and counts as dropped.
    """
    rows = [r for g in groups for r in g]
    stats = RoundStats()
    if not rows:
        return stats
    acc = score_accuracy(
        [r.text for r in rows],
        [r.prompt.record for r in rows],
        judge_config=judge_config,
        judge_on=judge_on,
        failure_policy=failure_policy,
        retry_rounds=retry_rounds,
        cache_dir=cache_dir,
    )
    stats.judge_calls, stats.judge_requests = acc.judge_calls, acc.judge_requests
    stats.judge_failures, stats.judge_unresolved = acc.judge_failures, acc.judge_unresolved
    stats.judge_errors = dict(acc.judge_errors)
    stats.judged = list(acc.judged)
    for r, a, src in zip(rows, acc.correct, acc.source):
        r.fmt = format_reward(r.text)
        r.repetition = repetition_score(r.text)
        r.acc = None if a is None else accuracy_with_repetition(a, r.repetition, repetition_threshold)
        r.acc_source = src
    if lambda_ctr != 0.0:
        ctr = outcome_contrastive_reward(
            [r.latents for r in rows], [(r.acc or 0.0) for r in rows], [r.group for r in rows], tau=tau
        )
        for r, c in zip(rows, ctr):
            r.r_ctr = float(c)
    if lambda_div != 0.0:
        for r in rows:
            r.div_cos2 = temporal_diversity_cos2(r.latents, r.span_counts)
    if w_event != 0.0:
        for r in rows:
            r.event = event_correct(r.text, r.prompt.record)
    if w_agree != 0.0:
        for r in rows:
            r.agree = conclusion_agrees(r.text, r.prompt.record)
    for r in rows:
        r.reward = float(
            combine_rewards(r.acc or 0.0, r.fmt, r.r_ctr, r.div_cos2, w_acc=w_acc, w_fmt=w_fmt,
                            lambda_ctr=lambda_ctr, lambda_div=lambda_div, event=r.event, w_event=w_event,
                            agree=r.agree, w_agree=w_agree)
        )
    stats.dropped_groups = sum(any(r.acc is None for r in g) for g in groups)
    return stats


