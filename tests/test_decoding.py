"""Interleaved latent decoding (docs/PAPER.md#decoding) and teacher-forced replay."""

from __future__ import annotations

import pytest
import torch

from fl1_core import tokens as T
from fl1_core.data.collator import PromptExample
from fl1_core.data.prompt_inputs import build_prompt_inputs
from fl1_core.decoding import generate_with_latents, replay
from fl1_core.model import FutureL1Model

from conftest import random_image

QUESTIONS = ["what happens next?", "the red ball moves right. what does it hit?", "which light turns on?", "next?"]


@pytest.fixture
def text_inputs(tiny):
    _, processor = tiny
    return build_prompt_inputs(processor, [PromptExample(str(i), q) for i, q in enumerate(QUESTIONS)], "plain")


@pytest.fixture
def vision_inputs(tiny, rng):
    _, processor = tiny
    examples = [
        PromptExample("a", QUESTIONS[0], question_images=[random_image(rng), random_image(rng)]),
        PromptExample("b", QUESTIONS[1], question_images=[random_image(rng)]),
        PromptExample("c", QUESTIONS[2], question_images=[random_image(rng), random_image(rng), random_image(rng)]),
    ]
    return build_prompt_inputs(processor, examples)


@pytest.mark.parametrize("which", ["text_inputs", "vision_inputs"])
def test_greedy_without_latents_equals_hf_generate(tiny, request, which):
    model, _ = tiny
    inputs = request.getfixturevalue(which)
    assert inputs["attention_mask"].min() == 0, "prompts must have different lengths (left padding)"
    n = 24
    vision_placeholders = [model.config.image_token_id, model.config.video_token_id]  # never sampled by either
    ref = model.base.generate(**inputs, max_new_tokens=n, do_sample=False, suppress_tokens=vision_placeholders)
    ref = ref[:, inputs["input_ids"].shape[1] :]
    ours = generate_with_latents(model, inputs, max_new_tokens=n)
    assert not (ours.sequences == model.latent_config.latent_start_id).any(), "test needs a latent-free decode"
    width = ours.sequences.shape[1]
    assert torch.equal(ours.sequences, ref[:, :width])
    assert all(v.numel() == 0 for v in ours.latents) and ours.span_counts == [[]] * len(ours.texts)


def _latent_decode(model, inputs, **cfg_changes):
    cfg = model.latent_config.replace(force_initial_latent=True, **cfg_changes)
    return generate_with_latents(
        model, inputs, max_new_tokens=40, latent_config=cfg, do_sample=True, temperature=0.9, top_p=0.99,
        seed=7, return_logits=True,
    )


def test_replay_reproduces_the_decoding_logits_inside_and_after_spans(tiny, vision_inputs):
    model, _ = tiny
    gen = _latent_decode(model, vision_inputs, budget_mode="fixed", max_latent_token=6)
    mask = gen.valid_mask
    assert gen.latent_mask.any() and (mask & ~gen.latent_mask).any()
    with torch.no_grad():
        rep = replay(model, vision_inputs, gen, temperature=0.9, return_logits=True)
    finite = torch.isfinite(gen.step_logits)  # the suppressed vision placeholders are -inf in both
    assert torch.equal(finite, torch.isfinite(rep.logits))
    diff = (rep.logits - gen.step_logits).where(finite, torch.zeros(())).abs().amax(-1)[mask]
    assert diff.max() <= 1e-4, diff.max()
    torch.testing.assert_close(rep.logprobs[mask], gen.logprobs[mask], atol=1e-4, rtol=0)
    # positions after the first span depend on the fed vectors: without replay they differ
    with torch.no_grad():
        static = replay(model, vision_inputs, gen, temperature=0.9, replay_latents=False, return_logits=True)
    after = mask & (torch.arange(mask.shape[1]) > 8)
    assert (static.logits - gen.step_logits).where(finite, torch.zeros(())).abs().amax(-1)[after].max() > 1e-3


def test_fixed_budget_gives_exactly_max_latent_token_per_span(tiny, vision_inputs):
    model, processor = tiny
    gen = _latent_decode(model, vision_inputs, budget_mode="fixed", max_latent_token=5)
    for i, counts in enumerate(gen.span_counts):
        assert counts and all(c == 5 for c in counts)
        n_tokens = int((gen.sequences[i, : gen.lengths[i]] == model.latent_config.latent_token_id).sum())
        assert gen.latents[i].shape == (n_tokens, model.base.config.text_config.hidden_size)
        assert n_tokens == sum(counts) == int(gen.latent_mask[i].sum())
        closed = T.count_latent_spans(gen.texts[i])
        assert counts[: len(closed)] == closed and len(counts) - len(closed) in (0, 1)  # + a span open at the end
        assert gen.texts[i].startswith(T.LATENT_START + T.LATENT_TOKEN * 5 + T.LATENT_END)
        assert gen.latents[i].dtype == torch.float32


def test_force_initial_latent_starts_every_row_with_a_span(tiny, text_inputs):
    model, _ = tiny
    gen = _latent_decode(model, text_inputs, budget_mode="loose", loose_cap=3)
    assert (gen.sequences[:, 0] == model.latent_config.latent_start_id).all()
    assert all(len(c) >= 1 for c in gen.span_counts)


def test_loose_mode_never_exceeds_its_cap(tiny, text_inputs):
    model, _ = tiny
    gen = _latent_decode(model, text_inputs, budget_mode="loose", loose_cap=3)
    assert max(c for counts in gen.span_counts for c in counts) <= 3
    assert model.latent_config.replace(budget_mode="loose", loose_cap=None, max_latent_token=32).decode_budget == 64


def _model_that_prefers(model: FutureL1Model, token_id: int) -> FutureL1Model:
    """A copy of the tiny model whose logits always rank ``token_id`` first (a large bias on its logit)."""
    import copy

    clone = copy.deepcopy(model)
    bias = torch.zeros(clone.base.lm_head.out_features)
    bias[token_id] = 1e4
    clone.base.lm_head.register_forward_hook(lambda _module, _inputs, out: out + bias)
    return clone


def test_loose_mode_exits_on_a_sampled_latent_end_and_fixed_mode_does_not(tiny, text_inputs):
    model, _ = tiny
    cfg = model.latent_config
    prefers_end = _model_that_prefers(model, cfg.latent_end_id)
    loose = generate_with_latents(
        prefers_end, text_inputs, max_new_tokens=6,
        latent_config=cfg.replace(force_initial_latent=True, budget_mode="loose"),
    )
    # span opened by force, closed at once by the sampled <|latent_end|>: zero latents, nothing forced but the start
    assert all(c[0] == 0 for c in loose.span_counts)
    assert not loose.forced_mask[:, 1].any() and loose.forced_mask[:, 0].all()
    fixed = generate_with_latents(
        prefers_end, text_inputs, max_new_tokens=8,
        latent_config=cfg.replace(force_initial_latent=True, budget_mode="fixed", max_latent_token=4),
    )
    assert all(c[0] == 4 for c in fixed.span_counts)
    # the 4 latents and the budget-forced <|latent_end|> are forced; the token after it was sampled
    assert fixed.forced_mask[:, :6].all() and not fixed.forced_mask[:, 6].any()


def test_sampling_is_reproducible_with_a_seed(tiny, text_inputs):
    model, _ = tiny
    a = generate_with_latents(model, text_inputs, max_new_tokens=12, do_sample=True, temperature=1.0, seed=3)
    b = generate_with_latents(model, text_inputs, max_new_tokens=12, do_sample=True, temperature=1.0, seed=3)
    c = generate_with_latents(model, text_inputs, max_new_tokens=12, do_sample=True, temperature=1.0, seed=4)
    assert torch.equal(a.sequences, b.sequences) and not torch.equal(a.sequences, c.sequences)


def test_finished_rows_stop_and_pad(tiny, text_inputs):
    model, _ = tiny
    eos = model.base.generation_config.eos_token_id
    prefers_eos = _model_that_prefers(model, eos if isinstance(eos, int) else eos[0])
    gen = generate_with_latents(prefers_eos, text_inputs, max_new_tokens=10)
    assert gen.lengths.tolist() == [1] * len(QUESTIONS) and gen.sequences.shape[1] == 1
    assert all(t.endswith(T.IM_END) for t in gen.texts)


def test_vision_placeholders_are_never_sampled_and_open_spans_are_counted(tiny, text_inputs):
    model, _ = tiny
    prefers_pad = _model_that_prefers(model, model.config.image_token_id)
    gen = generate_with_latents(prefers_pad, text_inputs, max_new_tokens=4)
    assert not (gen.sequences == model.config.image_token_id).any()
    cfg = model.latent_config.replace(force_initial_latent=True, budget_mode="fixed", max_latent_token=9)
    cut = generate_with_latents(model, text_inputs, max_new_tokens=5, latent_config=cfg)  # span still open
    assert cut.span_counts == [[4]] * len(QUESTIONS) and cut.num_latents == [4] * len(QUESTIONS)
    assert all(T.count_latent_spans(t) == [] for t in cut.texts)


def test_bad_arguments_are_rejected(tiny, text_inputs):
    model, _ = tiny
    with pytest.raises(ValueError, match="max_new_tokens"):
        generate_with_latents(model, text_inputs, max_new_tokens=0)
    with pytest.raises(ValueError, match="temperature"):
        generate_with_latents(model, text_inputs, max_new_tokens=4, do_sample=True, temperature=0.0)


def test_decode_batches_is_the_loop_on_the_prompt_paths_batches(tiny, rng):
    """decode_batches = build_prompt_inputs per batch + generate_with_latents, in order, with per-batch seeds and
    interventions, the model in eval mode while it decodes and restored afterwards."""
    from fl1_core.decoding import decode_batches, decoded_texts

    model, processor = tiny
    prompts = [PromptExample(str(i), q, [random_image(rng)] * (i % 2)) for i, q in enumerate(QUESTIONS[:3])]
    calls = []

    def intervention_of(rows):
        calls.append(("intervention", rows))
        return None

    def seed_of(rows):
        calls.append(("seed", rows))
        return 11 + rows[0]

    was_training = model.training
    model.train()
    try:
        kw = dict(max_new_tokens=12, do_sample=True, temperature=0.9, top_p=0.99)
        batches = decode_batches(model, processor, prompts, batch_size=2, system_prompt="plain", seed_of=seed_of,
                                 intervention_of=intervention_of, **kw)
        got = []
        for batch in batches:
            assert not model.training
            part = [prompts[r] for r in batch.rows]
            want = generate_with_latents(model, build_prompt_inputs(processor, part, "plain"), seed=11 + batch.rows[0],
                                         tokenizer=processor.tokenizer, **kw)
            assert batch.generation.texts == want.texts and torch.equal(batch.generation.sequences, want.sequences)
            assert torch.equal(batch.inputs["input_ids"], build_prompt_inputs(processor, part, "plain")["input_ids"])
            got.append(batch.rows)
        assert model.training and got == [[0, 1], [2]]
        assert [c for c in calls if c[0] == "seed"] == [("seed", [0, 1]), ("seed", [2])]
        assert [c for c in calls if c[0] == "intervention"] == [("intervention", [0, 1]), ("intervention", [2])]
        greedy = decoded_texts(decode_batches(model, processor, prompts, prompt_of=None, batch_size=3,
                                              system_prompt="plain", max_new_tokens=6))
        assert greedy == generate_with_latents(model, build_prompt_inputs(processor, prompts, "plain"),
                                               max_new_tokens=6, tokenizer=processor.tokenizer).texts
    finally:
        model.train(was_training)
