"""The synthetic future world: procedurally generated 2-D physics clips with exactly known event chains, written in
the real data formats of docs/PAPER.md#data-formats (TwiFF SFT, RL, FutureBench, TwiFF-Bench).

Modules, each importing only those listed before it: ``config`` (WorldConfig), ``physics`` (scene sampling,
simulation, events), ``render`` (frames, mp4, PNG), ``world_types`` (clip, question, kinds, letters, answer text),
``description`` (the observed scene in words), ``frame_questions`` (frame-needing kinds), ``questions`` (the candidate
questions of a clip), ``options`` (distractors, option lines), ``records`` (trajectories, record builders),
``corpus`` (``vocabulary_corpus``), ``generate`` (``generate_world``). See data/WORLD.md.
"""

from .config import GENERATOR_VERSION, WorldConfig
from .corpus import vocabulary_corpus
from .generate import generate_world
from .physics import event_text
from .world_types import TEXT_KINDS, VISION_KINDS

__all__ = [
    "GENERATOR_VERSION",
    "TEXT_KINDS",
    "VISION_KINDS",
    "WorldConfig",
    "event_text",
    "generate_world",
    "vocabulary_corpus",
]
