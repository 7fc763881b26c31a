"""The synthetic future world: procedurally generated 2-D physics clips with exactly known event chains, written in
the real data formats of docs/PAPER.md#data-formats (TwiFF SFT, RL, FutureBench, TwiFF-Bench).

Modules: ``config`` (WorldConfig), ``physics`` (scene sampling, simulation, events), ``render`` (frames, mp4, PNG),
``questions`` (question kinds, trajectories, distractors, record builders), ``generate`` (``generate_world``),
``corpus`` (``vocabulary_corpus``). See data/WORLD.md.
"""

from .config import GENERATOR_VERSION, WorldConfig
from .corpus import vocabulary_corpus
from .generate import generate_world
from .physics import event_text
from .questions import TEXT_KINDS, VISION_KINDS

__all__ = [
    "GENERATOR_VERSION",
    "TEXT_KINDS",
    "VISION_KINDS",
    "WorldConfig",
    "event_text",
    "generate_world",
    "vocabulary_corpus",
]
