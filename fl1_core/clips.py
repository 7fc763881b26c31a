"""Clips that play: a video's observed prefix and its future as animated images beside the event timeline.

Animated GIFs (Pillow) embedded as ``data:`` URIs play in any browser, offline, in a notebook, in an nbconvert
export and in the run report, with nothing to serve. :func:`clip_player_html` is the one widget used everywhere
(notebooks 00 and 01, the ipywidgets record browser, ``fl1 report``).
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

PLAYER_CLASS = "fl1-clip"


def animated_gif(frames: Sequence[Image.Image] | np.ndarray, fps: float, height: int = 144) -> bytes:
    """An endlessly looping GIF of ``frames`` at ``fps`` (each frame scaled to ``height`` px, nearest neighbour so
    the world's small objects stay crisp)."""
    images = [Image.fromarray(f) if isinstance(f, np.ndarray) else f for f in frames]
    if not images:
        raise ValueError("animated_gif: no frames")
    if not fps > 0:
        raise ValueError(f"animated_gif: fps must be > 0, got {fps}")
    scaled = [im.convert("RGB").resize((max(1, round(im.width * height / im.height)), height), Image.NEAREST)
              for im in images]
    buf = io.BytesIO()
    scaled[0].save(buf, format="GIF", save_all=True, append_images=scaled[1:], duration=round(1000 / fps), loop=0,
                   disposal=2)
    return buf.getvalue()


def _data_uri(gif: bytes) -> str:
    return "data:image/gif;base64," + base64.b64encode(gif).decode("ascii")


def timeline_html(events: Sequence[Mapping[str, Any]], num_frames: int, fps: float, observed_until: int | None) -> str:
    """A bar over the clip's duration: the observed part shaded, each event a tick labelled with its text."""
    duration = max(num_frames / fps, 1e-6)
    cut = None if observed_until is None else (observed_until + 1) / fps
    parts = ['<div style="position:relative;height:22px;background:#eef;border-radius:3px;margin:4px 0">']
    if cut is not None:
        parts.append(f'<div style="position:absolute;left:0;top:0;bottom:0;width:{100 * cut / duration:.1f}%;'
                     'background:#cde;border-radius:3px" title="observed"></div>')
    for e in events:
        t = float(e.get("time", float(e.get("frame", 0)) / fps))
        parts.append(f'<div style="position:absolute;left:{100 * t / duration:.1f}%;top:0;bottom:0;width:2px;'
                     f'background:#c33" title="{html.escape(str(e.get("text", "")))}"></div>')
    parts.append("</div><ol style=\"margin:2px 0 0 18px;padding:0;font-size:12px\">")
    for e in events:
        t = float(e.get("time", float(e.get("frame", 0)) / fps))
        side = "future" if cut is not None and t >= cut else "observed"
        parts.append(f"<li>{t:.2f} s ({side}): {html.escape(str(e.get('text', '')))}</li>")
    parts.append("</ol>")
    return "".join(parts)


def clip_player_html(frames: np.ndarray, fps: float, events: Sequence[Mapping[str, Any]] = (),
                     observed_until: int | None = None, title: str = "", height: int = 144) -> str:
    """HTML: the observed prefix (frames ``0..observed_until``) and the future (the rest) as two looping animated
    images, side by side, above the event timeline. Without ``observed_until`` the whole clip plays as one."""
    frames = np.asarray(frames)
    n = int(frames.shape[0])
    if n == 0:
        raise ValueError("clip_player_html: the clip has no frames")
    cut = n if observed_until is None else max(1, min(n, int(observed_until) + 1))
    parts = [(f"observed (frames 0–{cut - 1})", frames[:cut])]
    if cut < n:
        parts.append((f"future (frames {cut}–{n - 1})", frames[cut:]))
    cells = []
    for label, part in parts:
        uri = _data_uri(animated_gif(list(part), fps, height))
        cells.append(f'<figure style="margin:0 12px 0 0"><img class="{PLAYER_CLASS}" src="{uri}" alt="{label}" '
                     f'onload="this.dataset.loaded=\'1\'" style="image-rendering:pixelated"/>'
                     f'<figcaption style="font-size:12px">{html.escape(label)}</figcaption></figure>')
    head = f"<b>{html.escape(title)}</b> " if title else ""
    return (f'<div class="fl1-clip-player" style="margin:6px 0">{head}<span style="font-size:12px">{n} frames at '
            f"{fps:g} fps</span><div style=\"display:flex;align-items:flex-start\">{''.join(cells)}</div>"
            f"{timeline_html(events, n, fps, observed_until)}</div>")


def record_clip_html(video_path: str | Path, events: Sequence[Mapping[str, Any]] = (),
                     observed_until: int | None = None, title: str = "") -> str:
    """:func:`clip_player_html` of a video file (every frame, decoded with decord at its real fps)."""
    from .data.frames import load_video_clip

    clip = load_video_clip(video_path)
    return clip_player_html(clip.frames, clip.info.fps, events, observed_until, title)


def world_clip_html(data_dir: str | Path, record, events_by_clip: Mapping[str, Mapping[str, Any]] | None = None
                    ) -> str:
    """The player of a world SFT / RL record: its video, the clip's events and where the question's view ends."""
    from .runs import read_jsonl

    meta = getattr(record, "meta", None) or {}
    clip_id = meta.get("clip_id")
    if events_by_clip is None:
        events_by_clip = {row["clip_id"]: row for row in read_jsonl(Path(data_dir) / "events.jsonl")}
    events = (events_by_clip.get(clip_id) or {}).get("events", [])
    return record_clip_html(record.video, events, meta.get("observed_until"), title=str(record.id))


__all__ = ["PLAYER_CLASS", "animated_gif", "clip_player_html", "record_clip_html", "timeline_html",
           "world_clip_html"]
