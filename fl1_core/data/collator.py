"""Chat assembly and the SFT collator (docs/PAPER.md#tokens, docs/PAPER.md#latent-sft).

An SFT sequence is: system; user = question frames as images (no separators) or one video, then the question text;
assistant = ``<reason>{thought 0}</reason>\\n<|latent_start|><|latent|>×K<|latent_end|>\\n<reason>{thought 1}</reason>\\n
… <answer>{answer}</answer><|im_end|>`` with one span per future frame and K = merged tokens of that frame after
resizing it to ``max_latent_token × 32 × 32`` pixels (or a fixed pooled budget). The assistant side is written here
explicitly (the stock template drops assistant images). Future frames go through the image processor into
``pixel_values_latent`` / ``image_grid_thw_latent``; the model turns them into latent targets.

Labels: everything in the assistant turn except ``<|latent|>`` positions; prompt and padding are -100. All of this is
vectorised over the batch (no per-token Python loops).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image
from transformers import Qwen3VLProcessor
from transformers.video_utils import VideoMetadata

from .. import tokens as T
from ..config import LatentConfig

logger = logging.getLogger(__name__)

IGNORE_INDEX = -100


class CollateError(ValueError):
    """A record cannot be turned into a training sequence (message names the record and the reason)."""


@dataclass
class QuestionVideo:
    """An observed clip for the prompt: frames [T, H, W, 3] uint8, their 0-based frame numbers and the real fps."""

    frames: np.ndarray
    fps: float
    frame_indices: list[int]

    def metadata(self) -> VideoMetadata:
        total = int(max(self.frame_indices)) + 1 if self.frame_indices else len(self.frames)
        h, w = self.frames.shape[1:3]
        return VideoMetadata(total_num_frames=total, fps=self.fps, frames_indices=list(self.frame_indices), width=w, height=h)


@dataclass
class SFTExample:
    """One training example after frames were loaded (built by :func:`fl1_core.data.examples.sft_example`)."""

    id: str
    question: str
    thoughts: list[str]
    answer: str
    question_images: list[Image.Image] = field(default_factory=list)
    future_frames: list[Image.Image] = field(default_factory=list)
    question_video: QuestionVideo | None = None
    no_loss_text: str | None = None  # a phrase of the response whose tokens carry no loss (its last occurrence)


@dataclass
class PromptExample:
    """A generation prompt (evaluation / RL): frames or a video, then question text."""

    id: str
    question: str
    question_images: list[Image.Image] = field(default_factory=list)
    question_video: QuestionVideo | None = None


def user_content(n_images: int, has_video: bool, question: str) -> list[dict]:
    """User turn content: the question frames (images) or the video, then the question text."""
    items: list[dict] = [{"type": "image"} for _ in range(n_images)]
    if has_video:
        items.append({"type": "video"})
    items.append({"type": "text", "text": question.replace(T.IMAGE_PLACEHOLDER, "").strip()})
    return items


def render_prompt(processor: Qwen3VLProcessor, system: str | None, n_images: int, has_video: bool, question: str) -> str:
    """Chat text of system + user turn + the assistant header (``<|im_start|>assistant\\n``)."""
    messages = [] if system is None else [{"role": "system", "content": system}]
    messages.append({"role": "user", "content": user_content(n_images, has_video, question)})
    return processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def assistant_text(thoughts: list[str], span_lengths: list[int], answer: str) -> str:
    """``<reason>t0</reason>\\n<|latent_start|><|latent|>×K0<|latent_end|>\\n<reason>t1</reason>\\n … <answer>a</answer>``.

    ``span_lengths`` has one entry per future frame (0 entries = text-only: thoughts without spans). A thought
    sequence may be one longer than the spans (text after the last frame, the usual case) or equal (ends on a frame).
    Empty thoughts are skipped.
    """
    parts: list[str] = []
    for k, thought in enumerate(thoughts):
        if thought:
            parts.append(f"{T.REASON_OPEN}{thought}{T.REASON_CLOSE}\n")
        if k < len(span_lengths):
            parts.append(T.LATENT_START + T.LATENT_TOKEN * span_lengths[k] + T.LATENT_END + "\n")
    parts.append(f"{T.ANSWER_OPEN}{answer}{T.ANSWER_CLOSE}{T.IM_END}")
    return "".join(parts)


class SFTCollator:
    """Builds model batches from :class:`SFTExample` lists.

    ``mode="latent"``: one latent span per future frame (docs/PAPER.md#latent-sft); ``mode="text"``: the text-only SFT baseline (same
    thoughts, no spans, no future frames). ``allow_text_only`` accepts examples without frames (world pretraining's
    option look-up). ``on_error="skip"`` drops bad examples (kept in ``self.rejects``) and
    raises :class:`CollateError` only when the whole batch is bad; ``"raise"`` raises on the first bad example.
    ``letter_weight`` ≠ 1 adds ``label_weights``: that weight on the option letters A–D of each response (the
    "…which is option B" binding and ``<answer>B</answer>``), 1 elsewhere. ``question_max_pixels`` caps each
    question image (None: the processor's own cap, the release's near-native SFT setting).
    """

    def __init__(
        self,
        processor: Qwen3VLProcessor,
        latent_config: LatentConfig,
        *,
        system_prompt: str = "interleaved",
        mode: Literal["latent", "text"] = "latent",
        max_length: int | None = None,
        on_error: Literal["raise", "skip"] = "skip",
        allow_text_only: bool = False,
        letter_weight: float = 1.0,
        question_max_pixels: int | None = None,
    ):
        if mode not in ("latent", "text"):
            raise ValueError(f"mode must be 'latent' or 'text', got {mode!r}")
        self.processor = processor
        self.latent_config = latent_config
        self.system = T.system_prompt(system_prompt)
        self.mode = mode
        self.max_length = max_length
        self.on_error = on_error
        self.allow_text_only = allow_text_only
        self.rejects: list[tuple[str, str]] = []
        tok = processor.tokenizer
        self.im_start_id = tok.convert_tokens_to_ids(T.IM_START)
        self.header_len = 1 + len(tok("assistant\n", add_special_tokens=False)["input_ids"])
        self.latent_id = latent_config.latent_token_id
        if letter_weight <= 0:
            raise ValueError(f"letter_weight must be > 0, got {letter_weight}")
        self.letter_weight = letter_weight
        self.letter_pairs = _letter_pairs(tok)
        self.question_max_pixels = question_max_pixels

    # -------------------------------------------------------------- per example
    def check(self, ex: SFTExample) -> None:
        """Raise :class:`CollateError` (naming the record and field) if ``ex`` cannot become a training sequence."""
        if not ex.answer or not ex.answer.strip():
            raise CollateError(f"record {ex.id!r}: field 'answer': expected non-empty text")
        if self.mode == "latent" and not ex.future_frames:
            raise CollateError(
                f"record {ex.id!r}: field 'reasoning_image': latent SFT needs at least one future frame, got none"
            )
        n_spans = len(ex.future_frames) if self.mode == "latent" else 0
        if self.mode == "latent" and len(ex.thoughts) not in (n_spans, n_spans + 1):
            raise CollateError(
                f"record {ex.id!r}: field 'conversations': {len(ex.thoughts)} thoughts for {n_spans} future frames "
                f"(expected {n_spans} or {n_spans + 1})"
            )
        if not ex.question_images and ex.question_video is None and not self.allow_text_only:
            raise CollateError(f"record {ex.id!r}: field 'image': expected question frames or a video, got none")

    def _latent_pixels(self, frames: list[Image.Image]) -> tuple[dict, list[int]]:
        return latent_pixel_inputs(self.processor, self.latent_config, frames)

    # -------------------------------------------------------------------- batch
    def __call__(self, examples: list[SFTExample]) -> dict:
        good: list[SFTExample] = []
        for ex in examples:
            try:
                self.check(ex)
                good.append(ex)
            except CollateError as err:
                if self.on_error == "raise":
                    raise
                logger.warning("skipping %s", err)
                self.rejects.append((ex.id, str(err)))
        if not good:
            ids = [ex.id for ex in examples]
            raise CollateError(f"every record of the batch failed ({ids}); see the rejects for reasons")
        return self._build(good)

    def _build(self, examples: list[SFTExample]) -> dict:
        future = [f for ex in examples for f in ex.future_frames] if self.mode == "latent" else []
        latent_inputs, counts = self._latent_pixels(future) if future else ({}, [])
        texts, responses, offset = [], [], 0
        for ex in examples:
            n_future = len(ex.future_frames) if self.mode == "latent" else 0
            spans = counts[offset : offset + n_future]
            offset += n_future
            prompt = render_prompt(self.processor, self.system, len(ex.question_images), ex.question_video is not None, ex.question)
            responses.append(assistant_text(ex.thoughts, spans, ex.answer))
            texts.append(prompt + responses[-1])
        batch = encode_texts(self.processor, texts, examples, self.question_max_pixels)
        if self.max_length is not None and batch["input_ids"].shape[1] > self.max_length:
            lengths = batch["attention_mask"].sum(1).tolist()
            too_long = [(ex.id, n) for ex, n in zip(examples, lengths) if n > self.max_length]
            raise CollateError(f"sequence longer than max_length={self.max_length}: {too_long}")
        batch["labels"] = self.labels(batch["input_ids"], batch["attention_mask"])
        for row, (ex, response) in enumerate(zip(examples, responses)):
            if ex.no_loss_text:
                self.mask_phrase(batch["labels"], row, response, ex)
        if self.letter_weight != 1.0:
            letters = _is_letter(batch["input_ids"], self.letter_pairs) & (batch["labels"] != IGNORE_INDEX)
            batch["label_weights"] = torch.where(letters, self.letter_weight, 1.0)
        if future:
            batch["pixel_values_latent"] = latent_inputs["pixel_values"]
            batch["image_grid_thw_latent"] = latent_inputs["image_grid_thw"]
        batch["ids"] = [ex.id for ex in examples]
        return batch

    def mask_phrase(self, labels: torch.Tensor, row: int, response: str, ex: SFTExample) -> None:
        """No loss on the tokens of ``ex.no_loss_text`` (its last occurrence in ``response``) in ``labels[row]``; the
        response tokenised alone must be the row's supervised tokens, else it raises rather than mask others."""
        at = response.rfind(ex.no_loss_text)
        if at < 0:
            raise CollateError(f"{ex.id}: no_loss_text {ex.no_loss_text!r} is not in the response")
        enc = self.processor.tokenizer(response, add_special_tokens=False, return_offsets_mapping=True)
        ids, spans = enc["input_ids"], enc["offset_mapping"]
        supervised = (labels[row] != IGNORE_INDEX).nonzero().flatten()
        if not len(supervised):
            raise CollateError(f"{ex.id}: the response has no supervised tokens")
        first = int(supervised[0])
        have = labels[row, first:first + len(ids)]
        expect = torch.tensor(ids)
        keep = have != IGNORE_INDEX  # latent slots are already unsupervised
        if have.shape != expect.shape or not torch.equal(have[keep], expect[keep]):
            raise CollateError(f"{ex.id}: the response does not tokenise alone as it does in the chat text")
        end = at + len(ex.no_loss_text)
        hit = [i for i, (a, b) in enumerate(spans) if a < end and b > at]
        labels[row, [first + i for i in hit]] = IGNORE_INDEX

    def labels(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """-100 on prompt (up to and including ``<|im_start|>assistant\\n``), padding and ``<|latent|>`` slots."""
        positions = torch.arange(input_ids.shape[1]).expand_as(input_ids)
        last_start = torch.where(input_ids == self.im_start_id, positions, torch.full_like(positions, -1)).max(1).values
        start = (last_start + self.header_len).unsqueeze(1)
        labels = input_ids.clone()
        labels[(positions < start) | (attention_mask == 0) | (input_ids == self.latent_id)] = IGNORE_INDEX
        return labels


def _letter_pairs(tok) -> torch.Tensor:
    """(previous token, letter token) id pairs of an option letter in a response: "… option B" and
    "<answer>B</answer>" (the letter may merge with the tag's ``>``), rows [8, 2]."""
    pairs = set()
    for letter in "ABCD":
        for text in (f" option {letter}.", f"<answer>{letter}</answer>"):
            ids = tok(text, add_special_tokens=False)["input_ids"]
            pos = next(i for i, t in enumerate(ids) if letter in tok.convert_ids_to_tokens(t))
            pairs.add((ids[pos - 1], ids[pos]))
    return torch.tensor(sorted(pairs))


def _is_letter(input_ids: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
    """Bool [B, T]: position t holds an option letter (``(input_ids[t-1], input_ids[t])`` is one of ``pairs``)."""
    prev = torch.cat([torch.full_like(input_ids[:, :1], -1), input_ids[:, :-1]], dim=1)
    hit = (prev.unsqueeze(-1) == pairs[:, 0]) & (input_ids.unsqueeze(-1) == pairs[:, 1])
    return hit.any(-1)


def latent_pixel_inputs(processor: Qwen3VLProcessor, latent_config: LatentConfig, frames: list[Image.Image]
                        ) -> tuple[dict, list[int]]:
    """Future frames resized to the latent pixel cap → (image-processor output, K latents per frame): the inputs of
    :meth:`fl1_core.model.FutureL1Model.latent_targets`."""
    cap = latent_config.latent_max_pixels
    out = processor.image_processor(images=frames, size={"shortest_edge": 32 * 32, "longest_edge": cap},
                                    return_tensors="pt")
    merge = processor.image_processor.merge_size ** 2
    counts = (out["image_grid_thw"].prod(-1) // merge).tolist()
    if latent_config.pooled_latent_tokens is not None:
        counts = [latent_config.pooled_latent_tokens] * len(counts)
    return out, counts


def question_images_kwargs(processor: Any, max_pixels: int | None) -> dict:
    """``images_kwargs`` for a processor call that caps every question image at ``max_pixels`` (never above the
    processor's own cap; ``{}`` when ``max_pixels`` is None)."""
    if max_pixels is None:
        return {}
    if max_pixels < 1:
        raise ValueError(f"question max_pixels must be >= 1 or None, got {max_pixels}")
    ip = processor.image_processor
    longest = min(int(ip.size["longest_edge"]), int(max_pixels))
    return {"size": {"shortest_edge": min(int(ip.size["shortest_edge"]), longest), "longest_edge": longest}}


def encode_texts(processor: Qwen3VLProcessor, texts: list[str], examples: list[SFTExample] | list[PromptExample],
                 question_max_pixels: int | None = None) -> dict:
    """One processor call over chat texts + every example's question images / video (with its real fps), padded on
    the processor's side. SFT batches, curation's likelihood pass and each generation prompt
    (:func:`fl1_core.data.prompt_inputs.encode_prompt`) go through it. Question images are resized to at most
    ``question_max_pixels`` pixels (:func:`question_images_kwargs`; None: the processor's own cap)."""
    images = [im for ex in examples for im in ex.question_images]
    videos = [ex.question_video for ex in examples if ex.question_video is not None]
    kwargs: dict = {}
    if images:
        kwargs["images"] = images
        capped = question_images_kwargs(processor, question_max_pixels)
        if capped:
            kwargs["images_kwargs"] = capped
    if videos:
        kwargs.update(
            videos=[v.frames for v in videos], video_metadata=[v.metadata() for v in videos], do_sample_frames=False
        )
    return dict(processor(text=texts, padding=True, return_tensors="pt", **kwargs))

