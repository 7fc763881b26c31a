"""The observed scene in words: each body's support and direction at a frame, and the sentence describing every body
at the end of the observed prefix (the first thought of a trajectory)."""

from __future__ import annotations

import re

from .world_types import Clip

OBSERVATION_OPENING = "At the end of the video, "  # how the first thought of a trajectory begins
_BODY_STATE = re.compile(r"the ([a-z]+ [a-z]+) is (rolling|sliding|falling|resting)")  # describe_body's verbs


def body_state(clip: Clip, i: int, frame: int | None = None) -> tuple[str, str | None]:
    """(support, direction) of body i at ``frame`` (default: the last observed frame); direction None if at rest."""
    k = clip.cutoff if frame is None else frame
    support = clip.sim.supports[k][i]
    vx = float(clip.sim.states[k, i, 2])
    direction = None if abs(vx) < 1e-9 else ("right" if vx > 0 else "left")
    return support, direction


def describe_body(name: str, shape: str, support: str, direction: str | None) -> str:
    """'the red ball is rolling right along the floor' / 'the blue box is resting on the ledge' / '... is falling'."""
    if support == "air":
        return f"the {name} is falling"
    if direction is None:
        return f"the {name} is resting on the {support}"
    verb = "rolling" if shape == "ball" else "sliding"
    return f"the {name} is {verb} {direction} along the {support}"


def observation(clip: Clip) -> str:
    """One sentence describing every body at the end of the observed prefix."""
    parts = [describe_body(b.name, b.shape, *body_state(clip, i)) for i, b in enumerate(clip.sim.scene.bodies)]
    listed = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return f"{OBSERVATION_OPENING}{listed}."


_OBSERVATION = re.compile(re.escape(OBSERVATION_OPENING) + r"(.*?)\.(?=\s|$)", re.S)


def observation_sentence(text: str) -> str | None:
    """The first observation sentence in ``text`` ("At the end of the video, … ."), ``None`` when there is none."""
    m = _OBSERVATION.search(text or "")
    return m.group(0) if m else None


def moving_bodies(text: str) -> set[str] | None:
    """The inverse of :func:`observation` for motion: the bodies the first observation sentence in ``text``
    describes as rolling, sliding or falling; ``None`` when ``text`` has no such sentence naming a body."""
    m = _OBSERVATION.search(text or "")
    states = _BODY_STATE.findall(m.group(1).lower()) if m else []
    return {name for name, verb in states if verb != "resting"} if states else None
