"""Does the base read a frame given at latent slots? Teacher-forced layout reading of held-out frames.

For ``n`` frames of clips no training stream uses, the layout question is asked with the frame given three ways:

* ``image`` — the frame as an image in the user turn (the seeing route);
* ``latent`` — the frame's gold embeddings (frozen vision tower + merger) at ``<|latent|>`` slots of an assistant
  span, as latent SFT feeds them;
* ``shuffled`` — the gold embeddings of *another* frame (a derangement), scored against the asked frame's layout:
  a model that reads the slots falls towards 0 here, one that ignores them stays where it was.

Score: teacher-forced exact match, the share of frames whose every supervised token of the reading (the layout
answer and the closing tokens) is the argmax given the gold prefix; also the token accuracy. Wilson 95 % CIs.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..data.collator import IGNORE_INDEX, SFTCollator, SFTExample
from ..data.world.frame_questions import layout_text
from .evaluate import EVAL_SEED, _summary
from ..data.world.curriculum_text import LAYOUT_QUESTION
from .tasks import ClipStream


@torch.no_grad()
def latent_reading_accuracy(model, processor, n: int = 200, seed: int = EVAL_SEED, batch_size: int = 25
                            ) -> dict[str, Any]:
    """``{"image", "latent", "shuffled"}`` → ``{"exact": summary, "token_accuracy": float}`` (module docstring)."""
    if n < 2:
        raise ValueError(f"latent_reading_accuracy needs n >= 2 frames (the shuffled route lends across frames), got {n}")
    stream = ClipStream(seed + 1)
    rng = np.random.default_rng([seed, 5])
    frames, texts = [], []
    for i in range(n):
        clip = stream.clip(i)
        f = int(rng.integers(0, clip.sim.states.shape[0]))
        frames.append(stream.frame(clip, f))
        texts.append(layout_text(clip, f))
    perm = (np.arange(n) + n // 2) % n  # another frame for every frame (n >= 2)
    latent = SFTCollator(processor, model.latent_config, system_prompt="none", mode="latent", allow_text_only=True,
                         on_error="raise")
    image = SFTCollator(processor, model.latent_config, system_prompt="none", mode="text", on_error="raise")
    was_training = model.training
    model.eval()
    out: dict[str, Any] = {}
    try:
        for route in ("image", "latent", "shuffled"):
            exact, right, total = [], 0, 0
            for s in range(0, n, batch_size):
                idx = range(s, min(n, s + batch_size))
                if route == "image":
                    batch = image([SFTExample(f"r{i}", LAYOUT_QUESTION, [], texts[i], [frames[i]]) for i in idx])
                else:
                    src = [i if route == "latent" else int(perm[i]) for i in idx]
                    batch = latent([SFTExample(f"r{i}", LAYOUT_QUESTION, [""], texts[i], [], [frames[j]])
                                    for i, j in zip(idx, src)])
                batch.pop("ids")
                labels = batch.pop("labels")
                batch.pop("label_weights", None)
                logits = model(**batch).logits
                pred, gold = logits[:, :-1].argmax(-1), labels[:, 1:]
                keep = gold != IGNORE_INDEX
                ok = (pred == gold) | ~keep
                exact += ok.all(dim=1).tolist()
                right += int(((pred == gold) & keep).sum())
                total += int(keep.sum())
            out[route] = {"exact": _summary(exact), "token_accuracy": right / max(1, total)}
    finally:
        model.train(was_training)
    return out
