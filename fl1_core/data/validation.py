"""Field-by-field validation of raw rows into records (docs/PAPER.md#data-formats; the rules are documented in ``data/FORMATS.md``)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fl1_core.data.frames import VideoError, read_video_info
from fl1_core.data.records import (
    GPT_ROLES,
    HUMAN_ROLES,
    OPTION_LETTERS,
    POOL_SIZE,
    QUESTION_TYPES,
    RIMAGE_PLACEHOLDER,
    FutureBenchItem,
    RLRecord,
    SFTRecord,
    TwiffBenchItem,
    _Invalid,
    _question_text,
    parse_reference_chain,
)
from fl1_core.tokens import IMAGE_PLACEHOLDER

logger = logging.getLogger(__name__)

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


def _check_frame_meta(meta: Mapping[str, Any] | None, pool_size: int, reasoning: tuple[int, ...] = ()) -> None:
    """A frame-needing item (``meta.needs_frame``) must name its asked frame: ``meta.frame_index``, a 1-based pool
    index, which is the last reasoning frame of an SFT record."""
    if not meta or not meta.get("needs_frame"):
        return
    idx = meta.get("frame_index")
    if isinstance(idx, bool) or not isinstance(idx, int):
        raise _Invalid("meta.frame_index", f"a frame-needing item needs the 1-based pool index of its asked frame, "
                                           f"got {_type_name(idx)}")
    if not 1 <= idx <= pool_size:
        raise _Invalid("meta.frame_index", f"expected a pool index in 1..{pool_size}, got {idx}")
    if reasoning and reasoning[-1] != idx:
        raise _Invalid("meta.frame_index", f"is {idx} but the last reasoning frame is {reasoning[-1]}")


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
    _check_frame_meta(meta, pool_size, reasoning)

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
    meta = _mapping(row.get("meta"), "meta")
    _check_frame_meta(meta, pool_size)
    if media is not None:
        media.video(video, "video")
    return RLRecord(
        id=rid, video=video, image=image, human=human, answer=answer, problem_type=problem_type, position=position,
        meta=meta,
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


