"""Rewards of LA-DAPO (docs/PAPER.md#rewards) as pure functions over Python lists, numpy arrays and torch tensors.

overall = w_acc·acc + w_fmt·fmt + λ_ctr·R_ctr − λ_div·C̄² − w_len·length_penalty     (w_acc = 0.9, w_fmt = 0.1,
w_len = 0.001; the release's length penalty is always 0), with acc ∈ {1, 0, −1}: −1 when the repetition score of the
response exceeds 0.5 (applied after judging, :func:`accuracy_with_repetition`).

Accuracy itself (the rule of :mod:`fl1_core.answers`, then the LLM judge) lives in :mod:`fl1_core.rl.accuracy`; this
module holds the format and repetition checks, the latent rewards R_ctr and R_div, and their combination.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from fl1_core.tokens import (
    ANSWER_CLOSE,
    ANSWER_OPEN,
    ENDOFTEXT,
    IM_END,
    LATENT_END,
    LATENT_START,
    LATENT_TOKEN,
    LATENT_TOKENS,
    REASON_CLOSE,
    REASON_OPEN,
    strip_latent_tokens,
)

__all__ = [
    "format_reward",
    "repetition_score",
    "ngram_repeat_rate",
    "repeated_block_ratio",
    "duplicate_line_rate",
    "latent_similarity",
    "outcome_contrastive_reward",
    "temporal_diversity_cos2",
    "accuracy_with_repetition",
    "combine_rewards",
]

LatentLike = torch.Tensor | np.ndarray | None

# --------------------------------------------------------------------------------------------------------------------
# Format
# --------------------------------------------------------------------------------------------------------------------

_TAGS = (LATENT_START, LATENT_TOKEN, LATENT_END, REASON_OPEN, REASON_CLOSE, ANSWER_OPEN, ANSWER_CLOSE)
_END_TOKENS = (IM_END, ENDOFTEXT)
_LATENT_SPAN_RE = re.compile(
    re.escape(LATENT_START) + r"((?:\s|" + re.escape(LATENT_TOKEN) + r")*)" + re.escape(LATENT_END)
)
_REASON_RE = re.compile(re.escape(REASON_OPEN) + r"(.*?)" + re.escape(REASON_CLOSE), re.DOTALL)
_ANSWER_RE = re.compile(re.escape(ANSWER_OPEN) + r"(.*?)" + re.escape(ANSWER_CLOSE), re.DOTALL)
_SEQUENCE_RE = re.compile(r"R?(?:LR)+A")


def _text_content_ok(content: str) -> bool:
    return bool(content.strip()) and not any(tag in content for tag in _TAGS)


def format_reward(text: str) -> float:
    """1.0 iff ``text`` is a well-formed interleaved response, else 0.0 (docs/PAPER.md#rewards "fmt").

    What counts, exactly:

    1. Normalisation: all whitespace runs become one space, the ends are stripped, then any number of trailing
       ``<|im_end|>`` / ``<|endoftext|>`` tokens (with whitespace between them) are removed.
    2. The normalised text must consist only of the following elements, optionally separated by whitespace and with
       nothing else before, between or after them:

       - L = ``<|latent_start|>`` + one or more ``<|latent|>`` (whitespace allowed between them) + ``<|latent_end|>``;
       - R = ``<reason>`` + non-blank text + ``</reason>``;
       - A = ``<answer>`` + non-blank text + ``</answer>``.

       Text inside R and A must not contain any of the tags ``<reason>``, ``</reason>``, ``<answer>``, ``</answer>``,
       ``<|latent_start|>``, ``<|latent|>``, ``<|latent_end|>`` (no nesting, no stray latent tokens).
    3. The element sequence must be ``(L R)+ A`` or ``R (L R)+ A``: strictly alternating, at least one latent span,
       every latent span followed by a reason, exactly one answer, and the answer last.

    So ``<reason>…</reason><answer>…</answer>`` (no latent), ``L A`` (latent span not followed by a reason), an
    empty span ``<|latent_start|><|latent_end|>``, two consecutive reasons, or text after ``</answer>`` all give 0.
    """
    s = " ".join(text.split())
    changed = True
    while changed:
        changed = False
        for tok in _END_TOKENS:
            if s.endswith(tok):
                s = s[: -len(tok)].rstrip()
                changed = True
    kinds: list[str] = []
    pos, n = 0, len(s)
    while pos < n:
        if s[pos] == " ":
            pos += 1
            continue
        if s.startswith(LATENT_START, pos):
            m = _LATENT_SPAN_RE.match(s, pos)
            if m is None or LATENT_TOKEN not in m.group(1):
                return 0.0
            kinds.append("L")
        elif s.startswith(REASON_OPEN, pos):
            m = _REASON_RE.match(s, pos)
            if m is None or not _text_content_ok(m.group(1)):
                return 0.0
            kinds.append("R")
        elif s.startswith(ANSWER_OPEN, pos):
            m = _ANSWER_RE.match(s, pos)
            if m is None or not _text_content_ok(m.group(1)):
                return 0.0
            kinds.append("A")
        else:
            return 0.0
        pos = m.end()
    return 1.0 if _SEQUENCE_RE.fullmatch("".join(kinds)) else 0.0


# --------------------------------------------------------------------------------------------------------------------
# Repetition
# --------------------------------------------------------------------------------------------------------------------


def ngram_repeat_rate(tokens: Sequence[object], n: int = 4) -> float:
    """Fraction of the ``len(tokens) − n + 1`` n-grams that repeat an earlier n-gram: 1 − #distinct / #n-grams.

    0 when there are no n-grams (fewer than n tokens)."""
    total = len(tokens) - n + 1
    if total <= 0:
        return 0.0
    grams = {tuple(tokens[i : i + n]) for i in range(total)}
    return 1.0 - len(grams) / total


def repeated_block_ratio(tokens: Sequence[object], window: int) -> float:
    """Longest repeated-block ratio for one window size w.

    Block i = ``tokens[i:i+w]``. Block i is *repeated* when an identical block starts at an earlier position j < i
    (overlap allowed, so a loop with period < w counts). The repeated region is the union of the token ranges
    [i, i+w) of all repeated blocks; the ratio is the length of its longest contiguous run divided by len(tokens).
    0 when there are fewer than w tokens.
    """
    total = len(tokens)
    if window <= 0 or total < window:
        return 0.0
    seen: set[tuple[object, ...]] = set()
    covered_until = -1  # end (exclusive) of the current covered run
    run_start = 0
    longest = 0
    for i in range(total - window + 1):
        block = tuple(tokens[i : i + window])
        if block in seen:
            if i > covered_until:  # a new run begins
                run_start = i
            covered_until = max(covered_until, i + window)
            longest = max(longest, covered_until - run_start)
        else:
            seen.add(block)
    return longest / total


def duplicate_line_rate(text: str, min_chars: int = 10) -> float:
    """Among lines longer than ``min_chars`` characters after stripping, the fraction that duplicate an earlier one:
    1 − #distinct / #lines. 0 when there is no such line."""
    lines = [ln.strip() for ln in text.splitlines()]
    lines = [ln for ln in lines if len(ln) > min_chars]
    if not lines:
        return 0.0
    return 1.0 - len(set(lines)) / len(lines)


def repetition_score(
    text: str,
    tokens: Sequence[object] | None = None,
    *,
    windows: tuple[int, ...] = (50, 25),
    min_block_tokens: int = 100,
    strip_latents: bool = True,
) -> float:
    """Repetition score in [0, 1] (docs/PAPER.md#rewards): the max of three components.

    - 4-gram repeat rate: :func:`ngram_repeat_rate` (n = 4) over the tokens;
    - longest repeated-block ratio: max over w ∈ ``windows`` = (50, 25) of :func:`repeated_block_ratio`, only when
      there are ≥ ``min_block_tokens`` = 100 tokens (else 0);
    - duplicate-line rate: :func:`duplicate_line_rate` over lines of ``text`` longer than 10 characters.

    Tokens: ``text.split()`` (whitespace tokens) unless ``tokens`` is given (any hashable items, e.g. token ids).
    With ``strip_latents`` (default) the latent tokens are removed first — from ``text`` before splitting, and
    items equal to a latent-token string from a given ``tokens`` — because forced latent runs are not sampled text.
    A score > 0.5 turns the accuracy reward into −1 (:func:`accuracy_with_repetition`).
    """
    if strip_latents:
        text = strip_latent_tokens(text)
    if tokens is None:
        toks: Sequence[object] = text.split()
    else:
        toks = [t for t in tokens if not (strip_latents and isinstance(t, str) and t in LATENT_TOKENS)]
    score = ngram_repeat_rate(toks, 4)
    if len(toks) >= min_block_tokens:
        for w in windows:
            score = max(score, repeated_block_ratio(toks, w))
    return max(score, duplicate_line_rate(text))


# --------------------------------------------------------------------------------------------------------------------
# Latent rewards
# --------------------------------------------------------------------------------------------------------------------


def _latent_rows(x: LatentLike) -> torch.Tensor | None:
    """[L, H] float64 tensor (a 1-D input is one row), or None for None / zero rows."""
    if x is None:
        return None
    t = torch.as_tensor(x).detach().to(device="cpu", dtype=torch.float64)
    if t.dim() == 1:
        t = t.unsqueeze(0)
    if t.dim() != 2:
        raise ValueError(f"latents must be [L, H], got shape {tuple(t.shape)}")
    if t.shape[0] == 0:
        return None
    return t


def _pairwise_sim(rows: list[torch.Tensor]) -> torch.Tensor:
    """sim matrix [n, n] of :func:`latent_similarity` for non-empty [L_i, H] latents, computed in one batch."""
    hidden = {r.shape[1] for r in rows}
    if len(hidden) != 1:
        raise ValueError(f"latents of one group must share the hidden size, got {sorted(hidden)}")
    lengths = torch.tensor([r.shape[0] for r in rows])
    padded = torch.nn.utils.rnn.pad_sequence([F.normalize(r, dim=-1) for r in rows], batch_first=True)  # [n, Lmax, H]
    cos = torch.einsum("ith,jth->ijt", padded, padded)  # [n, n, Lmax]
    min_len = torch.minimum(lengths[:, None], lengths[None, :])  # [n, n]
    steps = torch.arange(padded.shape[1])
    aligned = (steps[None, None, :] < min_len[:, :, None]).to(torch.float64)
    return (((1.0 + cos) / 2.0) * aligned).sum(-1) / min_len.to(torch.float64)


def latent_similarity(a: LatentLike, b: LatentLike) -> float:
    """sim(a, b) = (1/T) Σ_{t<T} (1 + cos(a_t, b_t)) / 2,  T = min(len a, len b), rows L2-normalised.

    In [0, 1]; 1 for identical latents, 0.5 for orthogonal, 0 for opposite. A zero row normalises to the zero
    vector (cos = 0, term 0.5). Raises ValueError when either is None/empty.
    """
    ra, rb = _latent_rows(a), _latent_rows(b)
    if ra is None or rb is None:
        raise ValueError("latent_similarity needs two non-empty latent arrays")
    return float(_pairwise_sim([ra, rb])[0, 1])


def outcome_contrastive_reward(
    latents: Sequence[LatentLike],
    correct: Sequence[object],
    group_ids: Sequence[int],
    tau: float = 0.5,
) -> list[float]:
    """Outcome-contrastive latent reward R_ctr (InfoNCE within a prompt's group, docs/PAPER.md#rewards).

    ``latents[i]``: all recorded latent vectors of response i concatenated, [L_i, H] (tensor or array), or None /
    empty. ``correct[i]``: truthy or an accuracy value; a response is correct iff ``float(correct[i]) > 0`` (so the
    repetition-penalised −1 counts as wrong). sim(a, b) is :func:`latent_similarity`.

    Within a group, only the responses *with* latents take part (as i, as positives and as negatives); a response
    without latents gets 0, and if fewer than 2 responses of a group have latents, all of the group get 0. For a
    response i of such a group, with C = its correct responses and W = its wrong responses:

    - P_i = C \\ {i}, or {i} when i is the only correct response (then s⁺ = sim(i, i) = 1);
      s⁺ = max_{p ∈ P_i} sim(i, p);
    - N = W — *all* wrong responses, including i itself when i is wrong (contributing sim(i, i) = 1);
    - mixed group (C and W non-empty):  R_i = e^{s⁺/τ} / (e^{s⁺/τ} + Σ_{n∈N} e^{sim(i,n)/τ});
    - all wrong:                        R_i = 1 / (1 + Σ_{n∈N} e^{sim(i,n)/τ});
    - all correct:                      R_i = s⁺ / τ.

    Check values (τ = 0.5), which fix this convention: {A correct, B = A wrong, C = −A wrong}:
    R_A = e²/(e² + e² + e⁰) ≈ 0.468 (P = {A}, N = {B, C});  R_B = e²/(e² + e² + e⁰) ≈ 0.468 (P = {A}, N = {B, C}
    with sim(B, B) = 1);  R_C = e⁰/(e⁰ + e⁰ + e²) ≈ 0.107 (s⁺ = sim(C, A) = 0, N = {B, C}: sim(C, B) = 0,
    sim(C, C) = 1).  Identical all-correct pair: 1/0.5 = 2.0.  Identical all-wrong pair: 1/(1 + 2e²) ≈ 0.0634.

    Sums of exponentials are evaluated in log space (logsumexp), so small τ does not overflow. Returns a list of
    Python floats, one per response.
    """
    n = len(latents)
    if len(correct) != n or len(group_ids) != n:
        raise ValueError(f"latents ({n}), correct ({len(correct)}) and group_ids ({len(group_ids)}) differ in length")
    if tau <= 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    rows = [_latent_rows(x) for x in latents]
    is_correct = [float(c) > 0 for c in correct]
    out = [0.0] * n
    members: dict[int, list[int]] = {}
    for i, g in enumerate(group_ids):
        if rows[i] is not None:
            members.setdefault(int(g), []).append(i)
    for idx in members.values():
        if len(idx) < 2:
            continue
        sim = _pairwise_sim([rows[i] for i in idx])  # type: ignore[misc]
        corr = torch.tensor([is_correct[i] for i in idx])
        wrong = ~corr
        n_correct = int(corr.sum())
        logits = sim / tau
        for a, i in enumerate(idx):
            if corr[a] and n_correct == 1:
                s_pos = sim[a, a]
            elif n_correct > 0:
                pos = corr.clone()
                pos[a] = False
                s_pos = sim[a][pos].max()
            else:
                s_pos = None
            neg_logits = logits[a][wrong]
            if n_correct == len(idx):  # all correct
                value = s_pos / tau
            elif n_correct == 0:  # all wrong
                value = torch.exp(-torch.logsumexp(torch.cat([torch.zeros(1, dtype=torch.float64), neg_logits]), 0))
            else:  # mixed
                pos_logit = (s_pos / tau).reshape(1)
                value = torch.exp(pos_logit[0] - torch.logsumexp(torch.cat([pos_logit, neg_logits]), 0))
            out[i] = float(value)
    return out


def temporal_diversity_cos2(latents: LatentLike, span_counts: Sequence[int], eps: float = 1e-8) -> float:
    """Mean squared cosine between the mean latents of adjacent spans (R_div's C̄², docs/PAPER.md#rewards).

    Split the [L, H] latents into consecutive spans of ``span_counts`` rows (Σ span_counts must equal L);
    b̄_k = mean of span k's rows (unnormalised); C̄² = mean over k of cos²(b̄_k, b̄_{k+1}) over adjacent pairs
    where both ‖b̄_k‖ and ‖b̄_{k+1}‖ exceed ``eps`` (an empty span counts as a zero mean, so its pairs are skipped).
    0 with fewer than 2 spans, no latents, or no valid pair. 1 for identical (or parallel/antiparallel) span means,
    0 for orthogonal ones. The reward adds −λ_div·C̄².
    """
    counts = [int(c) for c in span_counts]
    if any(c < 0 for c in counts):
        raise ValueError(f"span_counts must be >= 0, got {counts}")
    rows = _latent_rows(latents)
    total = 0 if rows is None else rows.shape[0]
    if sum(counts) != total:
        raise ValueError(f"span_counts sum to {sum(counts)} but there are {total} latent vectors")
    if len(counts) < 2 or rows is None:
        return 0.0
    means = []
    for chunk, c in zip(torch.split(rows, counts, dim=0), counts):
        means.append(chunk.mean(0) if c > 0 else torch.zeros(rows.shape[1], dtype=torch.float64))
    cos2 = []
    for a, b in zip(means[:-1], means[1:]):
        na, nb = torch.linalg.vector_norm(a), torch.linalg.vector_norm(b)
        if na <= eps or nb <= eps:
            continue
        cos2.append(float((torch.dot(a, b) / (na * nb)) ** 2))
    return sum(cos2) / len(cos2) if cos2 else 0.0


# --------------------------------------------------------------------------------------------------------------------
# Combination
# --------------------------------------------------------------------------------------------------------------------


def accuracy_with_repetition(acc: float, repetition: float, threshold: float = 0.5) -> float:
    """acc' = −1 if repetition > threshold else acc (applied after judging)."""
    return -1.0 if repetition > threshold else float(acc)


def combine_rewards(
    acc: float | np.ndarray | Sequence[float],
    fmt: float | np.ndarray | Sequence[float],
    r_ctr: float | np.ndarray | Sequence[float],
    div_cos2: float | np.ndarray | Sequence[float],
    *,
    w_acc: float = 0.9,
    w_fmt: float = 0.1,
    lambda_ctr: float = 1.0,
    lambda_div: float = 0.0,
    length_penalty: float | np.ndarray | Sequence[float] = 0.0,
    w_len: float = 0.001,
    event: float | np.ndarray | Sequence[float] = 0.0,
    w_event: float = 0.0,
    agree: float | np.ndarray | Sequence[float] = 0.0,
    w_agree: float = 0.0,
) -> float | np.ndarray:
    """overall = w_acc·acc + w_fmt·fmt + λ_ctr·R_ctr − λ_div·C̄² − w_len·length_penalty + w_event·event
    + w_agree·agree.

    ``event`` (the workbook's optional event-consistency term, not the paper's; ``w_event = 0`` by default) is 1 when
    an MCQ response's final thought names the right option (:func:`fl1_core.answers.concluded_option`). ``agree``
    (also the workbook's, ``w_agree = 0`` by default) is 1 when it names the option of the response's own answer
    letter, right or wrong: it ties the conclusion to the letter without rewarding the right event.

    Defaults are the release weights (λ_ctr = 1, λ_div = 0; the named ``release`` and ``corrected`` weights live in
    :mod:`fl1_core.rl.algorithms`). Scalars give a Python float; lists/arrays are broadcast (numpy) and give a
    float64 array.
    """
    parts = [np.asarray(v, dtype=np.float64) for v in (acc, fmt, r_ctr, div_cos2, length_penalty, event, agree)]
    a, f, c, d, lp, e, g = parts
    out = w_acc * a + w_fmt * f + lambda_ctr * c - lambda_div * d - w_len * lp + w_event * e + w_agree * g
    return float(out) if out.ndim == 0 else out

