"""Counterfactual readings: teach a frame-needing chain's conclusion to follow its reading (a workbook option).

Teacher-forced, the reading after the last span and the conclusion are both gold, so the conclusion can be learned
from the latent slots directly instead of from the reading. At inference the two are then separate noisy readouts of
one frame (with the earlier whole-layout reading they disagreed on about half of the items: the frame-reading
decomposition, :mod:`fl1_core.audit.frame_reading`). With probability ``SFTConfig.reading_swap_p`` a frame-needing example gets a
counterfactual reading: the asked object moves to another column of its support in the reading, and the conclusion,
its option letter and the answer follow. The moved reading ("In this frame, the <object> is <place>") carries no loss
(``SFTExample.no_loss_text``), so the model never learns to write a wrong reading, only to conclude what its reading
says. Off by default (0, the release's plain SFT).
"""

from __future__ import annotations

import re
import zlib
from dataclasses import replace

import numpy as np
from torch.utils.data import Dataset

from ..answers import option_lines
from .collator import SFTExample
from .world.frame_questions import COLUMNS, PLACE_PATTERN, READING_OPEN, READING_PATTERN, SUPPORT_WORDS, place_phrase

_CONCLUSION = re.compile(
    rf"So, the (?P<name>.+?) is (?P<place>{PLACE_PATTERN})(?:, which is option (?P<letter>[A-D]))?\.")
_READING = re.compile(READING_PATTERN)


def _moved(place: str, column: int) -> str:
    support = next(s for s, words in SUPPORT_WORDS.items() if place.startswith(words))
    return place_phrase(support, COLUMNS[column])


def counterfactual_reading(example: SFTExample, rng: np.random.Generator) -> SFTExample | None:
    """``example`` with the asked object moved to another column of its support in the reading and the conclusion
    (letter, answer) following, or ``None`` when it is not a frame-needing chain (or, for an MCQ, no other column
    names an option)."""
    if not example.thoughts:
        return None
    final = example.thoughts[-1]
    reading, conclusion = _READING.search(final), _CONCLUSION.search(final)
    if reading is None or conclusion is None or conclusion.start() < reading.end():
        return None
    name, place = conclusion["name"], conclusion["place"]
    if reading["name"] != name or reading["place"] != place:
        return None
    options = option_lines(example.question)
    text_of = {text: letter for letter, text in options.items()}
    new_place = None
    for c in rng.permutation(len(COLUMNS)).tolist():
        candidate = _moved(place, c)
        if candidate != place and (not options or f"the {name} is {candidate}" in text_of):
            new_place = candidate
            break
    if new_place is None:
        return None
    letter = conclusion["letter"]
    if letter and example.answer.strip() == letter:
        answer = text_of[f"the {name} is {new_place}"]
        tail = f", which is option {answer}."
    elif not letter and example.answer.strip() == f"the {name} is {place}":
        answer, tail = f"the {name} is {new_place}", "."
    else:
        return None
    phrase = f"{READING_OPEN} the {name} is {new_place}"
    text = (final[: reading.start()] + phrase + final[reading.end() - 1: conclusion.start()]
            + f"So, the {name} is {new_place}{tail}" + final[conclusion.end():])
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
