"""The follow_reading pretraining task: a frame-needing question without pictures, answered by its chain's last
thought. The reading carries no loss, the conclusion copies the asked object's place from it, and the asked object
is not always the one listed last (the place copied when the model does not find the name)."""

from __future__ import annotations

import re

import pytest

from fl1_core.answers import option_lines
from fl1_core.audit.frame_reading import read_frame
from fl1_core.data.collator import IGNORE_INDEX, SFTCollator
from fl1_core.data.world.frame_questions import CONCLUSION, PLACE_PATTERN, READING_OPEN
from fl1_core.pretrain import TaskSampler


def follow_items(n: int):
    sampler = TaskSampler(5, mcq_fraction=0.7, frame_questions=True)
    return [sampler.item("follow_reading", i).example for i in range(n)]


def test_the_conclusion_copies_the_asked_objects_place_from_the_reading():
    positions, letters, items = [], 0, follow_items(40)
    for ex in items:
        assert not ex.question_images and not ex.future_frames and ex.question_video is None
        assert len(ex.thoughts) == 1 and ex.thoughts[0].startswith(READING_OPEN)
        m = CONCLUSION.search(ex.thoughts[0])
        assert m is not None and m.end() == len(ex.thoughts[0]), ex.thoughts[0]
        name = m["name"]
        answer_text = f"the {name} is {m['place']}"
        assert ex.no_loss_text == ex.thoughts[0][: m.start() - 1]  # the reading, up to the conclusion
        seen = read_frame(f"<reason>{ex.thoughts[0]}</reason>", answer_text)
        assert seen.reading_right and seen.follows  # the reading holds the answer; the conclusion copies it
        listed = re.findall(rf"the (\w+ \w+) (?:{PLACE_PATTERN})", ex.no_loss_text)
        positions.append((listed.index(name), len(listed)))
        if m["letter"]:  # MCQ: the letter names the concluded option
            letters += 1
            assert ex.answer == m["letter"] and option_lines(ex.question)[ex.answer] == answer_text
        else:
            assert ex.answer == answer_text
    assert letters >= 10 and any(not ex.question.startswith("Imagine") for ex in items)
    assert any(k < n - 1 for k, n in positions) and any(k == n - 1 for k, n in positions)


def test_the_reading_carries_no_loss_and_the_conclusion_does(tiny):
    model, processor = tiny
    ex = follow_items(1)[0]
    batch = SFTCollator(processor, model.latent_config, system_prompt="interleaved", mode="text",
                         allow_text_only=True)([ex])
    tok = processor.tokenizer
    supervised = tok.decode(batch["labels"][0][batch["labels"][0] != IGNORE_INDEX])
    assert READING_OPEN not in supervised and "So, the" in supervised and ex.answer in supervised


def test_follow_accuracy_counts_each_context_and_split(tiny):
    from fl1_core.pretrain.following import CONTEXTS, follow_accuracy

    model, processor = tiny
    out = follow_accuracy(model, processor, n=6)
    assert set(out) == set(CONTEXTS)
    for context in CONTEXTS:
        split = out[context]
        assert split["all"]["n"] == 6 == split["last"]["n"] + split["earlier"]["n"]
        misses = 6 - round(split["all"]["accuracy"] * 6)
        assert split["misses_other_object"]["n"] == misses
        k = sum(round(split[g]["accuracy"] * split[g]["n"]) for g in ("last", "earlier"))
        assert round(split["all"]["accuracy"] * 6) == k
    with pytest.raises(ValueError, match="n >= 1"):
        follow_accuracy(model, processor, n=0)


def test_the_shipped_base_follows_a_gold_reading_where_a_random_model_does_not(tiny):
    """The follow-reading phase's effect, measured by the same forced choice the card reports (text context)."""
    from fl1_core.model import load_future_l1
    from fl1_core.pretrain.following import follow_accuracy
    from fl1_core.world_base import WORLD_BASE_DIR

    base, processor = load_future_l1(WORLD_BASE_DIR)
    shipped = follow_accuracy(base, processor, n=40)["text"]["all"]["accuracy"]
    model, tiny_processor = tiny
    untrained = follow_accuracy(model, tiny_processor, n=40)["text"]["all"]["accuracy"]
    assert shipped >= 0.8 and untrained <= 0.6, (shipped, untrained)
