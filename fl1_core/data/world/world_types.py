"""What every module of the world shares: the clip, the question, the question kinds, the option letters and the
canonical answer text. Nothing here imports another module of the world except the simulation (:mod:`.physics`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .physics import Event, Simulation

LETTERS = ("A", "B", "C", "D")
ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth")
TEXT_KINDS = ("uniform_motion", "fall_land", "switch_light")
VISION_KINDS = ("next_event", "kth_event", "object_next", "push_outcome", "which_first", "interpolation")
FRAME_KINDS = ("where_at_event", "where_at_time")
RIMAGE = "<rimage>"
CHAIN_JOIN = ", then "


@dataclass
class Clip:
    """A generated clip: simulation, split, observed prefix and paths (relative to the world directory)."""

    clip_id: str
    split: str
    sim: Simulation
    num_observed: int  # observed pool frames (1-based pool indices 1..num_observed)
    pool: list[int]
    video: str
    prefix_video: str | None
    fps: int
    frames: np.ndarray | None = None  # rendered frames (kept for test clips: PNGs of the TwiFF-Bench set)

    @property
    def cutoff(self) -> int:
        return self.sim.observed_until

    @property
    def future(self) -> list[Event]:
        return self.sim.future_events()

    @property
    def names(self) -> list[str]:
        return [b.name for b in self.sim.scene.bodies]

    def event_index(self, e: Event) -> int:
        return self.sim.events.index(e)


@dataclass
class Question:
    """One question about a clip; indices refer to the clip's future events (0-based)."""

    kind: str
    text: str
    answer_events: list[int]
    chain_end: int  # the reasoning trajectory imagines future[0..chain_end]
    hint: str = ""  # kind-specific first reasoning step (text-solvable kinds)
    given: int | None = None  # interpolation: index of the stated later event
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def needs_vision(self) -> bool:
        return self.kind not in TEXT_KINDS

    @property
    def needs_frame(self) -> bool:
        """True for the frame-needing kinds: the answer is read off the imagined frame, never stated before it."""
        return self.kind in FRAME_KINDS

    @property
    def hops(self) -> int:
        """Imagined steps: events up to ``chain_end``; one imagined moment for ``where_at_time``."""
        return 1 if self.kind == "where_at_time" else self.chain_end + 1


def answer_text(clip: Clip, q: Question) -> str:
    """Canonical answer: one event sentence, events joined by ', then ' (interpolation chains), or the asked
    object's place for the frame-needing kinds ('the red ball is on the floor at the left')."""
    if q.needs_frame:
        return str(q.extra["answer"])
    fut = clip.future
    return CHAIN_JOIN.join(fut[i].text for i in q.answer_events)
