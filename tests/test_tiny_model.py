"""The embedded default model: a real tiny Qwen3-VL, its local tokenizer and the real HF processor classes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import Qwen3VLForConditionalGeneration, Qwen3VLProcessor

from fl1_core import tokens as T
from fl1_core.checkpoints import save_model
from fl1_core.data.collator import PromptExample, QuestionVideo
from fl1_core.data.prompt_inputs import build_prompt_inputs
from fl1_core.model import FutureL1Model, load_future_l1
from fl1_core.tiny import build_tokenizer, default_corpus

from conftest import random_image


def test_tiny_model_is_a_real_qwen3vl_of_the_right_size(tiny):
    model, processor = tiny
    assert isinstance(model.base, Qwen3VLForConditionalGeneration)
    assert isinstance(processor, Qwen3VLProcessor)
    n = sum(p.numel() for p in model.parameters())
    assert 0.5e6 <= n <= 5e6, n


def test_tokenizer_has_every_qwen_special_and_latent_token(tiny):
    _, processor = tiny
    tok = processor.tokenizer
    vocab = tok.get_vocab()
    for t in T.QWEN3VL_SPECIAL_TOKENS + T.QWEN3VL_ADDED_TOKENS + T.LATENT_TOKENS:
        assert t in vocab, t
        assert tok.convert_ids_to_tokens(tok(t, add_special_tokens=False)["input_ids"]) == [t]
    # latent tokens are ordinary added tokens: kept when special tokens are skipped
    ids = tok(T.LATENT_START + T.LATENT_TOKEN + T.LATENT_END + " <|im_end|>", add_special_tokens=False)["input_ids"]
    assert tok.decode(ids, skip_special_tokens=True).strip() == T.LATENT_START + T.LATENT_TOKEN + T.LATENT_END


def test_tokenizer_covers_world_text_and_timestamps_compactly(tiny):
    _, processor = tiny
    tok = processor.tokenizer
    for text in ["<0.5 seconds>", "<12.3 seconds>", "the red ball hits the blue box."]:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert tok.decode(ids) == text
    words = "the red ball bounces off the left wall".split()
    n = len(tok(" ".join(words), add_special_tokens=False)["input_ids"])
    assert n <= len(words) + 2, f"world text should tokenise to about one token per word, got {n}"


def test_tokenizer_build_is_deterministic():
    a = build_tokenizer(default_corpus(), 2048)
    b = build_tokenizer(default_corpus(), 2048)
    assert a.get_vocab() == b.get_vocab()


def test_processor_on_a_synthetic_clip_with_its_real_fps(tiny, rng):
    model, processor = tiny
    frames = rng.integers(0, 255, (8, 96, 96, 3), dtype=np.uint8)
    video = QuestionVideo(frames, fps=4.0, frame_indices=list(range(0, 16, 2)))
    inputs = build_prompt_inputs(processor, [PromptExample("v", "what happens next?", question_video=video)])
    text = processor.tokenizer.decode(inputs["input_ids"][0])
    # 8 frames, temporal patch 2 → 4 groups, each with its own timestamp and vision_start/end; fps 4 is honoured
    assert text.count(T.VISION_START) == 4 and text.count(T.VISION_END) == 4
    assert "<0.2 seconds>" in text and "<3.2 seconds>" in text
    assert inputs["video_grid_thw"].tolist() == [[4, 6, 6]]
    video_tokens = (inputs["mm_token_type_ids"] == 2).sum().item()
    assert video_tokens == 4 * 3 * 3
    with torch.no_grad():
        logits = model(**inputs).logits
    assert logits.shape[:2] == inputs["input_ids"].shape and torch.isfinite(logits).all()


def test_forward_and_generate_with_images(tiny, rng):
    model, processor = tiny
    examples = [
        PromptExample("a", "what happens next?", question_images=[random_image(rng), random_image(rng)]),
        PromptExample("b", "which object moves?", question_images=[random_image(rng)]),
    ]
    inputs = build_prompt_inputs(processor, examples)
    assert inputs["image_grid_thw"].tolist() == [[1, 6, 6]] * 3
    out = model.base.generate(**inputs, max_new_tokens=6, do_sample=False)
    assert out.shape == (2, inputs["input_ids"].shape[1] + 6)
    assert torch.equal(out[:, : inputs["input_ids"].shape[1]], inputs["input_ids"])


def test_save_load_round_trip_gives_identical_logits(tiny, rng, tmp_path):
    model, processor = tiny
    save_model(model, processor, tmp_path / "ckpt")
    loaded, loaded_proc = load_future_l1(tmp_path / "ckpt")
    assert isinstance(loaded, FutureL1Model)
    assert loaded.latent_config == model.latent_config
    assert loaded_proc.tokenizer.get_vocab() == processor.tokenizer.get_vocab()
    assert loaded_proc.chat_template == processor.chat_template
    ex = [PromptExample("a", "what happens next?", question_images=[random_image(rng)])]
    a, b = build_prompt_inputs(processor, ex), build_prompt_inputs(loaded_proc, ex)
    assert torch.equal(a["input_ids"], b["input_ids"]) and torch.equal(a["pixel_values"], b["pixel_values"])
    with torch.no_grad():
        la, lb = model(**a).logits, loaded(**b).logits
    assert torch.equal(la, lb)


def test_loader_rejects_a_directory_without_a_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_future_l1(tmp_path)


def test_latent_config_travels_under_one_key_and_decoding_reads_it(tiny, tmp_path):
    """Training and inference can never disagree on the latent budget: one key, read back by the same name."""
    import json

    from fl1_core.config import CONFIG_KEY, LatentConfig
    from fl1_core.data.collator import PromptExample
    from fl1_core.data.prompt_inputs import build_prompt_inputs
    from fl1_core.decoding import generate_with_latents

    model, processor = tiny
    trained = FutureL1Model(model.base, model.latent_config.replace(budget_mode="fixed", max_latent_token=3,
                                                                    force_initial_latent=True))
    save_model(trained, processor, tmp_path / "ck")
    config = json.loads((tmp_path / "ck" / "config.json").read_text())
    assert config[CONFIG_KEY]["max_latent_token"] == 3
    assert not [k for k in config if "latent" in k.lower() and k != CONFIG_KEY], "latent settings outside the key"
    loaded, proc = load_future_l1(tmp_path / "ck")
    assert loaded.latent_config == LatentConfig.from_dict(config[CONFIG_KEY])
    inputs = build_prompt_inputs(proc, [PromptExample("q", "what happens next?")])
    assert generate_with_latents(loaded, inputs, max_new_tokens=8).span_counts[0][0] == 3
    FutureL1Model(model.base, model.latent_config)  # restore the shared base config for other tests
