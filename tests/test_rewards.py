"""Format, repetition, R_ctr, R_div and reward combination (docs/PAPER.md#rewards)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fl1_core.rewards import (
    accuracy_with_repetition,
    combine_rewards,
    duplicate_line_rate,
    format_reward,
    latent_similarity,
    ngram_repeat_rate,
    outcome_contrastive_reward,
    repeated_block_ratio,
    repetition_score,
    temporal_diversity_cos2,
)

L = "<|latent_start|>" + "<|latent|>" * 4 + "<|latent_end|>"
R = "<reason>the ball keeps rolling</reason>"
R2 = "<reason>so it falls off</reason>"
A = "<answer>B</answer>"

FORMAT_CASES = [
    (L + R + A, 1.0),
    (R + "\n" + L + "\n" + R2 + "\n" + A, 1.0),  # the SFT layout
    (R + L + R2 + L + R + A, 1.0),
    (L + R + L + R2 + A, 1.0),
    ("  " + L + "  \n\n " + R + "\t" + A + " <|im_end|>", 1.0),  # whitespace + trailing end token
    (L + R + A + "<|im_end|><|endoftext|>", 1.0),
    ("<|latent_start|> <|latent|> <|latent|>\n<|latent_end|>" + R + A, 1.0),  # whitespace inside the span
    (R + A, 0.0),  # no latent span
    (A, 0.0),
    (L + A, 0.0),  # span not followed by a reason
    (R + L + A, 0.0),
    (L + L + R + A, 0.0),  # not alternating
    (L + R + R2 + A, 0.0),
    (R + R2 + L + R + A, 0.0),
    (L + R, 0.0),  # no answer
    (L + R + A + A, 0.0),
    (L + R + A + " and more", 0.0),  # text after the answer
    ("Sure! " + L + R + A, 0.0),  # stray text before
    (L + " hmm " + R + A, 0.0),  # stray text between
    ("<|latent_start|><|latent_end|>" + R + A, 0.0),  # empty span
    ("<|latent_start|><|latent|>x<|latent|><|latent_end|>" + R + A, 0.0),  # text inside a span
    ("<|latent_start|><|latent|>" + R + A, 0.0),  # unclosed span
    (L + "<reason>   </reason>" + A, 0.0),  # blank reason
    (L + R + "<answer> </answer>", 0.0),  # blank answer
    (L + "<reason>a <answer>B</answer></reason>" + A, 0.0),  # nested tag
    (L + "<reason>a<|latent|></reason>" + A, 0.0),  # stray latent token in a reason
    (L + R + "<answer>B", 0.0),  # unclosed answer
    (L + R + A + "<|im_end|> x", 0.0),
    ("", 0.0),
]


@pytest.mark.parametrize("text,expected", FORMAT_CASES)
def test_format_reward_table(text, expected):
    assert format_reward(text) == expected


# ---------------------------------------------------------------------------------------------------------------- rep


def test_repetition_components_on_crafted_texts():
    varied = " ".join(f"w{i}" for i in range(200))
    assert ngram_repeat_rate(varied.split()) == 0.0
    assert repetition_score(varied) == 0.0

    # 4-gram: "a b c d a b c d" → 5 four-grams, 4 distinct... (abcd, bcda, cdab, dabc, abcd) → 1 - 4/5
    assert ngram_repeat_rate("a b c d a b c d".split()) == pytest.approx(0.2)
    assert ngram_repeat_rate(["a", "b", "c"]) == 0.0

    # a 30-token loop repeated 10 times: everything after the first period is a repeat
    loop = [f"t{i}" for i in range(30)] * 10
    assert repeated_block_ratio(loop, 25) == pytest.approx(270 / 300)
    assert repeated_block_ratio(loop, 50) == pytest.approx(270 / 300)
    assert ngram_repeat_rate(loop) == pytest.approx(1 - 30 / 297)
    assert repetition_score(" ".join(loop)) == pytest.approx(270 / 300)

    # one 25-token block copied once inside 150 otherwise distinct tokens: block ratio 25/150, 4-grams 22/147
    block = [f"b{i}" for i in range(25)]
    toks = block + [f"u{i}" for i in range(100)] + block
    assert repeated_block_ratio(toks, 25) == pytest.approx(25 / 150)
    assert repeated_block_ratio(toks, 50) == 0.0
    assert repetition_score(" ".join(toks)) == pytest.approx(max(25 / 150, 22 / 147))


def test_block_ratio_needs_100_tokens():
    toks = [f"t{i}" for i in range(30)] * 3  # 90 tokens
    assert repeated_block_ratio(toks, 25) > 0.5
    # below 100 tokens only the 4-gram and line components count
    assert repetition_score(" ".join(toks)) == pytest.approx(ngram_repeat_rate(toks))


def test_duplicate_line_rate():
    text = "this is a long line\nthis is a long line\nshort\nshort\nanother long line here\n"
    assert duplicate_line_rate(text) == pytest.approx(1 - 2 / 3)
    assert duplicate_line_rate("short\nshort\nshort") == 0.0  # lines of ≤ 10 chars are ignored
    lines = "\n".join(["the same sentence again"] * 4 + [f"unique line number {i}" for i in range(4)])
    assert repetition_score(lines) == pytest.approx(3 / 8)


def test_repetition_given_tokens_and_latents_ignored():
    assert repetition_score("", tokens=[1, 2, 3, 4, 1, 2, 3, 4]) == pytest.approx(0.2)
    text = "<|latent_start|>" + "<|latent|> " * 64 + "<|latent_end|> <reason>a b c d e f</reason>"
    assert repetition_score(text) == 0.0
    assert repetition_score(text, strip_latents=False) > 0.5
    assert repetition_score("", tokens=["<|latent|>"] * 10) == 0.0


def test_accuracy_with_repetition():
    assert accuracy_with_repetition(1.0, 0.6) == -1.0
    assert accuracy_with_repetition(0.0, 0.9) == -1.0
    assert accuracy_with_repetition(1.0, 0.5) == 1.0  # strict
    assert accuracy_with_repetition(0.0, 0.1) == 0.0
    assert accuracy_with_repetition(1.0, 0.3, threshold=0.2) == -1.0


# ---------------------------------------------------------------------------------------------------------------- ctr


def test_latent_similarity_aligned_steps():
    a = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    assert latent_similarity(a, a) == pytest.approx(1.0)
    assert latent_similarity(a, -a) == pytest.approx(0.0)
    assert latent_similarity(a, a[:1] * 5) == pytest.approx(1.0)  # only t < min(len) = 1
    assert latent_similarity(a, torch.tensor([[1.0, 0.0], [1.0, 0.0]])) == pytest.approx((1.0 + 0.5) / 2)
    assert latent_similarity(np.array([1.0, 0.0]), np.array([0.0, 3.0])) == pytest.approx(0.5)


def test_r_ctr_spec_check_values():
    torch.manual_seed(0)
    a = torch.randn(6, 16)
    r = outcome_contrastive_reward([a, a.clone(), -a], [1, 0, 0], [0, 0, 0], tau=0.5)
    e2 = math.e**2
    assert r[0] == pytest.approx(e2 / (2 * e2 + 1), abs=1e-9)
    assert r[1] == pytest.approx(e2 / (2 * e2 + 1), abs=1e-9)
    assert r[2] == pytest.approx(1 / (2 + e2), abs=1e-9)
    assert round(r[0], 3) == 0.468 and round(r[1], 3) == 0.468 and round(r[2], 3) == 0.107

    assert outcome_contrastive_reward([a, a], [True, True], [3, 3]) == pytest.approx([2.0, 2.0])
    wrong = outcome_contrastive_reward([a, a], [0, 0], [3, 3])
    assert wrong == pytest.approx([1 / (1 + 2 * e2)] * 2)
    assert round(wrong[0], 4) == 0.0634


def test_r_ctr_positives_exclude_self_when_other_correct_exist():
    x, y = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    # A = x correct, A' = y correct (orthogonal: sim 0.5), B = -x wrong (sim(A, B) = 0)
    r = outcome_contrastive_reward([x, y, -x], [1, 1, -1], [0, 0, 0], tau=0.5)
    assert r[0] == pytest.approx(math.e / (math.e + 1))  # s⁺ = 0.5 → e¹/(e¹ + e⁰)
    assert r[1] == pytest.approx(math.e / (math.e + math.e))  # sim(A', B) = 0.5
    # B is wrong: s⁺ = max(sim(B, A), sim(B, A')) = 0.5, N = {B}: e¹/(e¹ + e²)
    assert r[2] == pytest.approx(math.e / (math.e + math.e**2))


def test_r_ctr_all_correct_uses_max_over_others_and_tau():
    x, y = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    r = outcome_contrastive_reward([x, y, x], [1, 1, 1], [0, 0, 0], tau=0.25)
    assert r == pytest.approx([1.0 / 0.25, 0.5 / 0.25, 1.0 / 0.25])


def test_r_ctr_missing_latents_small_groups_and_separate_groups():
    torch.manual_seed(1)
    a = torch.randn(3, 4)
    # group 9: only one response with latents → all 0; group 4: an identical all-correct pair → 2
    r = outcome_contrastive_reward([a, None, torch.zeros(0, 4), a, a, a], [1, 0, 1, 1, 1, 0], [9, 9, 4, 4, 4, 7])
    assert r[0] == 0.0 and r[1] == 0.0  # group 9
    assert r[2] == 0.0  # no latents
    assert r[3] == pytest.approx(2.0) and r[4] == pytest.approx(2.0)
    assert r[5] == 0.0  # group of size 1
    with pytest.raises(ValueError):
        outcome_contrastive_reward([a], [1, 0], [0, 0])


def test_r_ctr_small_tau_no_overflow():
    a = torch.randn(2, 3)
    r = outcome_contrastive_reward([a, a, -a], [1, 0, 0], [0, 0, 0], tau=1e-4)
    assert all(math.isfinite(v) for v in r)
    assert r[0] == pytest.approx(0.5)


# ---------------------------------------------------------------------------------------------------------------- div


def test_r_div_identical_orthogonal_and_few_spans():
    b = torch.tensor([[1.0, 2.0, 0.0], [3.0, 0.0, 1.0]])
    assert temporal_diversity_cos2(torch.cat([b, b, b]), [2, 2, 2]) == pytest.approx(1.0)
    e = torch.eye(3)
    assert temporal_diversity_cos2(e, [1, 1, 1]) == pytest.approx(0.0)
    assert temporal_diversity_cos2(e, [3]) == 0.0
    assert temporal_diversity_cos2(None, []) == 0.0
    # span means (1, 0) and (1, 1): cos² = 1/2; then (1, 1) and (0, 1): 1/2 → mean 0.5
    x = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    assert temporal_diversity_cos2(x, [1, 1, 1]) == pytest.approx(0.5)


def test_r_div_skips_zero_norm_pairs_and_checks_counts():
    x = np.array([[1.0, 0.0], [1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]])
    # spans: mean (1,0) | mean (0,0) (skipped both sides) | (0,1) → no valid pair → 0
    assert temporal_diversity_cos2(x, [1, 2, 1]) == 0.0
    # spans: (1,0) | (1,0) | zero | (0,1) → only the first pair counts → 1
    assert temporal_diversity_cos2(np.array([[1.0, 0], [1, 0], [0, 1]]), [1, 1, 0, 1]) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        temporal_diversity_cos2(x, [1, 1])


# ---------------------------------------------------------------------------------------------------------------- combo


def test_combine_rewards_and_weights():
    assert combine_rewards(1.0, 1.0, 0.5, 0.4) == pytest.approx(0.9 + 0.1 + 0.5)
    assert combine_rewards(1.0, 1.0, 0.5, 0.4, lambda_ctr=0.2, lambda_div=0.1, length_penalty=10) == pytest.approx(
        0.9 + 0.1 + 0.1 - 0.04 - 0.01
    )
    vec = combine_rewards([1, 0, -1], [1, 0, 1], [0.0, 0.2, 0.0], [0.0, 0.0, 1.0], lambda_div=0.5)
    assert np.allclose(vec, [1.0, 0.2, -0.9 + 0.1 - 0.5])
