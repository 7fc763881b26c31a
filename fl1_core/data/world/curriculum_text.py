"""The wording of world pretraining's curricula (:mod:`fl1_core.pretrain.tasks`): the questions of each task, the
hint before future frames, and the lines of it the tiny tokenizer is trained on (:func:`curriculum_corpus`, part of
:func:`fl1_core.tiny.default_corpus`: changing it changes the tokenizer every world base was trained with)."""

from __future__ import annotations

from .config import WorldConfig
from .world_types import LETTERS

SCENE_QUESTION = "Describe the picture: the objects from left to right and where they are."
LAYOUT_QUESTION = "Describe the picture: the objects from left to right, where they are and in which part."
MOTION_QUESTION = "How is each object moving in the second picture?"
CHANGE_QUESTION = "What happened between the two pictures?"
LOOKUP_QUESTION = "Which option says: {}?"
RECALL_QUESTION = "What does option {} say?"
DRILL_QUESTION = "Go through the options. Which one says: {}?"
NOTHING = "nothing happened"
HINT = "\nThe following images show how the scene continues."


def curriculum_corpus() -> list[str]:
    """Tokenizer training text for the curricula's own wording (added to the world's vocabulary corpus)."""
    lines = [SCENE_QUESTION, MOTION_QUESTION, CHANGE_QUESTION, LOOKUP_QUESTION.format("the red ball"), HINT.strip(),
             *(RECALL_QUESTION.format(x) for x in LETTERS),
             NOTHING.capitalize() + ".", "The light is on.", "The light is off."]
    where = ("on the floor", "on the ledge", "in the air")
    colours = list(WorldConfig().colors)
    for c in colours:
        for s in ("ball", "box"):
            lines += [f"From left to right: the {c} {s} {w}." for w in where]
    return lines
