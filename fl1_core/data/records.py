"""The records of docs/PAPER.md#data-formats (frozen dataclasses), load results, rejects and the format constants; validation lives
in :mod:`fl1_core.data.validation`, readers and loaders in :mod:`fl1_core.data.formats`."""

from __future__ import annotations

import io
import json
import logging
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

from fl1_core.data.frames import pool_frame_numbers
from fl1_core.answers import ANSWER_SPAN as _ANSWER_SPAN  # the one <answer> pattern
from fl1_core.tokens import IMAGE_PLACEHOLDER, MCQ_INSTRUCTION, split_trajectory

logger = logging.getLogger(__name__)

OnError = Literal["raise", "skip"]

POOL_SIZE = 8
RIMAGE_PLACEHOLDER = "<rimage>"
OPTION_LETTERS = ("A", "B", "C", "D")
QUESTION_TYPES = ("hop1", "hop2", "hop3", "hop5")
QUESTION_TYPE_LABELS = {"hop1": "1-hop", "hop2": "2-hop", "hop3": "3-hop", "hop5": "Interp."}
HUMAN_ROLES = ("human", "user")
GPT_ROLES = ("gpt", "assistant")


# ---------------------------------------------------------------------------------------------------------------------
# Errors, rejects, results
# ---------------------------------------------------------------------------------------------------------------------


class RecordError(ValueError):
    """A record that does not follow its format: names the record id, the field and what was expected."""

    def __init__(self, record_id: str, field: str, reason: str) -> None:
        self.record_id, self.field, self.reason = record_id, field, reason
        super().__init__(f"record {record_id!r}: field {field!r}: {reason}")


class DataFileError(ValueError):
    """A data file that cannot be read at all (missing, not JSON/JSONL/parquet, not a list of records)."""


@dataclass(frozen=True)
class Reject:
    """One rejected record: its id (or ``#position``), the offending field and why."""

    record_id: str
    field: str
    reason: str
    position: int | None = None
    source: str | None = None

    def __str__(self) -> str:
        return str(RecordError(self.record_id, self.field, self.reason))


T = TypeVar("T")


@dataclass(frozen=True)
class LoadResult(Generic[T]):
    """Validated records plus the rejects of a load; iterating / indexing / ``len`` go over the records."""

    records: list[T]
    rejects: list[Reject] = field(default_factory=list)

    def __iter__(self) -> Iterator[T]:
        return iter(self.records)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> T:
        return self.records[i]


class _Invalid(Exception):
    """Internal: raised by validators, turned into a Reject or a RecordError by the loader loop."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field, self.reason = field, reason


def write_rejects(rejects: Sequence[Reject], path: str | os.PathLike) -> Path:
    """Write rejects as JSONL (one ``{"record_id", "field", "reason", "position", "source"}`` per line), atomically."""
    from fl1_core.runs import atomic_write_text

    return atomic_write_text(path, "".join(json.dumps(asdict(r), ensure_ascii=False) + "\n" for r in rejects))


def read_rejects(path: str | os.PathLike) -> list[Reject]:
    """Read a rejects JSONL written by :func:`write_rejects`."""
    out = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip():
            out.append(Reject(**json.loads(line)))
    return out


# ---------------------------------------------------------------------------------------------------------------------
# Records
# ---------------------------------------------------------------------------------------------------------------------


def _question_text(text: str) -> str:
    return text.replace(IMAGE_PLACEHOLDER, "").strip()


@dataclass(frozen=True)
class SFTRecord:
    """A TwiFF / Future-L1-50K SFT record.

    Index variant: ``video`` + 1-based pool indices ``image`` (question frames) and ``reasoning_image`` (future frames,
    the latent targets). Image-path variant: ``image_paths`` / ``reasoning_image_paths`` (resolved) instead, and
    ``video`` may be ``None``. ``human`` is the user turn (``<image>`` markers then the question), ``gpt`` the
    trajectory ``THOUGHT 0: …<image>THOUGHT 1: …``.
    """

    id: str
    video: str | None
    image: tuple[int, ...]
    reasoning_image: tuple[int, ...]
    human: str
    gpt: str
    answer: str
    cot: str | None = None
    image_paths: tuple[str, ...] = ()
    reasoning_image_paths: tuple[str, ...] = ()
    meta: Mapping[str, Any] | None = field(default=None, compare=False, hash=False)
    position: int = -1

    @property
    def uses_image_paths(self) -> bool:
        """True for the image-path variant."""
        return bool(self.image_paths or self.reasoning_image_paths) or (self.video is None)

    @property
    def num_question_frames(self) -> int:
        return len(self.image_paths) if self.image_paths else len(self.image)

    @property
    def num_future_frames(self) -> int:
        return len(self.reasoning_image_paths) if self.reasoning_image_paths else len(self.reasoning_image)

    @property
    def question_text(self) -> str:
        """The question without its ``<image>`` markers."""
        return _question_text(self.human)

    @property
    def thoughts(self) -> list[str]:
        """The trajectory split on ``<image>``, ``THOUGHT n:`` prefixes stripped (one more than future frames)."""
        return split_trajectory(self.gpt)

    @property
    def conversations(self) -> list[dict[str, str]]:
        return [{"from": "human", "value": self.human}, {"from": "gpt", "value": self.gpt}]

    def frame_numbers(self, num_frames: int, pool_size: int = POOL_SIZE) -> tuple[list[int], list[int]]:
        """0-based video frame numbers of (question frames, future frames) for a clip of ``num_frames`` frames."""
        return (
            pool_frame_numbers(num_frames, self.image, pool_size),
            pool_frame_numbers(num_frames, self.reasoning_image, pool_size),
        )


@dataclass(frozen=True)
class RLRecord:
    """An RL record: question frames from the pool of ``video``, the question, the reference answer."""

    id: str
    video: str
    image: tuple[int, ...]
    human: str
    answer: str
    problem_type: str | None = None
    position: int = -1
    meta: Mapping[str, Any] | None = field(default=None, compare=False, hash=False)

    @property
    def question_text(self) -> str:
        """The question without its ``<image>`` markers."""
        return _question_text(self.human)

    @property
    def is_multiple_choice(self) -> bool:
        return (self.problem_type or "").strip().lower() == "multiple choice"

    @property
    def prompt_text(self) -> str:
        """The question, plus the single-letter instruction for multiple-choice problems (docs/PAPER.md#data-formats)."""
        q = self.question_text
        if self.is_multiple_choice and MCQ_INSTRUCTION not in q:
            q = f"{q}\n{MCQ_INSTRUCTION}"
        return q

    def frame_numbers(self, num_frames: int, pool_size: int = POOL_SIZE) -> list[int]:
        """0-based video frame numbers of the question frames for a clip of ``num_frames`` frames."""
        return pool_frame_numbers(num_frames, self.image, pool_size)


_EMBEDDED_OPTIONS = re.compile(r"(?s)\bA\).*\bB\).*\bC\).*\bD\)")


@dataclass(frozen=True)
class FutureBenchItem:
    """A FutureBench 4-option MCQ about the observed prefix video ``video_path``."""

    id: str
    question_type: str
    video_path: str
    question: str
    options: Mapping[str, str] = field(compare=False, hash=False)
    answer: str = ""
    position: int = -1

    @property
    def hop_label(self) -> str:
        """``1-hop`` / ``2-hop`` / ``3-hop`` / ``Interp.`` (hop5)."""
        return QUESTION_TYPE_LABELS[self.question_type]

    @property
    def options_embedded(self) -> bool:
        """True when the question text already lists ``A) … D)``."""
        return bool(_EMBEDDED_OPTIONS.search(self.question))

    def prompt_text(self) -> str:
        """The prompt of docs/PAPER.md#evaluation: question, ``A. …`` option lines unless already embedded, then the letter instruction."""
        parts = [self.question.strip()]
        if not self.options_embedded:
            parts += [f"{k}. {self.options[k]}" for k in sorted(self.options)]
        parts.append(MCQ_INSTRUCTION)
        return "\n".join(parts)


@dataclass(frozen=True)
class TwiffBenchItem:
    """A TwiFF-Bench open-ended item; ``doc_id`` is the row number over the sorted shards."""

    doc_id: int
    id: str
    question: str
    answer_raw: str
    reference_chain: str
    ground_truth: str
    question_images: tuple[bytes, ...] = field(repr=False)
    reasoning_images: tuple[bytes, ...] = field(repr=False)
    indices: Mapping[str, tuple[int, ...]] = field(default_factory=dict, compare=False, hash=False)
    meta_data: Mapping[str, Any] | None = field(default=None, compare=False, hash=False)
    source: str | None = None

    @property
    def question_text(self) -> str:
        """The question without its ``<image>`` markers."""
        return _question_text(self.question)

    @property
    def reference_steps(self) -> list[str]:
        """The reference chain split on ``<rimage>``, ``THOUGHT n:`` prefixes stripped."""
        return split_trajectory(self.reference_chain.replace(RIMAGE_PLACEHOLDER, IMAGE_PLACEHOLDER))

    def question_pil_images(self) -> list[Any]:
        """The question images decoded as RGB PIL images."""
        return [_decode_image(b) for b in self.question_images]

    def reasoning_pil_images(self) -> list[Any]:
        """The reference reasoning images decoded as RGB PIL images."""
        return [_decode_image(b) for b in self.reasoning_images]


def _decode_image(data: bytes) -> Any:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        return im.convert("RGB")




def parse_reference_chain(text: str) -> tuple[str, str]:
    """Split a TwiFF-Bench reference ``…<rimage>…<answer>X</answer>`` into (reasoning chain, ground-truth answer).

    The chain is the text before the first ``<answer>`` (``<rimage>`` markers kept); the answer is the stripped text
    inside the first ``<answer>…</answer>``. Raises ``ValueError`` when there is no closed answer span.
    """
    m = _ANSWER_SPAN.search(text)
    if m is None:
        raise ValueError("no <answer>...</answer> span")
    return text[: m.start()].strip(), m.group(1).strip()


