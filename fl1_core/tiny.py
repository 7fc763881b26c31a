"""The embedded default model: a tiny, randomly initialised Qwen3-VL with a locally built tokenizer.

Everything here builds *real* ``transformers`` objects (``Qwen3VLForConditionalGeneration``, ``Qwen3VLProcessor``
with ``Qwen2VLImageProcessor`` + ``Qwen3VLVideoProcessor``, a ``PreTrainedTokenizerFast``), so the tiny model and a
Qwen3-VL-8B checkpoint go through one code path (:func:`fl1_core.model.load_future_l1`). Only the sizes differ.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    PreTrainedTokenizerFast,
    Qwen2VLImageProcessor,
    Qwen3VLConfig,
    Qwen3VLForConditionalGeneration,
    Qwen3VLProcessor,
    Qwen3VLVideoProcessor,
)

from . import tokens as T

if TYPE_CHECKING:  # for the annotation only
    from .config import LatentConfig

logger = logging.getLogger(__name__)

# Qwen2/3's pre-tokenisation: contractions, letters, single digits, punctuation runs, newlines, spaces.
_QWEN_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
# The world's closed language as phrases: as Qwen's, except that a run of lower-case words joined by single spaces
# (optionally led by one capitalised word) is one pre-token, so BPE can merge "the purple box" or "bounces off the
# left wall" into one token. A lone capital ("A", "B") stays its own token.
_PHRASE_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}\p{Ll}*(?: \p{Ll}+)*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
PRETOKENIZERS = {"word": _QWEN_SPLIT, "phrase": _PHRASE_SPLIT}

# A chat template compatible with Qwen3VLProcessor: images are wrapped in vision_start/end here; a video is a bare
# <|video_pad|> that the processor expands into "<t seconds><|vision_start|>…<|vision_end|>" per temporal group.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "<|im_start|>{{ message['role'] + '\\n' }}"
    "{%- if message['content'] is string -%}{{ message['content'] }}"
    "{%- else -%}{%- for item in message['content'] -%}"
    "{%- if item['type'] == 'image' -%}<|vision_start|><|image_pad|><|vision_end|>"
    "{%- elif item['type'] == 'video' -%}<|video_pad|>"
    "{%- elif item['type'] == 'text' -%}{{ item['text'] }}"
    "{%- endif -%}{%- endfor -%}{%- endif -%}"
    "<|im_end|>{{ '\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}<|im_start|>{{ 'assistant\\n' }}{%- endif -%}"
)


@dataclass(frozen=True)
class TinySizes:
    """Sizes of the tiny Qwen3-VL (≈1–2 M parameters with the default vocabulary)."""

    vocab_size: int = 2048
    # pre-tokenisation, a key of PRETOKENIZERS: "word" (Qwen's) or "phrase" (merges across spaces)
    pretokenizer: str = "word"
    hidden_size: int = 128
    intermediate_size: int = 384
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    head_dim: int = 32
    vision_depth: int = 2
    vision_hidden_size: int = 64
    vision_intermediate_size: int = 128
    vision_heads: int = 4
    # pixel budget of question images for the processor (min, max); 96x96 world frames stay at native size
    image_min_pixels: int = 32 * 32 * 4
    image_max_pixels: int = 32 * 32 * 16


def default_corpus() -> list[str]:
    """Text the tiny tokenizer is trained on: the synthetic world's vocabulary plus prompts and tags."""
    from .data.world import vocabulary_corpus  # local import: the world is optional for real checkpoints
    from .data.world.curriculum_text import curriculum_corpus

    extra = [p for p in T.SYSTEM_PROMPTS.values() if p] + curriculum_corpus()
    extra += [T.MCQ_INSTRUCTION, "<reason> </reason> <answer> </answer> THOUGHT 0: THOUGHT 1:"]
    extra += [f"<{t / 10:.1f} seconds>" for t in range(0, 301)]
    return list(vocabulary_corpus()) + extra


def build_tokenizer(corpus: Iterable[str], vocab_size: int = 2048, pretokenizer: str = "word"
                    ) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE on ``corpus`` and add Qwen3-VL's special tokens and the three latent tokens.

    Byte-level: every string is encodable. ``pretokenizer`` picks the split before BPE (:data:`PRETOKENIZERS`). Special tokens get the ids right after the BPE vocabulary, in Qwen3-VL's
    order; latent tokens are added last as ordinary (non-special) added tokens (docs/PAPER.md#tokens).
    """
    n_special = len(T.QWEN3VL_SPECIAL_TOKENS) + len(T.QWEN3VL_ADDED_TOKENS) + len(T.LATENT_TOKENS)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(pattern=_regex(_split_pattern(pretokenizer)), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=max(vocab_size - n_special, 300),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(corpus), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=T.IM_END,
        pad_token=T.ENDOFTEXT,
        unk_token=None,
        model_max_length=32768,
        padding_side="left",
        clean_up_tokenization_spaces=False,
    )
    fast.add_special_tokens({"additional_special_tokens": list(T.QWEN3VL_SPECIAL_TOKENS)})
    fast.add_tokens(list(T.QWEN3VL_ADDED_TOKENS) + list(T.LATENT_TOKENS), special_tokens=False)
    fast.chat_template = CHAT_TEMPLATE
    return fast


def _split_pattern(name: str) -> str:
    if name not in PRETOKENIZERS:
        raise ValueError(f"unknown pretokenizer {name!r}; expected one of {sorted(PRETOKENIZERS)}")
    return PRETOKENIZERS[name]


def _regex(pattern: str):
    from tokenizers import Regex

    return Regex(pattern)


def build_processor(
    tokenizer: PreTrainedTokenizerFast, *, min_pixels: int, max_pixels: int, video_fps: float = 2.0
) -> Qwen3VLProcessor:
    """The real Qwen3-VL processor classes around ``tokenizer`` (patch 16, merge 2, temporal patch 2)."""
    common = dict(patch_size=16, merge_size=2, temporal_patch_size=2)
    image_processor = Qwen2VLImageProcessor(size={"shortest_edge": min_pixels, "longest_edge": max_pixels}, **common)
    video_processor = Qwen3VLVideoProcessor(
        size={"shortest_edge": min_pixels, "longest_edge": max_pixels * 16},
        fps=video_fps,
        cap_pixels_per_frame=False,
        **common,
    )
    return Qwen3VLProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=video_processor,
        chat_template=CHAT_TEMPLATE,
    )


def tiny_config(tokenizer: PreTrainedTokenizerFast, sizes: TinySizes = TinySizes()) -> Qwen3VLConfig:
    """A ``Qwen3VLConfig`` with Qwen3-VL's structure (M-RoPE, deepstack, 2x2 merger) at tiny sizes."""
    vocab = _round_up(len(tokenizer), 64)
    half = sizes.head_dim // 2
    mrope = [half - 2 * (half // 3), half // 3, half // 3]  # t, h, w sections summing to head_dim / 2
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in (T.IMAGE_PAD, T.VIDEO_PAD, T.VISION_START, T.VISION_END)}
    return Qwen3VLConfig(
        text_config=dict(
            vocab_size=vocab,
            hidden_size=sizes.hidden_size,
            intermediate_size=sizes.intermediate_size,
            num_hidden_layers=sizes.num_hidden_layers,
            num_attention_heads=sizes.num_attention_heads,
            num_key_value_heads=sizes.num_key_value_heads,
            head_dim=sizes.head_dim,
            max_position_embeddings=8192,
            rope_parameters={
                "rope_type": "default",
                "rope_theta": 10000.0,
                "mrope_section": mrope,
                "mrope_interleaved": True,
            },
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=None,
            eos_token_id=tokenizer.eos_token_id,
        ),
        vision_config=dict(
            depth=sizes.vision_depth,
            hidden_size=sizes.vision_hidden_size,
            intermediate_size=sizes.vision_intermediate_size,
            num_heads=sizes.vision_heads,
            patch_size=16,
            spatial_merge_size=2,
            temporal_patch_size=2,
            out_hidden_size=sizes.hidden_size,
            num_position_embeddings=144,
            deepstack_visual_indexes=[sizes.vision_depth - 1],
        ),
        image_token_id=ids[T.IMAGE_PAD],
        video_token_id=ids[T.VIDEO_PAD],
        vision_start_token_id=ids[T.VISION_START],
        vision_end_token_id=ids[T.VISION_END],
        tie_word_embeddings=False,
    )


def build_tiny_qwen3vl(
    seed: int = 0, sizes: TinySizes = TinySizes(), corpus: Iterable[str] | None = None
) -> tuple[Qwen3VLForConditionalGeneration, Qwen3VLProcessor]:
    """A randomly initialised tiny ``Qwen3VLForConditionalGeneration`` and its processor (deterministic in seed)."""
    tokenizer = build_tokenizer(default_corpus() if corpus is None else corpus, sizes.vocab_size, sizes.pretokenizer)
    processor = build_processor(tokenizer, min_pixels=sizes.image_min_pixels, max_pixels=sizes.image_max_pixels)
    config = tiny_config(tokenizer, sizes)
    torch.manual_seed(seed)
    model = Qwen3VLForConditionalGeneration(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.bos_token_id = None
    model.eval()
    n = sum(p.numel() for p in model.parameters())
    logger.info("built tiny Qwen3-VL: %.2f M parameters, vocabulary %d", n / 1e6, len(tokenizer))
    return model, processor


def _round_up(x: int, multiple: int) -> int:
    return (x + multiple - 1) // multiple * multiple


def build_tiny_future_l1(
    seed: int = 0,
    latent_config: "LatentConfig | None" = None,
    sizes: TinySizes = TinySizes(),
    corpus: Iterable[str] | None = None,
):
    """The tiny Qwen3-VL wrapped as a :class:`~fl1_core.model.FutureL1Model` (latent token ids filled in).

    ``latent_config`` defaults to the world's setting: ``max_latent_token=9`` (a 96x96 future frame is 3x3 merged
    tokens), the fixed decoding budget (every world frame is exactly 9 latents; the loose budget lets a small model
    close spans early or run to the cap) and no projection head, at the tiny hidden size.
    """
    from .config import LatentConfig
    from .model import FutureL1Model, add_latent_tokens

    base, processor = build_tiny_qwen3vl(seed=seed, sizes=sizes, corpus=corpus)
    ids = add_latent_tokens(processor, base)
    default = LatentConfig(max_latent_token=9, budget_mode="fixed", head_dim=2 * sizes.hidden_size)
    cfg = (latent_config or default).replace(**ids)
    torch.manual_seed(seed + 1)
    model = FutureL1Model(base, cfg).eval()
    model.processor = processor
    return model, processor
