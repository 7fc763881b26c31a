"""Frame pools (docs/PAPER.md#frame-pool) and decord video I/O, checked by the pixel colour of every decoded frame."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from helpers_video import frame_colour, write_colour_video, write_corrupt_file, write_empty_file
from PIL import Image

from fl1_core.data import frames as fr
from fl1_core.data.frames import (
    VideoError,
    VideoInfo,
    frame_pool_indices,
    load_frames,
    load_pool_frames,
    load_video_clip,
    pool_frame_numbers,
    read_video_info,
)

TOL = 6  # max per-channel error allowed after lossy coding (observed: 1)


@pytest.fixture(scope="module")
def video32(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_colour_video(tmp_path_factory.mktemp("v") / "c32.mp4", num_frames=32, fps=8)


def assert_frame_is(img: Image.Image | np.ndarray, n: int) -> None:
    arr = np.asarray(img).astype(int)
    assert arr.shape[-1] == 3
    err = np.abs(arr - np.array(frame_colour(n))).max()
    assert err <= TOL, f"expected the colour of frame {n} {frame_colour(n)}, got mean {arr.reshape(-1, 3).mean(0)}"


# --- frame pool -------------------------------------------------------------------------------------------------------


def test_pool_spec_examples() -> None:
    assert frame_pool_indices(32) == [1, 3, 8, 13, 17, 22, 27, 30]
    assert frame_pool_indices(8) == [1, 1, 2, 3, 4, 5, 6, 6]


def _reference_pool(vlen: int) -> list[int]:
    """docs/PAPER.md#frame-pool written directly with exact fractions (independent of the implementation's integer arithmetic)."""
    s = 0 if vlen <= 2 else 1
    e = vlen - 2
    if e <= s:
        e = vlen - 1
    m = min(6, e - s)
    if m <= 0:
        pool = [s, e]
    else:
        b = [int(Fraction(s + 1) + Fraction(i * (e - s - 1), m)) for i in range(m + 1)]
        pool = [s] + [(b[i] + b[i + 1] - 1) // 2 for i in range(m)] + [e]
    return pool + [pool[-1]] * (8 - len(pool))


@pytest.mark.parametrize("vlen", range(1, 201))
def test_pool_properties(vlen: int) -> None:
    pool = frame_pool_indices(vlen)
    assert len(pool) == 8
    assert all(a <= b for a, b in zip(pool, pool[1:])), pool
    assert 0 <= pool[0] and pool[-1] <= vlen - 1, pool
    assert pool == _reference_pool(vlen)
    if vlen >= 4:  # the pool avoids the very first and very last frame
        assert pool[0] == 1 and pool[-1] == vlen - 2


def test_pool_rejects_bad_length() -> None:
    with pytest.raises(ValueError):
        frame_pool_indices(0)


def test_pool_frame_numbers_maps_one_based() -> None:
    assert pool_frame_numbers(32, [1, 2, 8]) == [1, 3, 30]
    for bad in (0, 9, -1, True, 2.0):
        with pytest.raises(VideoError, match="outside 1..8"):
            pool_frame_numbers(32, [bad])


# --- reading ----------------------------------------------------------------------------------------------------------


def test_read_video_info(video32: Path) -> None:
    info = read_video_info(video32)
    assert info == VideoInfo(num_frames=32, fps=8.0, width=64, height=64)
    assert info.duration == pytest.approx(4.0)


@pytest.mark.parametrize("codec", ["libx264", "mpeg4"])
def test_load_frames_pixel_values(tmp_path: Path, codec: str) -> None:
    path = write_colour_video(tmp_path / f"{codec}.mp4", num_frames=20, width=48, height=32, codec=codec)
    wanted = [0, 7, 19, 3, 7]  # unsorted, with a repeat
    imgs = load_frames(path, wanted)
    assert len(imgs) == len(wanted)
    for img, n in zip(imgs, wanted):
        assert isinstance(img, Image.Image) and img.mode == "RGB" and img.size == (48, 32)
        assert_frame_is(img, n)


def test_load_frames_empty_list(video32: Path) -> None:
    assert load_frames(video32, []) == []


def test_load_pool_frames(video32: Path) -> None:
    imgs = load_pool_frames(video32, [1, 2, 8, 4])
    for img, n in zip(imgs, [1, 3, 30, 13], strict=True):
        assert_frame_is(img, n)


def test_load_pool_frames_short_clip(tmp_path: Path) -> None:
    path = write_colour_video(tmp_path / "c8.mp4", num_frames=8)
    for idx, n in zip(range(1, 9), [1, 1, 2, 3, 4, 5, 6, 6]):
        assert_frame_is(load_pool_frames(path, [idx])[0], n)


def test_load_video_clip_num_frames(video32: Path) -> None:
    clip = load_video_clip(video32, num_frames=4)
    assert clip.frames.dtype == np.uint8 and clip.frames.shape == (4, 64, 64, 3)
    assert clip.frame_indices == [0, 10, 21, 31]
    for arr, n in zip(clip.frames, clip.frame_indices):
        assert_frame_is(arr, n)
    frames, info, idx = clip  # unpacks as (frames, info, frame_indices)
    assert info.num_frames == 32 and idx == clip.frame_indices


def test_load_video_clip_modes(video32: Path) -> None:
    assert load_video_clip(video32).frame_indices == list(range(32))
    assert len(load_video_clip(video32, num_frames=100).frame_indices) == 32  # never more than the clip has
    by_fps = load_video_clip(video32, fps=2)  # 4 s at 2 fps
    assert len(by_fps.frame_indices) == 8 and by_fps.frame_indices[0] == 0 and by_fps.frame_indices[-1] == 31
    assert len(load_video_clip(video32, max_frames=5).frame_indices) == 5
    with pytest.raises(ValueError, match="mutually exclusive"):
        load_video_clip(video32, num_frames=4, fps=2)


def test_video_metadata_gives_real_timestamps(video32: Path) -> None:
    from transformers.video_utils import VideoMetadata

    clip = load_video_clip(video32, num_frames=3)
    meta = VideoMetadata(**clip.video_metadata())
    assert meta.fps == 8.0 and meta.total_num_frames == 32
    assert meta.timestamps == pytest.approx([0.0, 16 / 8, 31 / 8])


# --- errors -----------------------------------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(VideoError, match="not found"):
        read_video_info(tmp_path / "nope.mp4")


def test_empty_file(tmp_path: Path) -> None:
    with pytest.raises(VideoError, match="empty"):
        load_frames(write_empty_file(tmp_path / "empty.mp4"), [0])


def test_corrupt_file(tmp_path: Path) -> None:
    with pytest.raises(VideoError, match="corrupt"):
        read_video_info(write_corrupt_file(tmp_path / "bad.mp4"))


def test_video_error_is_value_error() -> None:
    assert issubclass(VideoError, ValueError)


def test_zero_frame_video(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A container decord opens but that holds no frames (PyAV cannot write one, so decord's reader is faked)."""
    import decord

    class NoFrames:
        def __init__(self, *args: object, **kwargs: object) -> None:
            pass

        def __len__(self) -> int:
            return 0

    path = write_corrupt_file(tmp_path / "zero.mp4")  # a non-empty file; its content is never read
    monkeypatch.setattr(decord, "VideoReader", NoFrames)
    with pytest.raises(VideoError, match="no frames"):
        read_video_info(path)


@pytest.mark.parametrize("bad", [32, 100, -1])
def test_frame_number_out_of_range(video32: Path, bad: int) -> None:
    with pytest.raises(VideoError, match=r"outside 0\.\.31"):
        load_frames(video32, [0, bad])


def test_directory_is_not_a_video(tmp_path: Path) -> None:
    with pytest.raises(VideoError, match="not a file"):
        read_video_info(tmp_path)


# --- reader cache -----------------------------------------------------------------------------------------------------


def test_readers_are_cached(tmp_path: Path) -> None:
    path = write_colour_video(tmp_path / "cache.mp4", num_frames=10)
    fr.clear_reader_cache()
    before = fr._CACHE.opens
    read_video_info(path)
    load_frames(path, [1, 2])
    load_pool_frames(path, [3])
    load_video_clip(path, num_frames=2)
    assert fr._CACHE.opens - before == 1


def test_rewritten_file_is_reopened(tmp_path: Path) -> None:
    path = write_colour_video(tmp_path / "re.mp4", num_frames=10)
    assert read_video_info(path).num_frames == 10
    write_colour_video(path, num_frames=16)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # make sure the mtime differs
    assert read_video_info(path).num_frames == 16
    assert_frame_is(load_frames(path, [15])[0], 15)


@pytest.mark.parametrize("width", [48, 64])
def test_padded_row_widths_decode_like_pyav(tmp_path: Path, width: int) -> None:
    """decord 0.6 pads rows for some widths (48 -> 4 'channels'); frames must still match PyAV's own decode."""
    h, path = 32, tmp_path / f"grad{width}.mp4"
    with av.open(str(path), mode="w") as c:
        s = c.add_stream("libx264", rate=8)
        s.width, s.height, s.pix_fmt, s.options = width, h, "yuv420p", {"crf": "0", "preset": "ultrafast"}
        for n in range(5):
            img = np.zeros((h, width, 3), np.uint8)
            img[:, :, 0] = np.linspace(0, 255, width)[None, :]
            img[:, :, 1] = np.linspace(0, 255, h)[:, None]
            img[:, :, 2] = 50 * n
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    with av.open(str(path)) as c:
        ref = [f.to_ndarray(format="rgb24").astype(int) for f in c.decode(video=0)]
    got = load_frames(path, [4, 1])
    for img, n in zip(got, [4, 1]):
        assert img.size == (width, h)
        assert np.abs(np.asarray(img).astype(int) - ref[n]).max() <= 2
    clip = load_video_clip(path)
    assert clip.frames.shape == (5, h, width, 3)
    assert np.abs(clip.frames[2].astype(int) - ref[2]).max() <= 2
