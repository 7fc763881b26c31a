"""The observed scene in words: each body's support and direction at a frame, and the sentence describing every body
at the end of the observed prefix (the first thought of a trajectory)."""

from __future__ import annotations

from .world_types import Clip


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
    return f"At the end of the video, {listed}."
