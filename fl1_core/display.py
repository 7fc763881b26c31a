"""Small display helpers for the notebooks: confidence-interval text, frame strips, decoded text with latent spans highlighted, and an
ipywidgets browser over SFT records (logic lives here so notebook cells stay short)."""

from __future__ import annotations

import html
import re
from collections.abc import Sequence

from PIL import Image, ImageDraw

from . import tokens as T

_SPAN = re.compile(re.escape(T.LATENT_START) + r"((?:" + re.escape(T.LATENT_TOKEN) + r")*)" + re.escape(T.LATENT_END))


def interval_text(ci: Sequence[float], scale: float = 100.0, digits: int = 1, signed: bool = False) -> str:
    """``[lo, hi]`` scaled (points or % by default) with ``digits`` decimals, signs shown for differences."""
    fmt = f"{{:{'+' if signed else ''}.{digits}f}}"
    return "[" + ", ".join(fmt.format(scale * float(v)) for v in ci) + "]"


def image_strip(images: Sequence[Image.Image], labels: Sequence[str] | None = None, height: int = 96, gap: int = 4) -> Image.Image:
    """Images side by side at a common height, with an optional label under each."""
    if not images:
        return Image.new("RGB", (height, height), "white")
    scaled = [im.convert("RGB").resize((max(1, round(im.width * height / im.height)), height)) for im in images]
    label_h = 14 if labels else 0
    width = sum(im.width for im in scaled) + gap * (len(scaled) - 1)
    strip = Image.new("RGB", (width, height + label_h), "white")
    x = 0
    draw = ImageDraw.Draw(strip)
    for i, im in enumerate(scaled):
        strip.paste(im, (x, 0))
        if labels:
            draw.text((x + 2, height + 1), str(labels[i]), fill="black")
        x += im.width + gap
    return strip


def latent_html(text: str) -> str:
    """HTML of decoded text: each latent span becomes a coloured chip showing its latent count, tags are shown."""
    parts, last = [], 0
    for m in _SPAN.finditer(text):
        parts.append(html.escape(text[last : m.start()]))
        k = m.group(1).count(T.LATENT_TOKEN)
        parts.append(
            f'<span style="background:#7b5cd6;color:white;border-radius:4px;padding:0 4px" '
            f'title="latent span: {k} continuous vectors">⟨latent × {k}⟩</span>'
        )
        last = m.end()
    parts.append(html.escape(text[last:]))
    return '<div style="font-family:monospace;white-space:pre-wrap;line-height:1.6">' + "".join(parts) + "</div>"


def record_browser(records: Sequence, load_example, clip_html=None):
    """An ipywidgets browser over SFT records: the clip playing (``clip_html(record)`` → HTML, e.g.
    :func:`fl1_core.clips.world_clip_html`), question frames, question, THOUGHT trajectory and future frames.

    ``load_example(record)`` returns an :class:`~fl1_core.data.collator.SFTExample` (frames decoded).
    """
    import ipywidgets as widgets
    from IPython.display import HTML, display

    out = widgets.Output()
    slider = widgets.IntSlider(value=0, min=0, max=max(0, len(records) - 1), description="record")

    def show(index: int) -> None:
        rec = records[index]
        ex = load_example(rec)
        out.clear_output(wait=True)
        with out:
            meta = getattr(rec, "meta", {}) or {}
            print(f"{rec.id}  kind={meta.get('question_kind')}  needs_vision={meta.get('needs_vision')}")
            if clip_html is not None:
                display(HTML(clip_html(rec)))
            display(image_strip(ex.question_images, [f"q{i + 1}" for i in range(len(ex.question_images))]))
            print("Q:", ex.question)
            for k, thought in enumerate(ex.thoughts):
                print(f"THOUGHT {k}: {thought}")
            display(image_strip(ex.future_frames, [f"future {i + 1}" for i in range(len(ex.future_frames))]))
            print("A:", ex.answer)

    slider.observe(lambda change: show(change["new"]), names="value")
    show(0)
    return widgets.VBox([slider, out])
