"""The real data formats of SPEC §8, as validated frozen records, and their loaders.

Formats: TwiFF / Future-L1-50K SFT records (:class:`SFTRecord`), RL records (:class:`RLRecord`), FutureBench items
(:class:`FutureBenchItem`) and TwiFF-Bench items (:class:`TwiffBenchItem`). Field-by-field rules: ``data/FORMATS.md``.

Every loader takes ``on_error``: ``"raise"`` stops at the first bad record with a :class:`RecordError` naming the record
id, the field and what was expected (``record 'sft_00012': field 'image': index 9 outside 1..8``); ``"skip"`` keeps
every good record and reports each bad one as a :class:`Reject` (write them with :func:`write_rejects`). Loaders
return a :class:`LoadResult`, which also behaves as the sequence of its records.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

from fl1_core.data.frames import VideoError, pool_frame_numbers, read_video_info
from fl1_core.tokens import ANSWER_CLOSE, ANSWER_OPEN, IMAGE_PLACEHOLDER, MCQ_INSTRUCTION, split_trajectory

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
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for r in rejects:
                f.write(json.dumps(asdict(r), ensure_ascii=False) + "\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


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

    @property
    def question_text(self) -> str:
        """The question without its ``<image>`` markers."""
        return _question_text(self.human)

    @property
    def is_multiple_choice(self) -> bool:
        return (self.problem_type or "").strip().lower() == "multiple choice"

    @property
    def prompt_text(self) -> str:
        """The question, plus the single-letter instruction for multiple-choice problems (SPEC §8)."""
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
        """SPEC §7 prompt: question, ``A. …`` option lines unless already embedded, then the letter instruction."""
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


_ANSWER_SPAN = re.compile(re.escape(ANSWER_OPEN) + r"(.*?)" + re.escape(ANSWER_CLOSE), re.DOTALL)


def parse_reference_chain(text: str) -> tuple[str, str]:
    """Split a TwiFF-Bench reference ``…<rimage>…<answer>X</answer>`` into (reasoning chain, ground-truth answer).

    The chain is the text before the first ``<answer>`` (``<rimage>`` markers kept); the answer is the stripped text
    inside the first ``<answer>…</answer>``. Raises ``ValueError`` when there is no closed answer span.
    """
    m = _ANSWER_SPAN.search(text)
    if m is None:
        raise ValueError("no <answer>...</answer> span")
    return text[: m.start()].strip(), m.group(1).strip()


# ---------------------------------------------------------------------------------------------------------------------
# Field validators (raise _Invalid)
# ---------------------------------------------------------------------------------------------------------------------

_MISSING = object()


def _type_name(v: Any) -> str:
    return "null" if v is None else type(v).__name__


def _get(row: Mapping[str, Any], name: str, label: str | None = None) -> Any:
    v = row.get(name, _MISSING)
    if v is _MISSING:
        raise _Invalid(label or name, "missing")
    return v


def _check_utf8(value: str, label: str) -> None:
    # undecodable bytes were decoded with surrogateescape; they show up as lone surrogates
    if any("\udc80" <= ch <= "\udcff" for ch in value):
        raise _Invalid(label, "not valid UTF-8 text")


def _text(v: Any, label: str, allow_empty: bool = False) -> str:
    if not isinstance(v, str):
        raise _Invalid(label, f"expected a string, got {_type_name(v)}")
    _check_utf8(v, label)
    if not allow_empty and not v.strip():
        raise _Invalid(label, "empty or whitespace-only text")
    return v


def _opt_text(row: Mapping[str, Any], name: str) -> str | None:
    v = row.get(name)
    return None if v is None else _text(v, name, allow_empty=True)


def _id(row: Mapping[str, Any], required: bool) -> str | None:
    v = row.get("id")
    if v is None:
        if required:
            raise _Invalid("id", "missing")
        return None
    if isinstance(v, bool) or not isinstance(v, (str, int)):
        raise _Invalid("id", f"expected a string or an int, got {_type_name(v)}")
    s = str(v)
    _check_utf8(s, "id")
    if not s.strip():
        raise _Invalid("id", "empty or whitespace-only text")
    return s


def _record_id(row: Any, position: int) -> str:
    """The id to name a record by in errors: its ``id`` if usable, else ``#position``."""
    if isinstance(row, Mapping):
        v = row.get("id")
        if isinstance(v, (str, int)) and not isinstance(v, bool) and str(v).strip():
            return str(v)
    return f"#{position}"


def _indices(v: Any, label: str, pool_size: int) -> tuple[int, ...]:
    if not isinstance(v, (list, tuple)):
        raise _Invalid(label, f"expected a list of 1-based pool indices, got {_type_name(v)}")
    out = []
    for i, x in enumerate(v):
        if isinstance(x, bool) or not isinstance(x, int):
            raise _Invalid(label, f"element {i}: expected an int pool index, got {_type_name(x)} {x!r}")
        if not 1 <= x <= pool_size:
            raise _Invalid(label, f"index {x} outside 1..{pool_size}")
        out.append(x)
    return tuple(out)


def _paths(v: list, label: str, root: Path) -> tuple[str, ...]:
    out = []
    for i, x in enumerate(v):
        if not isinstance(x, str) or not x.strip():
            raise _Invalid(label, f"element {i}: expected an image path string, got {_type_name(x)} {x!r}")
        _check_utf8(x, f"{label}[{i}]")
        out.append(_resolve(x, root))
    return tuple(out)


def _resolve(path: str, root: Path) -> str:
    p = Path(path).expanduser()
    return str(p if p.is_absolute() else root / p)


def _conversations(row: Mapping[str, Any], need_gpt: bool) -> tuple[str, str | None]:
    conv = _get(row, "conversations")
    if not isinstance(conv, list):
        raise _Invalid("conversations", f"expected a list of turns, got {_type_name(conv)}")
    expected = "[{from: human, value}, {from: gpt, value}]" if need_gpt else "[{from: human, value}, optional gpt turn]"
    if not conv or len(conv) > 2 or (need_gpt and len(conv) != 2):
        raise _Invalid("conversations", f"expected {expected}, got {len(conv)} turn(s)")
    values = []
    for i, (turn, roles) in enumerate(zip(conv, (HUMAN_ROLES, GPT_ROLES))):
        label = f"conversations[{i}]"
        if not isinstance(turn, Mapping):
            raise _Invalid(label, f"expected an object with 'from' and 'value', got {_type_name(turn)}")
        who = _get(turn, "from", f"{label}.from")
        if who not in roles:
            raise _Invalid(f"{label}.from", f"expected {roles[0]!r}, got {who!r}")
        values.append(_text(_get(turn, "value", f"{label}.value"), f"{label}.value"))
    return values[0], (values[1] if len(values) > 1 else None)


def _check_markers(text: str, n: int, text_label: str, list_name: str, marker: str = IMAGE_PLACEHOLDER) -> None:
    k = text.count(marker)
    if k != n:
        raise _Invalid(text_label, f"has {k} {marker} marker(s) but '{list_name}' lists {n} frame(s)")


def _mapping(v: Any, label: str) -> Mapping[str, Any] | None:
    if v is None:
        return None
    if isinstance(v, str):  # parquet / csv exports often carry JSON-encoded metadata
        try:
            v = json.loads(v)
        except json.JSONDecodeError as exc:
            raise _Invalid(label, f"expected an object or a JSON object string ({exc.msg})") from None
    if not isinstance(v, Mapping):
        raise _Invalid(label, f"expected an object, got {_type_name(v)}")
    return dict(v)


# ---------------------------------------------------------------------------------------------------------------------
# Media checks (each unique file opened once per load)
# ---------------------------------------------------------------------------------------------------------------------


class _MediaChecker:
    def __init__(self) -> None:
        self._videos: dict[str, str | None] = {}
        self._images: dict[str, str | None] = {}

    def video(self, path: str, label: str) -> None:
        if path not in self._videos:
            try:
                info = read_video_info(path)
                self._videos[path] = None if info.fps > 0 else (
                    f"video reports no frame rate (fps {info.fps:g}); Qwen3-VL timestamps need it: {path}")
            except VideoError as exc:
                self._videos[path] = str(exc)
        if self._videos[path] is not None:
            raise _Invalid(label, self._videos[path])

    def image(self, path: str, label: str) -> None:
        if path not in self._images:
            self._images[path] = _image_file_problem(path)
        if self._images[path] is not None:
            raise _Invalid(label, self._images[path])


def _image_file_problem(path: str) -> str | None:
    from PIL import Image

    p = Path(path)
    if not p.is_file():
        return f"image file not found: {p}"
    if p.stat().st_size == 0:
        return f"image file is empty (0 bytes): {p}"
    try:
        with Image.open(p) as im:
            im.verify()
    except Exception as exc:
        return f"cannot decode image {p}: {' '.join(str(exc).split())[:160]}"
    return None


def _image_bytes_problem(data: bytes) -> str | None:
    from PIL import Image

    if not data:
        return "empty image bytes"
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.verify()
    except Exception as exc:
        return f"cannot decode image bytes: {' '.join(str(exc).split())[:160]}"
    return None


# ---------------------------------------------------------------------------------------------------------------------
# Row parsers: raw mapping -> record (raise _Invalid)
# ---------------------------------------------------------------------------------------------------------------------


def _require_mapping(row: Any) -> Mapping[str, Any]:
    if not isinstance(row, Mapping):
        raise _Invalid("<record>", f"expected a JSON object, got {_type_name(row)}")
    return row


def _parse_sft_record(
    row: Any,
    position: int,
    root: Path,
    pool_size: int = POOL_SIZE,
    media: _MediaChecker | None = None,
) -> SFTRecord:
    """Validate one raw SFT row (``root`` resolves relative paths)."""
    row = _require_mapping(row)
    rid = _id(row, required=False) or f"#{position}"
    human, gpt = _conversations(row, need_gpt=True)
    assert gpt is not None
    answer = _text(_get(row, "answer"), "answer")
    cot = _opt_text(row, "cot")
    meta = _mapping(row.get("meta"), "meta")

    image_raw, reasoning_raw = _get(row, "image"), _get(row, "reasoning_image")
    for name, v in (("image", image_raw), ("reasoning_image", reasoning_raw)):
        if not isinstance(v, list):
            raise _Invalid(name, f"expected a list of 1-based pool indices or of image paths, got {_type_name(v)}")
    every = list(image_raw) + list(reasoning_raw)
    use_paths = bool(every) and all(isinstance(x, str) for x in every)
    if not use_paths and any(isinstance(x, str) for x in every):
        name = "image" if any(isinstance(x, str) for x in image_raw) else "reasoning_image"
        raise _Invalid(name, "mixes image paths and pool indices; use indices for both lists or paths for both")

    video_raw = row.get("video")
    video: str | None = None
    if video_raw is not None or not use_paths:
        video = _resolve(_text(video_raw if video_raw is not None else _get(row, "video"), "video"), root)

    if use_paths:
        image, reasoning = (), ()
        image_paths = _paths(image_raw, "image", root)
        reasoning_paths = _paths(reasoning_raw, "reasoning_image", root)
    else:
        image = _indices(image_raw, "image", pool_size)
        reasoning = _indices(reasoning_raw, "reasoning_image", pool_size)
        image_paths, reasoning_paths = (), ()
    n_q, n_f = len(image_raw), len(reasoning_raw)
    if n_q == 0:
        raise _Invalid("image", "expected at least one question frame")
    _check_markers(human, n_q, "conversations[0].value", "image")
    _check_markers(gpt, n_f, "conversations[1].value", "reasoning_image")
    if not _question_text(human):
        raise _Invalid("conversations[0].value", "no question text besides the <image> markers")

    if media is not None:
        if use_paths:
            for name, paths in (("image", image_paths), ("reasoning_image", reasoning_paths)):
                for i, p in enumerate(paths):
                    media.image(p, f"{name}[{i}]")
        if video is not None and not use_paths:
            media.video(video, "video")
    return SFTRecord(
        id=rid,
        video=video,
        image=image,
        reasoning_image=reasoning,
        human=human,
        gpt=gpt,
        answer=answer,
        cot=cot,
        image_paths=image_paths,
        reasoning_image_paths=reasoning_paths,
        meta=meta,
        position=position,
    )


def _parse_rl_record(
    row: Any,
    position: int,
    root: Path,
    pool_size: int = POOL_SIZE,
    media: _MediaChecker | None = None,
) -> RLRecord:
    """Validate one raw RL row."""
    row = _require_mapping(row)
    rid = _id(row, required=True)
    assert rid is not None
    video = _resolve(_text(_get(row, "video"), "video"), root)
    image = _indices(_get(row, "image"), "image", pool_size)
    if not image:
        raise _Invalid("image", "expected at least one question frame")
    human, _ = _conversations(row, need_gpt=False)
    _check_markers(human, len(image), "conversations[0].value", "image")
    if not _question_text(human):
        raise _Invalid("conversations[0].value", "no question text besides the <image> markers")
    answer = _text(_get(row, "answer"), "answer")
    problem_type = _opt_text(row, "problem_type")
    if media is not None:
        media.video(video, "video")
    return RLRecord(
        id=rid, video=video, image=image, human=human, answer=answer, problem_type=problem_type, position=position
    )


def _parse_futurebench_item(row: Any, position: int, root: Path, media: _MediaChecker | None = None) -> FutureBenchItem:
    """Validate one raw FutureBench row."""
    row = _require_mapping(row)
    rid = _id(row, required=True)
    assert rid is not None
    qtype = _get(row, "question_type")
    if not isinstance(qtype, str):
        raise _Invalid("question_type", f"expected one of {list(QUESTION_TYPES)}, got {_type_name(qtype)}")
    if qtype not in QUESTION_TYPES:
        raise _Invalid("question_type", f"unknown question type {qtype!r}; expected one of {list(QUESTION_TYPES)}")
    video = _resolve(_text(_get(row, "video_path"), "video_path"), root)
    qa = _get(row, "qa")
    if not isinstance(qa, Mapping):
        raise _Invalid("qa", f"expected an object with Question, Options, Answer, got {_type_name(qa)}")
    question = _text(_get(qa, "Question", "qa.Question"), "qa.Question")
    options_raw = _get(qa, "Options", "qa.Options")
    if not isinstance(options_raw, Mapping):
        raise _Invalid("qa.Options", f"expected an object with option letters A..D, got {_type_name(options_raw)}")
    options: dict[str, str] = {}
    for k, v in options_raw.items():
        if v is None:  # HF struct columns carry None for absent letters
            continue
        if k not in OPTION_LETTERS:
            raise _Invalid("qa.Options", f"unexpected option key {k!r}; expected letters A..D")
        options[k] = _text(v, f"qa.Options.{k}")
    if len(options) < 2:
        raise _Invalid("qa.Options", f"expected at least 2 options among A..D, got {sorted(options)}")
    answer = _get(qa, "Answer", "qa.Answer")
    if not isinstance(answer, str):
        raise _Invalid("qa.Answer", f"expected an option letter, got {_type_name(answer)}")
    letter = answer.strip()
    if letter not in options:
        raise _Invalid("qa.Answer", f"answer {answer!r} is not among the option letters {sorted(options)}")
    if media is not None:
        media.video(video, "video_path")
    return FutureBenchItem(
        id=rid,
        question_type=qtype,
        video_path=video,
        question=question,
        options=options,
        answer=letter,
        position=position,
    )


def _image_list(v: Any, label: str) -> tuple[bytes, ...]:
    if v is None:
        return ()
    if not isinstance(v, (list, tuple)):
        raise _Invalid(label, f"expected a list of image bytes, got {_type_name(v)}")
    out = []
    for i, x in enumerate(v):
        if isinstance(x, Mapping):  # HF Image feature: {"bytes": ..., "path": ...}
            x = x.get("bytes")
        if not isinstance(x, (bytes, bytearray)):
            raise _Invalid(f"{label}[{i}]", f"expected image bytes, got {_type_name(x)}")
        out.append(bytes(x))
    return tuple(out)


def _parse_twiffbench_item(
    row: Any, doc_id: int, source: str | None = None, check_images: bool = True
) -> TwiffBenchItem:
    """Validate one TwiFF-Bench parquet row (``doc_id`` = row number over the sorted shards)."""
    row = _require_mapping(row)
    meta = _mapping(row.get("meta_data"), "meta_data")
    rid = _id(row, required=False) or (str(meta["id"]) if meta and meta.get("id") not in (None, "") else f"#{doc_id}")
    question = _text(_get(row, "question"), "question")
    answer_raw = _text(_get(row, "answer"), "answer")
    try:
        chain, truth = parse_reference_chain(answer_raw)
    except ValueError:
        raise _Invalid("answer", "expected a reference chain ending in <answer>...</answer>") from None
    if not truth:
        raise _Invalid("answer", "empty text inside <answer>...</answer>")
    q_images = _image_list(_get(row, "question_images"), "question_images")
    r_images = _image_list(row.get("reasoning_images"), "reasoning_images")
    _check_markers(question, len(q_images), "question", "question_images")
    _check_markers(chain, len(r_images), "answer", "reasoning_images", RIMAGE_PLACEHOLDER)
    if not _question_text(question):
        raise _Invalid("question", "no question text besides the <image> markers")
    indices: dict[str, tuple[int, ...]] = {}
    for name, v in row.items():  # index lists (names vary between exports): kept when they are lists of ints
        if name.endswith(("indices", "index", "_idx")) and isinstance(v, (list, tuple)):
            if all(isinstance(x, int) and not isinstance(x, bool) for x in v):
                indices[name] = tuple(v)
    if check_images:
        for label, images in (("question_images", q_images), ("reasoning_images", r_images)):
            for i, b in enumerate(images):
                problem = _image_bytes_problem(b)
                if problem:
                    raise _Invalid(f"{label}[{i}]", problem)
    return TwiffBenchItem(
        doc_id=doc_id,
        id=rid,
        question=question,
        answer_raw=answer_raw,
        reference_chain=chain,
        ground_truth=truth,
        question_images=q_images,
        reasoning_images=r_images,
        indices=indices,
        meta_data=meta,
        source=source,
    )


# ---------------------------------------------------------------------------------------------------------------------
# File readers
# ---------------------------------------------------------------------------------------------------------------------


def _decode(data: bytes) -> str:
    # surrogateescape keeps bad bytes as lone surrogates so only the records that contain them are rejected
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    return data.decode("utf-8", errors="surrogateescape")


def read_json_rows(path: str | os.PathLike) -> Iterator[tuple[int, Any, str | None]]:
    """Yield ``(position, row, problem)`` from a ``.json`` list or a ``.jsonl`` file.

    ``problem`` is set (and ``row`` is ``None``) for a JSONL line that is not valid JSON; a ``.json`` file that is not
    a list of records raises :class:`DataFileError`. Blank JSONL lines are skipped and do not count as positions.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"data file not found: {path}")
    text = _decode(path.read_bytes())
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        pos = 0
        for lineno, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                yield pos, json.loads(line), None
            except json.JSONDecodeError as exc:
                yield pos, None, f"line {lineno} is not valid JSON ({exc.msg})"
            pos += 1
        return
    if not text.strip():
        raise DataFileError(f"data file is empty: {path}")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataFileError(f"{path} is not valid JSON ({exc.msg} at line {exc.lineno}); expected a list") from None
    if isinstance(data, Mapping) and isinstance(data.get("data"), list):
        data = data["data"]
    if not isinstance(data, list):
        raise DataFileError(f"{path}: expected a JSON list of records, got {_type_name(data)}")
    for pos, row in enumerate(data):
        yield pos, row, None


def _find_bad_utf8(value: Any, label: str = "") -> str | None:
    """The field path of the first string holding undecodable bytes (lone surrogates), or ``None``."""
    if isinstance(value, str):
        return (label or "<record>") if any("\udc80" <= ch <= "\udcff" for ch in value) else None
    if isinstance(value, Mapping):
        for k, v in value.items():
            key = str(k)
            if any("\udc80" <= ch <= "\udcff" for ch in key):
                return f"{label}.{key}" if label else key
            found = _find_bad_utf8(v, f"{label}.{key}" if label else key)
            if found:
                return found
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            found = _find_bad_utf8(v, f"{label}[{i}]")
            if found:
                return found
    return None


def _check_on_error(on_error: str) -> None:
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")


def _run(
    rows: Iterator[tuple[int, Any, str | None]],
    parse: Any,
    on_error: str,
    source: str,
    id_of: Any = _record_id,
) -> LoadResult:
    records, rejects, seen = [], [], {}
    for pos, row, problem in rows:
        rid = id_of(row, pos)
        try:
            if problem is not None:
                raise _Invalid("<record>", problem)
            bad_utf8 = _find_bad_utf8(row)
            if bad_utf8 is not None:
                raise _Invalid(bad_utf8, "not valid UTF-8 text")
            rec = parse(row, pos)
        except _Invalid as bad:
            if on_error == "raise":
                raise RecordError(rid, bad.field, bad.reason) from None
            rejects.append(Reject(rid, bad.field, bad.reason, position=pos, source=source))
            continue
        if rec.id in seen:
            logger.warning("%s: record id %r repeats (positions %d and %d)", source, rec.id, seen[rec.id], pos)
        seen.setdefault(rec.id, pos)
        records.append(rec)
    level = logging.WARNING if rejects else logging.INFO
    logger.log(level, "%s: %d records loaded, %d rejected", source, len(records), len(rejects))
    return LoadResult(records, rejects)


def load_sft_records(
    path: str | os.PathLike,
    video_root: str | os.PathLike | None = None,
    on_error: OnError = "raise",
    check_videos: bool = True,
    pool_size: int = POOL_SIZE,
) -> LoadResult[SFTRecord]:
    """Load and validate TwiFF / Future-L1-50K SFT records from ``.json`` (list) or ``.jsonl``.

    Relative ``video`` / image paths resolve against ``video_root`` (default: the data file's directory).
    ``check_videos`` opens every unique video once (and checks image files in the image-path variant).
    """
    _check_on_error(on_error)
    path = Path(path)
    root = Path(video_root) if video_root is not None else path.parent
    media = _MediaChecker() if check_videos else None
    return _run(
        read_json_rows(path),
        lambda row, pos: _parse_sft_record(row, pos, root, pool_size, media),
        on_error,
        str(path),
    )


def load_rl_records(
    path: str | os.PathLike,
    video_root: str | os.PathLike | None = None,
    on_error: OnError = "raise",
    check_videos: bool = True,
    pool_size: int = POOL_SIZE,
) -> LoadResult[RLRecord]:
    """Load and validate RL records (``id``, ``video``, ``image``, ``conversations``, ``answer``, ``problem_type``)."""
    _check_on_error(on_error)
    path = Path(path)
    root = Path(video_root) if video_root is not None else path.parent
    media = _MediaChecker() if check_videos else None
    return _run(
        read_json_rows(path),
        lambda row, pos: _parse_rl_record(row, pos, root, pool_size, media),
        on_error,
        str(path),
    )


def _is_hf_dataset_dir(path: Path) -> bool:
    return path.is_dir() and any(
        (path / name).is_file() for name in ("dataset_info.json", "state.json", "dataset_dict.json")
    )


def _hf_rows(path: Path, split: str | None) -> Iterator[tuple[int, Any, str | None]]:
    try:
        import datasets  # type: ignore[import-not-found]
    except ImportError:
        raise ImportError(
            f"{path} is a Hugging Face `save_to_disk` directory; reading it needs the `datasets` package "
            "(pip install datasets), or export it to JSON/JSONL first"
        ) from None
    ds = datasets.load_from_disk(str(path))
    if isinstance(ds, datasets.DatasetDict):
        names = list(ds.keys())
        if split is None:
            if len(names) != 1:
                raise DataFileError(f"{path} holds splits {names}; pass split=...")
            split = names[0]
        if split not in ds:
            raise DataFileError(f"{path} has no split {split!r}; it holds {names}")
        ds = ds[split]
    for pos, row in enumerate(ds):
        yield pos, row, None


def load_futurebench(
    path: str | os.PathLike,
    video_root: str | os.PathLike | None = None,
    on_error: OnError = "raise",
    check_videos: bool = True,
    split: str | None = None,
) -> LoadResult[FutureBenchItem]:
    """Load FutureBench from JSON (list) / JSONL, or an HF ``save_to_disk`` directory (needs ``datasets``).

    Relative ``video_path`` values resolve against ``video_root`` (default: the file's directory, or the dataset
    directory itself).
    """
    _check_on_error(on_error)
    path = Path(path)
    if path.is_dir():
        if not _is_hf_dataset_dir(path):
            raise DataFileError(f"{path} is a directory but not a Hugging Face save_to_disk dataset")
        rows, default_root = _hf_rows(path, split), path
    else:
        rows, default_root = read_json_rows(path), path.parent
    root = Path(video_root) if video_root is not None else default_root
    media = _MediaChecker() if check_videos else None
    return _run(rows, lambda row, pos: _parse_futurebench_item(row, pos, root, media), on_error, str(path))


def twiffbench_shards(path: str | os.PathLike) -> list[Path]:
    """The parquet shard(s) of TwiFF-Bench: ``path`` itself, or the sorted ``*.parquet`` files of a directory."""
    path = Path(path)
    if path.is_file():
        return [path]
    if path.is_dir():
        shards = sorted(path.glob("*.parquet"))
        if not shards:
            raise DataFileError(f"no *.parquet shards in {path}")
        return shards
    raise DataFileError(f"TwiFF-Bench path not found: {path}")


def load_twiffbench(
    path: str | os.PathLike,
    on_error: OnError = "raise",
    check_images: bool = True,
) -> LoadResult[TwiffBenchItem]:
    """Load TwiFF-Bench parquet shard(s); row order over the sorted shards is the ``doc_id``.

    Each reference ``answer`` is parsed into ``reference_chain`` and ``ground_truth``; ``check_images`` decodes every
    image header once.
    """
    import pyarrow.parquet as pq

    _check_on_error(on_error)
    shards = twiffbench_shards(path)

    shard_of: dict[int, str] = {}

    def rows() -> Iterator[tuple[int, Any, str | None]]:
        doc_id = 0
        for shard in shards:
            try:
                table = pq.read_table(shard)
            except Exception as exc:
                raise DataFileError(f"cannot read parquet shard {shard}: {exc}") from exc
            for row in table.to_pylist():
                shard_of[doc_id] = str(shard)
                yield doc_id, row, None
                doc_id += 1

    def id_of(row: Any, doc_id: int) -> str:
        rid = _record_id(row, doc_id)
        if rid.startswith("#") and isinstance(row, Mapping):
            try:
                meta = _mapping(row.get("meta_data"), "meta_data")
            except _Invalid:
                meta = None
            if meta and meta.get("id") not in (None, ""):
                rid = str(meta["id"])
        return rid

    return _run(
        rows(),
        lambda row, doc_id: _parse_twiffbench_item(row, doc_id, shard_of.get(doc_id), check_images),
        on_error,
        str(path),
        id_of=id_of,
    )


__all__ = [
    "DataFileError",
    "FutureBenchItem",
    "LoadResult",
    "OPTION_LETTERS",
    "QUESTION_TYPES",
    "QUESTION_TYPE_LABELS",
    "RLRecord",
    "RecordError",
    "Reject",
    "SFTRecord",
    "TwiffBenchItem",
    "load_futurebench",
    "load_rl_records",
    "load_sft_records",
    "load_twiffbench",
    "parse_reference_chain",
    "read_json_rows",
    "read_rejects",
    "twiffbench_shards",
    "write_rejects",
]
