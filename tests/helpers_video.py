"""Shared fixture-video writers for tests (PyAV), reusable by any test module.

``write_colour_video`` writes a clip whose frame ``n`` is a flat colour ``frame_colour(n)``, so a test can check which
frame a loader returned from its pixel value alone. Colours are spread far apart in RGB so lossy coding cannot make
two frames look alike.
"""

from __future__ import annotations

import os
from pathlib import Path

import av
import numpy as np


def frame_colour(n: int) -> tuple[int, int, int]:
    """The flat RGB colour of frame ``n`` (distinct for n < 216, channels on a 6-level grid 20..220)."""
    levels = (20, 60, 100, 140, 180, 220)
    return (levels[n % 6], levels[(n // 6) % 6], levels[(n // 36) % 6])


def write_colour_video(
    path: str | os.PathLike,
    num_frames: int = 32,
    width: int = 64,
    height: int = 64,
    fps: int = 8,
    codec: str = "libx264",
) -> Path:
    """Write an mp4 of ``num_frames`` flat-colour frames (see :func:`frame_colour`) at high quality; return its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        if codec == "libx264":
            stream.options = {"crf": "1", "preset": "ultrafast", "bf": "0"}
        else:
            stream.bit_rate = 4_000_000
        for n in range(num_frames):
            img = np.empty((height, width, 3), dtype=np.uint8)
            img[:] = frame_colour(n)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_corrupt_file(path: str | os.PathLike, size: int = 4096, seed: int = 0) -> Path:
    """Write ``size`` random bytes with a video file name (an unreadable "video")."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes())
    return path


def write_empty_file(path: str | os.PathLike) -> Path:
    """Write a zero-byte file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path
