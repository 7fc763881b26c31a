"""The one prompt path (fl1_core.data.prompt_inputs): a prompt becomes the same tensors whether it is padded alone,
in a batch, or cached and padded later (RL), and those tensors are the processor's own left-padded batch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fl1_core import tokens as T
from fl1_core.data.collator import PromptExample, QuestionVideo, encode_texts, render_prompt
from fl1_core.data.prompt_inputs import build_prompt_inputs, encode_prompt, pad_id_of, pad_prompts

from conftest import random_image


def _examples(rng) -> list[PromptExample]:
    frames = rng.integers(0, 255, (4, 96, 96, 3), dtype=np.uint8)
    return [
        PromptExample("two", "what happens next?", [random_image(rng), random_image(rng, 64, 128)]),
        PromptExample("text", "which light turns on after the red ball hits the switch on the left wall?"),
        PromptExample("video", "what next?", question_video=QuestionVideo(frames, fps=4.0, frame_indices=[0, 2, 4, 6])),
        PromptExample("one", "and then?", [random_image(rng)]),
    ]


def test_batch_equals_the_processors_left_padded_batch(tiny, rng):
    """Per-prompt processing + hand left padding gives exactly one processor call over the batch (left padding)."""
    _, processor = tiny
    assert processor.tokenizer.padding_side == "left"
    examples = _examples(rng)
    ours = build_prompt_inputs(processor, examples, "interleaved", question_max_pixels=4 * 32 * 32)
    texts = [render_prompt(processor, T.system_prompt("interleaved"), len(ex.question_images),
                           ex.question_video is not None, ex.question) for ex in examples]
    theirs = encode_texts(processor, texts, examples, question_max_pixels=4 * 32 * 32)
    assert ours.keys() == theirs.keys()
    assert {"pixel_values", "image_grid_thw", "pixel_values_videos", "video_grid_thw"} <= ours.keys()
    for key in ours:
        assert ours[key].dtype == theirs[key].dtype and torch.equal(ours[key], theirs[key]), key
    assert ours["attention_mask"][:, 0].tolist().count(0) >= 1  # prompts of different lengths: left padded
    assert (ours["attention_mask"][:, -1] == 1).all()


def test_cached_prompts_pad_like_a_fresh_batch_with_repeats(tiny, rng):
    """RL's path (encode once, pad each batch, a prompt repeated per sample) gives the fresh batch's tensors."""
    _, processor = tiny
    examples = _examples(rng)
    encoded = [encode_prompt(processor, ex, record=ex.id) for ex in examples]
    assert [p.record for p in encoded] == [ex.id for ex in examples]
    order = [3, 0, 0, 2, 1]
    padded = pad_prompts([encoded[i] for i in order], pad_id_of(processor))
    fresh = build_prompt_inputs(processor, [examples[i] for i in order])
    assert padded.keys() == fresh.keys()
    for key in padded:
        assert torch.equal(padded[key], fresh[key]), key


def test_assistant_prefix_follows_the_header_as_text_tokens(tiny):
    _, processor = tiny
    ex = PromptExample("q", "what happens next?")
    plain = encode_prompt(processor, ex)
    prefixed = encode_prompt(processor, ex, assistant_prefix="<reason>At the end of the video,")
    prefix = processor.tokenizer("<reason>At the end of the video,", add_special_tokens=False)["input_ids"]
    assert prefixed.input_ids.tolist() == plain.input_ids.tolist() + prefix
    assert prefixed.mm_token_type_ids.tolist() == plain.mm_token_type_ids.tolist() + [0] * len(prefix)
    assert prefixed.nbytes > plain.nbytes


def test_pad_prompts_needs_a_prompt():
    with pytest.raises(ValueError, match="at least one"):
        pad_prompts([], 0)
