"""Does the base conclude what its reading says? A forced choice between the option conclusions after a gold reading.

A frame-needing chain ends with the layout reading of the asked frame, then the conclusion ("So, the green ball is on
the ledge in the middle, which is option B."). For ``n`` MCQ frame-needing questions of clips no training stream
uses, the reading is given (teacher-forced, gold) and each of the four conclusions, with its option letter and
answer, is scored by the summed log-probability of its supervised tokens. The base *follows* when the conclusion of
the reading's place scores highest. Two contexts:

* ``text`` — the question without pictures and the reading alone (the ``follow_reading`` task's form);
* ``chain`` — the full interleaved chain: the question frames, the thoughts, one span per future frame with the gold
  embeddings at its latent slots, then the reading.

Each is split by whether the asked object is listed last in the reading (``last``) or not (``earlier``): a model that
copies the most recent place instead of finding the asked name is right on ``last`` only. ``misses_other_object``:
the share of the wrong picks that state another listed object's place. Wilson 95 % CIs.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch

from ..answers import option_lines
from ..data.collator import IGNORE_INDEX, SFTCollator
from ..data.world.frame_questions import CONCLUSION, READING_ITEM, READING_OPEN
from .evaluate import EVAL_SEED, _summary
from .tasks import TaskSampler

CONTEXTS = {"text": ("follow_reading", "text"), "chain": ("chain", "latent")}  # context -> (task, collator mode)


def _listed(reading: str) -> list[tuple[str, str]]:
    """(name, place) of every object of a layout reading, left to right."""
    return [(m["name"], m["place"]) for m in READING_ITEM.finditer(reading, len(READING_OPEN) + 1)]


@torch.no_grad()
def follow_accuracy(model, processor, n: int = 200, seed: int = EVAL_SEED) -> dict[str, Any]:
    """``{context: {"all" | "last" | "earlier": summary}}`` for the contexts of :data:`CONTEXTS` (module docstring)."""
    if n < 1:
        raise ValueError(f"follow_accuracy needs n >= 1 questions, got {n}")
    sampler = TaskSampler(seed + 2, mcq_fraction=1.0, frame_questions=True, frame_share=1.0)
    was_training = model.training
    model.eval()
    out: dict[str, Any] = {}
    try:
        for context, (task, mode) in CONTEXTS.items():
            collate = SFTCollator(processor, model.latent_config, system_prompt="interleaved", mode=mode,
                                  allow_text_only=True, on_error="raise")
            hits: dict[str, list[bool]] = {"all": [], "last": [], "earlier": [], "misses_other_object": []}
            index = 0
            while len(hits["all"]) < n:
                ex = sampler.item(task, index).example
                index += 1
                final = ex.thoughts[-1]
                options = option_lines(ex.question)
                gold = CONCLUSION.search(final)
                if not options or gold is None or gold["letter"] is None or not final.startswith(READING_OPEN):
                    continue  # a free-form question, or a chain without a reading (the clip had no frame kind)
                reading = final[: gold.start() - 1]
                letters = sorted(options)
                batch = collate([replace(ex, thoughts=[*ex.thoughts[:-1],
                                                       f"{reading} So, {options[k]}, which is option {k}."],
                                         answer=k, no_loss_text=None) for k in letters])
                batch.pop("ids")
                labels = batch.pop("labels")[:, 1:]
                batch.pop("label_weights", None)
                logp = torch.log_softmax(model(**batch).logits[:, :-1].float(), -1)
                keep = labels != IGNORE_INDEX
                scores = (logp.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1) * keep).sum(1)
                pick = letters[int(scores.argmax())]
                right = pick == gold["letter"]
                listed = _listed(reading)
                hits["all"].append(right)
                hits["last" if listed[-1][0] == gold["name"] else "earlier"].append(right)
                if not right:
                    others = {f"the {gold['name']} is {place}" for name, place in listed if name != gold["name"]}
                    hits["misses_other_object"].append(options[pick] in others)
            out[context] = {k: _summary(v) for k, v in hits.items()}
    finally:
        model.train(was_training)
    return out
