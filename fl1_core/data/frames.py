"""Frame pools and video frame loading with decord (docs/PAPER.md#frame-pool).

- :func:`frame_pool_indices`: the fixed 8-frame pool of a clip; record indices are 1-based into it.
- :func:`read_video_info`, :func:`load_frames`, :func:`load_pool_frames`, :func:`load_video_clip`: decord-based
  decoding with a small cache of opened readers; every failure is a :class:`VideoError` (a ``ValueError``).
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from PIL import Image


def frame_pool_indices(num_frames: int, pool_size: int = 8) -> list[int]:
    """0-based frame numbers of the fixed frame pool of a clip with ``num_frames`` frames (docs/PAPER.md#frame-pool).

    start s = 1 (0 if vlen <= 2); end e = vlen - 2 (vlen - 1 if vlen - 2 <= s); m = min(pool_size - 2, e - s);
    boundaries b_i = floor(s + 1 + i * (e - s - 1) / m) for i = 0..m; middles = (b_i + b_{i+1} - 1) // 2;
    pool = [s] + middles + [e], padded to ``pool_size`` by repeating its last entry.
    Record indices (``image`` / ``reasoning_image``) are 1-based into this pool.

    >>> frame_pool_indices(32)
    [1, 3, 8, 13, 17, 22, 27, 30]
    >>> frame_pool_indices(8)
    [1, 1, 2, 3, 4, 5, 6, 6]
    """
    if not isinstance(num_frames, int) or num_frames < 1:
        raise ValueError(f"num_frames must be a positive int, got {num_frames!r}")
    if pool_size < 2:
        raise ValueError(f"pool_size must be >= 2, got {pool_size}")
    start = 0 if num_frames <= 2 else 1
    end = num_frames - 2
    if end <= start:
        end = num_frames - 1
    m = min(pool_size - 2, end - start)
    if m <= 0:
        pool = [start, end]
    else:
        lo, span = start + 1, end - start - 1
        # integer parts of m + 1 evenly spaced values from lo to end, computed exactly
        bounds = [lo + (i * span) // m for i in range(m + 1)]
        middles = [(a + b - 1) // 2 for a, b in zip(bounds, bounds[1:])]
        pool = [start] + middles + [end]
    pool = pool[:pool_size]
    return pool + [pool[-1]] * (pool_size - len(pool))


# ---------------------------------------------------------------------------------------------------------------------
# Video I/O with decord
# ---------------------------------------------------------------------------------------------------------------------

logger = logging.getLogger(__name__)

MAX_CACHED_READERS = 16
"""How many opened decord readers :func:`load_frames` and friends keep (least recently used are closed first)."""


class VideoError(ValueError):
    """A video that cannot be used: missing, empty, corrupt, without frames, or a frame number out of range."""


@dataclass(frozen=True)
class VideoInfo:
    """Basic facts of a video file as decord reads them."""

    num_frames: int
    fps: float
    width: int
    height: int

    @property
    def duration(self) -> float | None:
        """Duration in seconds (``None`` when the container reports no frame rate)."""
        return self.num_frames / self.fps if self.fps > 0 else None


class VideoClip(NamedTuple):
    """Frames sampled from a video for the Qwen3-VL video processor (see :func:`load_video_clip`)."""

    frames: np.ndarray  # [T, H, W, 3] uint8 RGB
    info: VideoInfo
    frame_indices: list[int]  # 0-based frame numbers of ``frames`` in the source video

    def video_metadata(self) -> dict[str, Any]:
        """``video_metadata`` for ``Qwen3VLProcessor(..., videos=[clip.frames], do_sample_frames=False)``.

        The keys are those of ``transformers.video_utils.VideoMetadata``, so the processor computes frame timestamps
        from the real fps and the real frame numbers instead of assuming 24 fps.
        """
        return {
            "total_num_frames": self.info.num_frames,
            "fps": self.info.fps,
            "width": self.info.width,
            "height": self.info.height,
            "duration": self.info.duration,
            "video_backend": "decord",
            "frames_indices": list(self.frame_indices),
        }


@dataclass
class _Entry:
    reader: Any
    path: Path
    info: VideoInfo
    channels: int  # what decord reports per pixel; != 3 for its row-padding quirk (see _fix_stride)


class _ReaderCache:
    """A small thread-safe LRU cache of opened ``decord.VideoReader`` objects, keyed on path + size + mtime."""

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self._entries: OrderedDict[tuple[str, int, int], _Entry] = OrderedDict()
        self._lock = threading.RLock()
        self.opens = 0  # how many times a file was actually opened (tests check that readers are reused)

    def get(self, path: str | os.PathLike) -> _Entry:
        p = Path(path).expanduser()
        if not p.exists():
            raise VideoError(f"video file not found: {p}")
        if not p.is_file():
            raise VideoError(f"video path is not a file: {p}")
        st = p.stat()
        if st.st_size == 0:
            raise VideoError(f"video file is empty (0 bytes): {p}")
        key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
                return entry
            entry = _open_entry(p)
            self.opens += 1
            self._entries[key] = entry
            while len(self._entries) > self.max_size:
                self._entries.popitem(last=False)
            return entry

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def _open_entry(p: Path) -> _Entry:
    import decord  # local import: decord is heavy and only needed for real video

    try:
        reader = decord.VideoReader(str(p), ctx=decord.cpu(0), num_threads=1)
    except Exception as exc:  # decord raises RuntimeError / DECORDError for anything unreadable
        raise VideoError(f"cannot open video {p}: corrupt or unsupported file ({_short(exc)})") from exc
    num_frames = len(reader)
    if num_frames <= 0:
        raise VideoError(f"video has no frames: {p}")
    try:
        fps = float(reader.get_avg_fps())
    except Exception:  # some containers report no rate
        fps = 0.0
    if not np.isfinite(fps) or fps < 0:
        fps = 0.0
    try:
        first = reader[0]
        height, width, channels = (int(x) for x in first.shape)
    except Exception as exc:
        raise VideoError(f"cannot decode the first frame of {p} ({_short(exc)})") from exc
    info = VideoInfo(num_frames=int(num_frames), fps=fps, width=width, height=height)
    return _Entry(reader=reader, path=p, info=info, channels=channels)


_CACHE = _ReaderCache(MAX_CACHED_READERS)


def _short(exc: BaseException, limit: int = 200) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def clear_reader_cache() -> None:
    """Close every cached decord reader (e.g. after video files were rewritten, or before forking workers)."""
    _CACHE.clear()


def read_video_info(path: str | os.PathLike) -> VideoInfo:
    """Frame count, average fps and frame size of a video; raises :class:`VideoError` if it is unusable."""
    return _CACHE.get(path).info


def _fix_stride(arr: np.ndarray, width: int) -> np.ndarray:
    """Undo decord 0.6's row padding: for some widths (16, 24, 48, 72, …) it returns [H, W, C != 3] where each row
    is really ``W * 3`` RGB bytes followed by padding."""
    h = arr.shape[0]
    return arr.reshape(h, -1)[:, : width * 3].reshape(h, width, 3)


def _get_batch(entry: _Entry, frame_numbers: list[int]) -> np.ndarray:
    """Decode frames as [N, H, W, 3] uint8 (one batched call; per-frame for decord's padded-row widths)."""
    reader, path, info = entry.reader, entry.path, entry.info
    try:
        if entry.channels == 3:
            batch = reader.get_batch(frame_numbers)
            arr = batch.asnumpy() if hasattr(batch, "asnumpy") else np.asarray(batch)
        else:  # decord's batched copy fails its size check on these widths; decode one by one, in file order
            decoded = {n: _fix_stride(reader[n].asnumpy(), info.width) for n in sorted(set(frame_numbers))}
            arr = np.stack([decoded[n] for n in frame_numbers])
    except VideoError:
        raise
    except Exception as exc:
        raise VideoError(f"cannot decode frames {frame_numbers[:8]} of {path} ({_short(exc)})") from exc
    expected = (len(frame_numbers), info.height, info.width, 3)
    if arr.shape != expected:
        raise VideoError(f"decord returned frames of shape {arr.shape} for {path}, expected {expected}")
    return np.ascontiguousarray(arr, dtype=np.uint8)


def _check_frame_numbers(frame_numbers: Sequence[int], info: VideoInfo, path: Path) -> list[int]:
    out = []
    for n in frame_numbers:
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
            raise VideoError(f"frame numbers must be ints, got {n!r} for {path}")
        if not 0 <= int(n) < info.num_frames:
            raise VideoError(f"frame number {int(n)} outside 0..{info.num_frames - 1} of {path}")
        out.append(int(n))
    return out


def load_frames(path: str | os.PathLike, frame_numbers: Sequence[int]) -> list[Image.Image]:
    """Decode the 0-based ``frame_numbers`` of a video (one batched decord call) as RGB PIL images, in the given order.

    Repeated numbers are allowed and decoded once. Raises :class:`VideoError` for a missing/corrupt video or a frame
    number outside ``0..num_frames-1``.
    """
    entry = _CACHE.get(path)
    numbers = _check_frame_numbers(frame_numbers, entry.info, entry.path)
    if not numbers:
        return []
    unique = sorted(set(numbers))
    arr = _get_batch(entry, unique)
    row = {n: i for i, n in enumerate(unique)}
    return [Image.fromarray(arr[row[n]]) for n in numbers]


def pool_frame_numbers(num_frames: int, indices: Sequence[int], pool_size: int = 8) -> list[int]:
    """Map 1-based pool ``indices`` (record ``image`` / ``reasoning_image``) to 0-based frame numbers of a clip."""
    pool = frame_pool_indices(num_frames, pool_size)
    out = []
    for i in indices:
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not 1 <= int(i) <= pool_size:
            raise VideoError(f"pool index {i!r} outside 1..{pool_size}")
        out.append(pool[int(i) - 1])
    return out


def load_pool_frames(path: str | os.PathLike, indices: Sequence[int], pool_size: int = 8) -> list[Image.Image]:
    """Load the frames named by 1-based indices into the clip's fixed ``pool_size``-frame pool (docs/PAPER.md#frame-pool)."""
    info = read_video_info(path)
    return load_frames(path, pool_frame_numbers(info.num_frames, indices, pool_size))


def uniform_frame_numbers(total: int, count: int) -> list[int]:
    """``count`` frame numbers spread uniformly over ``0..total-1`` (first and last included), like Qwen3-VL."""
    if total < 1:
        raise ValueError(f"total must be >= 1, got {total}")
    count = max(1, min(int(count), total))
    return [int(x) for x in np.linspace(0, total - 1, count).round().astype(int)]


def load_video_clip(
    path: str | os.PathLike,
    num_frames: int | None = None,
    fps: float | None = None,
    max_frames: int | None = None,
) -> VideoClip:
    """Sample frames of a whole (prefix) video for the Qwen3-VL video processor.

    - ``num_frames``: up to that many frames, uniformly spaced over the clip (first and last frame included);
    - ``fps``: a target sampling rate, i.e. ``round(duration * fps)`` frames (at least 1), uniformly spaced;
    - neither: every frame. ``max_frames`` caps the count in every mode.

    Returns ``VideoClip(frames [T, H, W, 3] uint8, info, frame_indices)``; pass ``clip.video_metadata()`` to the
    processor with ``do_sample_frames=False`` so timestamps use the real fps.
    """
    if num_frames is not None and fps is not None:
        raise ValueError("num_frames and fps are mutually exclusive")
    if num_frames is not None and num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if fps is not None and not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    entry = _CACHE.get(path)
    info, p = entry.info, entry.path
    if not info.fps > 0:
        # Qwen3-VL's processor divides by the fps for its "<t seconds>" timestamps: reject here, with the file named
        raise VideoError(f"video reports no frame rate (fps {info.fps:g}); Qwen3-VL timestamps need it: {p}")
    if num_frames is not None:
        count = num_frames
    elif fps is not None:
        count = max(1, int(round(info.num_frames / info.fps * fps)))
    else:
        count = info.num_frames
    if max_frames is not None:
        count = min(count, max_frames)
    indices = uniform_frame_numbers(info.num_frames, count)
    frames = _get_batch(entry, indices)
    logger.debug("loaded %d of %d frames of %s", len(indices), info.num_frames, p)
    return VideoClip(frames=frames, info=info, frame_indices=indices)
