"""Fresh world MCQ questions from the pretraining stream (clips no run trains or tests on), as SFT examples."""

from __future__ import annotations

import numpy as np

from fl1_core.data.collator import SFTExample
from fl1_core.pretrain.tasks import TaskSampler, _record_text


def stream_questions(seed: int, n: int, form: str = "reason", stream: int = 77) -> list[SFTExample]:
    """``n`` multiple-choice examples; ``form``: ``reason`` (the full text thoughts, future frames for latent SFT),
    ``conclude`` (only "So, <event>, which is option X."), or ``direct`` (no thoughts)."""
    if form not in ("reason", "conclude", "direct"):
        raise ValueError(f"unknown form {form!r}")
    sampler = TaskSampler(seed, mcq_fraction=1.0)
    out = []
    for i in range(n):
        rng = np.random.default_rng([seed, stream, i])
        clip = sampler.stream.clip(int(rng.integers(0, 2**40)))
        rec = sampler._question(clip, rng)
        question, thoughts = _record_text(rec)
        shown, _ = sampler.stream.images(clip, [clip.pool[j - 1] for j in rec["image"]])
        future, _ = sampler.stream.images(clip, [clip.pool[j - 1] for j in rec["reasoning_image"]])
        if form != "reason":
            thoughts, future = (thoughts[-1:] if form == "conclude" else []), []
        out.append(SFTExample(f"stream-{seed}-{i}", question, thoughts, rec["answer"], shown, future))
    return out
