"""Counterfactual readings: teach a frame-needing chain's conclusion to follow its layout reading (a workbook option).

Teacher-forced, the layout reading after the last span and the conclusion are both gold, so the conclusion can be
learned from the latent slots directly instead of from the reading. At inference the two are then separate noisy
readouts of one frame, and they disagree on about half of the items (the frame-reading decomposition,
:mod:`fl1_core.audit.frame_reading`). With probability ``SFTConfig.reading_swap_p`` a frame-needing example gets a
counterfactual reading: the asked object moves to another column of its support in the reading (the left-to-right
order kept), and the conclusion, its option letter and the answer follow. The moved phrase carries no loss
(``SFTExample.no_loss_text``), so the model never learns to write a wrong reading, only to conclude what its reading
says. Off by default (0, the release's plain SFT).
"""

from __future__ import annotations

import zlib
from dataclasses import replace

import numpy as np
from torch.utils.data import Dataset

from ..answers import option_lines
from .collator import SFTExample
from .world.frame_questions import COLUMNS, CONCLUSION, READING_ITEM, READING_OPEN, SUPPORT_WORDS, place_phrase


def _column(place: str) -> int:
    return next(i for i, c in enumerate(COLUMNS) if place.endswith("middle" if c == "middle" else f"the {c}"))


def _moved(place: str, column: int) -> str:
    support = next(s for s, words in SUPPORT_WORDS.items() if place.startswith(words))
    return place_phrase(support, COLUMNS[column])


def counterfactual_reading(example: SFTExample, rng: np.random.Generator) -> SFTExample | None:
    """``example`` with the asked object moved in its layout reading and the conclusion (letter, answer) following,
    or ``None`` when it is not a frame-needing chain or no other column keeps the reading's left-to-right order (or,
    for an MCQ, names an option)."""
    if not example.thoughts:
        return None
    final = example.thoughts[-1]
    start, conclusion = final.find(READING_OPEN), CONCLUSION.search(final)
    if start < 0 or conclusion is None or conclusion.start() < start:
        return None
    name, place = conclusion["name"], conclusion["place"]
    items = list(READING_ITEM.finditer(final, start + len(READING_OPEN) + 1, conclusion.start()))
    at = [i for i, m in enumerate(items) if m["name"] == name]
    if len(at) != 1:
        return None
    k, columns = at[0], [_column(m["place"]) for m in items]
    low = columns[k - 1] if k > 0 else 0
    high = columns[k + 1] if k + 1 < len(items) else len(COLUMNS) - 1
    choices = [c for c in range(low, high + 1) if c != columns[k]]
    options = option_lines(example.question)
    new_place = None
    for c in rng.permutation(choices).tolist() if choices else []:
        candidate = _moved(items[k]["place"], c)
        if not options or f"the {name} is {candidate}" in options.values():
            new_place = candidate
            break
    if new_place is None:
        return None
    letter = conclusion["letter"]
    new_letter = next((l for l, text in options.items() if text == f"the {name} is {new_place}"), None)
    tail = f", which is option {new_letter}." if letter else "."
    phrase = f"the {name} {new_place}"
    item = items[k]
    text = (final[: item.start()] + phrase + final[item.end(): conclusion.start()]
            + f"So, the {name} is {new_place}{tail}" + final[conclusion.end():])
    if letter and example.answer.strip() == letter:
        answer = new_letter
    elif example.answer.strip() == f"the {name} is {place}":
        answer = f"the {name} is {new_place}"
    else:
        return None
    return replace(example, thoughts=[*example.thoughts[:-1], text], answer=answer, no_loss_text=phrase)


class CounterfactualReadings(Dataset):
    """``source`` with each frame-needing example swapped (:func:`counterfactual_reading`) with probability ``p``;
    the draw depends on (seed, epoch, example id) only, so a resumed run sees the same examples."""

    def __init__(self, source: Dataset, p: float, seed: int, epoch: int):
        self.source, self.p, self.seed, self.epoch = source, p, seed, epoch

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> SFTExample:
        example = self.source[index]
        rng = np.random.default_rng([self.seed, self.epoch, zlib.crc32(example.id.encode())])
        if rng.random() >= self.p:
            return example
        return counterfactual_reading(example, rng) or example
