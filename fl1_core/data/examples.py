"""From validated records (``fl1_core.data.formats``) to model-ready examples (``fl1_core.data.collator``).

Frames are decoded with decord here, lazily, so a torch ``Dataset`` over records costs nothing until iterated.
"""

from __future__ import annotations

from collections.abc import Sequence

from PIL import Image

from .collator import PromptExample, QuestionVideo, SFTExample
from .records import FutureBenchItem, RLRecord, SFTRecord, TwiffBenchItem
from .frames import load_pool_frames, load_video_clip


def _open_images(paths: Sequence[str]) -> list[Image.Image]:
    return [Image.open(p).convert("RGB") for p in paths]


def sft_example(record: SFTRecord, *, with_future: bool = True) -> SFTExample:
    """Question frames and future frames of an SFT record (frame-index or image-path variant)."""
    if record.uses_image_paths:
        question = _open_images(record.image_paths)
        future = _open_images(record.reasoning_image_paths) if with_future else []
    else:
        question = load_pool_frames(record.video, list(record.image))
        future = load_pool_frames(record.video, list(record.reasoning_image)) if with_future else []
    return SFTExample(
        id=record.id,
        question=record.question_text,
        thoughts=list(record.thoughts),
        answer=record.answer,
        question_images=question,
        future_frames=future,
    )


def hinted_prompt(record: SFTRecord) -> PromptExample:
    """Visual-gain probe "hinted": the question frames followed by the record's future frames as extra images."""
    ex = sft_example(record)
    return PromptExample(
        id=record.id,
        question=ex.question + "\nThe following images show how the scene continues.",
        question_images=ex.question_images + ex.future_frames,
    )


def text_only_prompt(record: SFTRecord) -> PromptExample:
    """Visual-gain probe "text-only": the question frames and the question, no future hints."""
    ex = sft_example(record, with_future=False)
    return PromptExample(id=record.id, question=ex.question, question_images=ex.question_images)


def rl_prompt(record: RLRecord) -> PromptExample:
    """An RL prompt: the record's pool frames as images, the question (MCQ rows get the single-letter instruction)."""
    return PromptExample(id=record.id, question=record.prompt_text, question_images=load_pool_frames(record.video, list(record.image)))


def futurebench_prompt(item: FutureBenchItem, *, num_frames: int = 32) -> PromptExample:
    """A FutureBench prompt: the observed prefix video (up to ``num_frames`` uniformly sampled, real fps)."""
    clip = load_video_clip(item.video_path, num_frames=num_frames)
    frames = clip.frames
    if len(frames) % 2:  # Qwen3-VL merges frames in temporal pairs
        frames = frames[:-1] if len(frames) > 1 else frames.repeat(2, axis=0)
        indices = clip.frame_indices[: len(frames)] if len(clip.frame_indices) > 1 else clip.frame_indices * 2
    else:
        indices = clip.frame_indices
    return PromptExample(
        id=item.id,
        question=item.prompt_text(),
        question_video=QuestionVideo(frames=frames, fps=clip.info.fps, frame_indices=list(indices)),
    )


def twiffbench_prompt(item: TwiffBenchItem) -> PromptExample:
    """A TwiFF-Bench prompt: the question images, then the question text."""
    return PromptExample(id=str(item.doc_id), question=item.question_text, question_images=item.question_pil_images())


