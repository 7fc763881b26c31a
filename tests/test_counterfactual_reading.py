"""Counterfactual readings: the asked object moves in the layout reading, the conclusion, letter and answer follow,
the moved phrase carries no loss, and the draw is fixed by (seed, epoch, example)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from fl1_core.answers import option_lines
from fl1_core.audit.frame_reading import read_frame
from fl1_core.data.collator import IGNORE_INDEX, SFTCollator, SFTExample
from fl1_core.data.world.frame_questions import COLUMNS
from fl1_core.data.counterfactual_reading import CounterfactualReadings, counterfactual_reading


def world_examples(small_world) -> list[SFTExample]:
    from fl1_core.data.formats import load_sft_records
    from fl1_core.data.examples import sft_example

    records = load_sft_records(small_world / "sft.json")
    return [sft_example(r, with_future=False) for r in records]


def test_the_conclusion_letter_and_answer_follow_the_moved_reading(small_world):
    examples = world_examples(small_world)
    frame = [ex for ex in examples if "From left to right:" in ex.thoughts[-1] and "So, the" in ex.thoughts[-1]]
    others = [ex for ex in examples if ex not in frame]
    assert frame and others
    rng = np.random.default_rng(0)
    assert all(counterfactual_reading(ex, rng) is None for ex in others)  # event chains are never touched
    swapped = 0
    for ex in frame:
        new = counterfactual_reading(ex, rng)
        if new is None:
            continue
        swapped += 1
        name = new.no_loss_text.split(" on the ")[0].split(" in the ")[0][4:]
        concluded = new.thoughts[-1].split("So, ")[1]
        place = new.no_loss_text[len(name) + 5:]
        assert concluded.startswith(f"the {name} is {place}")  # the conclusion states the moved place
        assert new.thoughts[-1] != ex.thoughts[-1] and new.thoughts[:-1] == ex.thoughts[:-1]
        was = ex.thoughts[-1].split("So, ")[1].split(f"the {name} is ")[1].split(",")[0].rstrip(".")
        seen = read_frame(f"<reason>{new.thoughts[-1]}</reason>", f"the {name} is {was}")
        assert seen.follows and not seen.reading_right  # the decomposition reads the move the same way
        options = option_lines(ex.question)
        if options:  # MCQ: the new letter is the moved place's option, in the conclusion and the answer
            assert options[new.answer] == f"the {name} is {place}" and new.answer != ex.answer
            assert concluded.endswith(f"which is option {new.answer}.")
        else:
            assert new.answer == f"the {name} is {place}" != ex.answer
        reading = new.thoughts[-1].split("From left to right: ")[1].split(". ")[0]
        columns = [next(i for i, c in enumerate(COLUMNS) if part.rstrip(".").endswith(c)) for part in reading.split(", ")]
        assert columns == sorted(columns)  # the left-to-right order is kept
    assert swapped >= len(frame) // 2


def test_the_moved_phrase_carries_no_loss_and_the_conclusion_keeps_it(tiny, small_world):
    model, processor = tiny
    rng = np.random.default_rng(1)
    ex = next(new for new in (counterfactual_reading(e, rng) for e in world_examples(small_world)) if new)
    collator = SFTCollator(processor, model.latent_config, mode="text")
    plain = collator([SFTExample(**{**ex.__dict__, "no_loss_text": None})])
    masked = collator([ex])
    assert torch.equal(plain["input_ids"], masked["input_ids"])
    dropped = (plain["labels"] != IGNORE_INDEX) & (masked["labels"] == IGNORE_INDEX)
    tok = processor.tokenizer
    assert tok.decode(plain["input_ids"][0][dropped[0]]).strip() == ex.no_loss_text
    kept = tok.decode(masked["labels"][0][masked["labels"][0] != IGNORE_INDEX])
    assert "So, the" in kept and ex.answer in kept  # the conclusion and the answer stay supervised
    with pytest.raises(ValueError, match="not in the response"):
        collator([SFTExample(**{**ex.__dict__, "no_loss_text": "the green elephant"})])


def test_the_draw_depends_on_seed_epoch_and_example_only(small_world):
    examples = world_examples(small_world)
    same = CounterfactualReadings(examples, 1.0, seed=0, epoch=0)
    assert [same[i].thoughts for i in range(len(examples))] == \
        [CounterfactualReadings(examples, 1.0, seed=0, epoch=0)[i].thoughts for i in range(len(examples))]
    off = CounterfactualReadings(examples, 0.0, seed=0, epoch=0)
    assert all(off[i] is examples[i] for i in range(len(examples)))
    changed = [i for i in range(len(examples)) if same[i].no_loss_text]
    assert changed  # p = 1: every frame-needing chain that can move does
    later = [CounterfactualReadings(examples, 0.5, seed=0, epoch=e) for e in range(6)]
    picks = {tuple(bool(src[i].no_loss_text) for i in changed) for src in later}
    assert len(picks) > 1  # each epoch draws anew


def test_sft_config_checks_the_probability():
    from fl1_core.sft import SFTConfig

    with pytest.raises(ValueError, match="reading_swap_p"):
        SFTConfig(reading_swap_p=1.5)
    assert json.dumps(SFTConfig.cpu_world(reading_swap_p=0.5).reading_swap_p) == "0.5"
