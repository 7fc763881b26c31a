"""Rendering of simulated clips to RGB frames (numpy), deterministic mp4 (PyAV, libx264) and PNG bytes (PIL)."""

from __future__ import annotations

import io
import logging
import os
from pathlib import Path

import av
import numpy as np
from PIL import Image

from .physics import Simulation

log = logging.getLogger(__name__)

BACKGROUND = (236, 236, 228)
WALL = (105, 105, 115)
LEDGE = (150, 105, 60)
SWITCH = (0, 150, 150)
LAMP_OFF = (70, 70, 70)
LAMP_ON = (255, 245, 150)
LAMP_RING = (40, 40, 40)

_CODECS = ("libx264", "mpeg4")


def render_frame(sim: Simulation, k: int) -> np.ndarray:
    """The RGB frame ``k`` (uint8, H x W x 3) of a simulation."""
    sc = sim.scene
    H, W = sc.height, sc.width
    img = np.empty((H, W, 3), dtype=np.uint8)
    img[:] = BACKGROUND
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32) + 0.5
    wall = int(round(sc.wall))
    img[:, :wall] = WALL
    img[:, W - wall :] = WALL
    img[int(round(sc.floor_y)) :, :] = WALL
    if sc.switch_side is not None:
        y0, y1 = int(round(sc.floor_y - sc.switch_height)), int(round(sc.floor_y))
        x0, x1 = (0, wall) if sc.switch_side == "left" else (W - wall, W)
        img[y0:y1, x0:x1] = SWITCH
        cx, cy, r = sc.lamp
        d2 = (xx - cx) ** 2 + (yy - cy) ** 2
        img[d2 <= (r + 1.5) ** 2] = LAMP_RING
        on = sim.light_on_frame is not None and k >= sim.light_on_frame
        img[d2 <= r**2] = LAMP_ON if on else LAMP_OFF
    lg = sc.ledge
    if lg is not None:
        img[int(round(lg.top)) : int(round(lg.top + lg.thickness)), int(round(lg.x0)) : int(round(lg.x1))] = LEDGE
    for i, b in enumerate(sim.scene.bodies):
        x, y = float(sim.states[k, i, 0]), float(sim.states[k, i, 1])
        if b.shape == "ball":
            img[(xx - x) ** 2 + (yy - y) ** 2 <= b.r**2] = b.rgb
        else:
            outer = (np.abs(xx - x) <= b.r) & (np.abs(yy - y) <= b.r)
            inner = (np.abs(xx - x) <= b.r - 1.5) & (np.abs(yy - y) <= b.r - 1.5)
            img[outer] = tuple(int(c * 0.55) for c in b.rgb)
            img[inner] = b.rgb
    return img


def render_clip(sim: Simulation) -> np.ndarray:
    """All frames of a simulation, shape (T, H, W, 3) uint8."""
    return np.stack([render_frame(sim, k) for k in range(sim.states.shape[0])])


def rgb_to_yuv420p(frames: np.ndarray) -> np.ndarray:
    """BT.601 limited-range RGB -> planar yuv420p in integer numpy: (T, H, W, 3) -> (T, 3H/2, W) (or one frame).

    Done here rather than by the encoder's implicit software scaler, so the bitstream is byte-identical across runs.
    Standard 8-bit fixed-point coefficients; chroma is the rounded mean of each 2x2 block.
    """
    single = frames.ndim == 3
    rgb = (frames[None] if single else frames).astype(np.int32)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    T, H, W = r.shape
    y = ((66 * r + 129 * g + 25 * b + 128) >> 8) + 16
    u = ((-38 * r - 74 * g + 112 * b + 128) >> 8) + 128
    v = ((112 * r - 94 * g - 18 * b + 128) >> 8) + 128

    def sub(c: np.ndarray) -> np.ndarray:
        return ((c[:, 0::2, 0::2] + c[:, 1::2, 0::2] + c[:, 0::2, 1::2] + c[:, 1::2, 1::2] + 2) >> 2).reshape(
            T, H // 4, W
        )

    out = np.clip(np.concatenate([y, sub(u), sub(v)], axis=1), 0, 255).astype(np.uint8)
    return out[0] if single else out


def _encode(frames: np.ndarray, path: Path, fps: int, crf: int, codec: str) -> None:
    container = av.open(str(path), mode="w", format="mp4", options={"fflags": "+bitexact"})
    try:
        if codec == "libx264":
            # No B-frames and no lookahead: x264's B-frame decision was observed to vary run to run.
            params = "threads=1:lookahead-threads=1:sync-lookahead=0:rc-lookahead=0:bframes=0"
            opts = {"crf": str(crf), "preset": "medium", "x264-params": params}
        else:
            opts = {"qscale": "2"}
        stream = container.add_stream(codec, rate=fps, options=opts)
        stream.width, stream.height = int(frames.shape[2]), int(frames.shape[1])
        stream.pix_fmt = "yuv420p"
        stream.thread_count = 1
        stream.codec_context.flags |= av.codec.context.Flags.bitexact
        # Keep every input frame alive until the encoder is flushed: the encoder may still read a frame's buffers
        # after encode() returns (lookahead), and a freed buffer makes the bitstream non-deterministic.
        held: list[av.VideoFrame] = []
        for f in rgb_to_yuv420p(frames):
            held.append(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="yuv420p"))
            for packet in stream.encode(held[-1]):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
        del held
    finally:
        container.close()


def write_mp4(frames: np.ndarray, path: str | os.PathLike, fps: int, crf: int = 12) -> str:
    """Write frames to ``path`` as a deterministic mp4 (atomically); returns the codec used.

    libx264 single-threaded, without B-frames or lookahead, fed yuv420p converted in numpy, bit-exact muxing (no
    timestamps or version strings that vary); falls back to mpeg4 when libx264 is missing from the PyAV build.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    err: Exception | None = None
    for codec in _CODECS:
        if codec not in av.codecs_available:
            continue
        try:
            _encode(frames, tmp, fps, crf, codec)
            os.replace(tmp, path)
            return codec
        except Exception as e:  # pragma: no cover - codec-specific failures
            err = e
            log.warning("encoding %s with %s failed: %s", path, codec, e)
            tmp.unlink(missing_ok=True)
    raise RuntimeError(f"could not encode {path} with any of {_CODECS}: {err}")


def png_bytes(frame: np.ndarray) -> bytes:
    """Lossless PNG bytes of one RGB frame (no metadata, deterministic)."""
    buf = io.BytesIO()
    image = Image.fromarray(np.ascontiguousarray(frame, dtype=np.uint8))
    image.save(buf, format="PNG", optimize=False, compress_level=6)
    return buf.getvalue()
