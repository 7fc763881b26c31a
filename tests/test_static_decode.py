"""The static-cache decode loop against the frozen reference loop (``benchmarks/reference_decode.py``): same tokens,
same latents within LATENT_ATOL, greedy and sampled, groups of samples per prompt, a projection head, the pause
control and LoRA; peft's embedding copy never happens; compilation stays off the CPU. The benchmark's smoke run is
in ``test_benchmarks.py``."""

from __future__ import annotations

import copy
import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from fl1_core.data.collator import PromptExample
from fl1_core.data.prompt_inputs import build_prompt_inputs
from fl1_core.decoding import generate_with_latents
from fl1_core.model import FutureL1Model

from conftest import random_image

pytestmark = pytest.mark.usefixtures("one_thread")
BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
# fp32: the static loop attends over a window of a preallocated buffer (masked or not), the reference over a tensor
# grown by concatenation; the kernels sum in different orders, so fed latents agree to float rounding (about 1e-6
# measured), not bitwise
LATENT_ATOL = 1e-5


def _load(name: str):
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.path.insert(0, str(BENCH))
        try:
            spec.loader.exec_module(module)
        finally:
            sys.path.remove(str(BENCH))
        sys.modules[name] = module
    return sys.modules[name]


def reference(*args, **kwargs):
    return _load("reference_decode").reference_generate_with_latents(*args, **kwargs)


def _examples(rng, n_images=(2, 0, 1)):
    questions = ["what happens next?", "the red ball moves right. what does it hit?", "which light turns on?"]
    return [PromptExample(str(i), q, question_images=[random_image(rng) for _ in range(k)])
            for i, (q, k) in enumerate(zip(questions, n_images))]


def assert_same_decode(new, ref):
    """Tokens, lengths, masks and spans equal; log-probs and latents equal up to float rounding."""
    assert torch.equal(new.sequences, ref.sequences)
    assert torch.equal(new.lengths, ref.lengths)
    assert torch.equal(new.latent_mask, ref.latent_mask) and torch.equal(new.forced_mask, ref.forced_mask)
    assert new.span_counts == ref.span_counts and new.texts == ref.texts
    mask = ref.valid_mask
    torch.testing.assert_close(new.logprobs[mask], ref.logprobs[mask], atol=LATENT_ATOL, rtol=0)
    assert [v.shape for v in new.latents] == [v.shape for v in ref.latents]
    for a, b in zip(new.latents, ref.latents):
        assert a.dtype == torch.float32
        torch.testing.assert_close(a, b, atol=LATENT_ATOL, rtol=0)


def _latent_cfg(model, **changes):
    return model.latent_config.replace(force_initial_latent=True, **changes)


@pytest.mark.parametrize("sample", [False, True], ids=["greedy", "sampled"])
def test_same_decode_as_the_reference_with_images_and_spans(tiny, rng, sample):
    model, processor = tiny
    inputs = build_prompt_inputs(processor, _examples(rng))
    assert inputs["attention_mask"].min() == 0  # left padding in play
    kw = dict(max_new_tokens=24, latent_config=_latent_cfg(model, budget_mode="loose", loose_cap=4),
              do_sample=sample, temperature=0.9, top_p=0.95, seed=11 if sample else None)
    new = generate_with_latents(model, inputs, check_every=5, **kw)
    ref = reference(model, inputs, **kw)
    assert ref.latent_mask.any() and (ref.valid_mask & ~ref.latent_mask).any()
    assert_same_decode(new, ref)


@pytest.mark.parametrize("counts", [[3, 2], [4]], ids=["two_prompts", "one_prompt_unpadded"])
def test_a_group_shares_one_prefill_and_equals_the_repeated_prompts(tiny, rng, counts):
    model, processor = tiny
    examples = _examples(rng, n_images=(1, 2, 0))[: len(counts)]
    kw = dict(max_new_tokens=20, latent_config=_latent_cfg(model, budget_mode="fixed", max_latent_token=3),
              do_sample=True, temperature=1.0, seed=5)
    calls = []
    hook = model.base.model.visual.register_forward_hook(lambda _m, args, _o: calls.append(args[0].shape[0]))
    try:
        new = generate_with_latents(model, build_prompt_inputs(processor, examples), num_samples=counts, **kw)
    finally:
        hook.remove()
    repeated = [ex for ex, n in zip(examples, counts) for _ in range(n)]
    ref = reference(model, build_prompt_inputs(processor, repeated), **kw)
    assert_same_decode(new, ref)
    assert len(calls) == 1 and calls[0] == build_prompt_inputs(processor, examples)["pixel_values"].shape[0]
    assert not torch.equal(new.sequences[0], new.sequences[1]), "samples of one prompt must differ"


def _with_head(model: FutureL1Model, **changes) -> FutureL1Model:
    base = copy.deepcopy(model.base)
    out = FutureL1Model(base, model.latent_config.replace(**changes)).eval()
    if out.latent_head is not None:
        g = torch.Generator().manual_seed(3)
        with torch.no_grad():
            for p in out.latent_head.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    return out


@pytest.mark.parametrize("changes", [{"projection_head": True, "head_dim": 64}, {"latent_input": "pause"}],
                         ids=["projection_head", "pause"])
def test_projection_head_and_pause_control_match_the_reference(tiny, rng, changes):
    model, processor = tiny
    other = _with_head(model, **changes)
    examples = _examples(rng, n_images=(1, 0, 0))[:2]
    kw = dict(max_new_tokens=16, latent_config=_latent_cfg(other, budget_mode="fixed", max_latent_token=4),
              do_sample=True, temperature=0.9, seed=2)
    new = generate_with_latents(other, build_prompt_inputs(processor, examples), num_samples=2, **kw)
    ref = reference(other, build_prompt_inputs(processor, [ex for ex in examples for _ in range(2)]), **kw)
    assert_same_decode(new, ref)
    fed = torch.cat(new.latents)
    if "pause" in changes.get("latent_input", ""):
        row = other.input_embeddings().weight[other.latent_config.latent_token_id]
        assert torch.equal(fed, row.expand_as(fed))
    else:
        assert fed.shape[0] > 0


def test_lora_decode_never_copies_the_embedding_and_matches_the_reference(tiny, rng, monkeypatch):
    from peft.tuners.trainable_tokens.layer import TrainableTokensLayer

    from fl1_core.adapters import apply_lora

    model, processor = tiny
    lora = apply_lora(copy.deepcopy(model))
    lora.eval()
    layer = lora.input_embeddings().token_adapter
    with torch.no_grad():
        for delta in layer.trainable_tokens_delta.values():
            delta.add_(0.5)  # the latent rows now differ from the base rows
    copies = []
    real = TrainableTokensLayer.get_merged_weights
    monkeypatch.setattr(TrainableTokensLayer, "get_merged_weights",
                        lambda self, names: copies.append(1) or real(self, names))
    inputs = build_prompt_inputs(processor, _examples(rng))
    kw = dict(max_new_tokens=16, latent_config=_latent_cfg(lora, budget_mode="loose", loose_cap=3),
              do_sample=True, temperature=0.9, seed=4)
    new = generate_with_latents(lora, inputs, **kw)
    assert copies == [] and type(lora.input_embeddings()).__name__ == "TrainableTokensWrapper"
    ref = reference(lora, inputs, **kw)
    assert len(copies) >= kw["max_new_tokens"] // 2  # the reference copies the matrix at every step
    assert_same_decode(new, ref)


def test_the_fixed_shape_windows_of_the_graph_path_decode_the_same(tiny, rng, monkeypatch):
    """The CUDA-graph path's cache (slots and windows rounded up to COMPILE_BUCKET, masked) run eagerly on the CPU."""
    from fl1_core.decoding import latent_loop, prefill

    model, processor = tiny
    windows = []
    real_set = prefill.WindowedStaticCache.set_window
    monkeypatch.setattr(prefill.WindowedStaticCache, "set_window",
                        lambda self, written: windows.append(real_set(self, written)) or windows[-1])
    monkeypatch.setattr(latent_loop, "step_function", lambda device, compile_step: lambda *a: prefill.decode_step(*a))
    inputs = build_prompt_inputs(processor, _examples(rng)[:2])
    kw = dict(max_new_tokens=12, latent_config=_latent_cfg(model, budget_mode="fixed", max_latent_token=3),
              do_sample=True, temperature=0.9, seed=8)
    new = generate_with_latents(model, inputs, **kw)
    assert windows and all(w % prefill.COMPILE_BUCKET == 0 for w in windows)
    assert_same_decode(new, reference(model, inputs, **kw))


def test_finished_rows_end_the_loop_at_a_check_and_compilation_stays_off_the_cpu(tiny, rng, monkeypatch):
    model, processor = tiny
    eos = model.base.generation_config.eos_token_id
    clone = copy.deepcopy(model)
    bias = torch.zeros(clone.base.lm_head.out_features)
    bias[eos if isinstance(eos, int) else eos[0]] = 1e4
    clone.base.lm_head.register_forward_hook(lambda _m, _i, out: out + bias)
    steps = []
    clone.base.model.language_model.register_forward_hook(lambda *_: steps.append(1))
    monkeypatch.setattr(torch, "compile", lambda *a, **k: pytest.fail("torch.compile on the CPU"))
    inputs = build_prompt_inputs(processor, _examples(rng, (0, 0, 0)))
    gen = generate_with_latents(clone, inputs, max_new_tokens=30, check_every=4, compile_step=True)
    assert gen.sequences.shape[1] == 1 and gen.lengths.tolist() == [1, 1, 1]
    assert len(steps) == 1 + 3  # prefill, then steps 1..3 until the check after the 4th token
    steps.clear()
    fixed = generate_with_latents(clone, inputs, max_new_tokens=9, check_every=0)
    assert len(steps) == 1 + 8 and torch.equal(fixed.sequences, gen.sequences)
