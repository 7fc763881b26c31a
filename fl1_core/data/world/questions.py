"""Questions and answers of the synthetic future world: clips, question kinds, scene descriptions, candidates.
MCQ options live in :mod:`.options`, trajectories and record builders in :mod:`.records`.

Question kinds (``meta.question_kind``) and whether the future visual state is needed (``meta.needs_vision``):

- text-solvable: ``uniform_motion`` (the question states that a ball rolls steadily towards a wall / the switch / the
  ledge edge with nothing in its way), ``fall_land`` (a body falls off the ledge: it lands on the floor),
  ``switch_light`` (a body hits the switch wired to the light: the light turns on);
- vision-dependent: ``next_event``, ``kth_event`` (the k-th event after the video ends), ``object_next`` (what
  happens to X next), ``push_outcome`` (A hits B: what happens to B), ``which_first`` (which of two events comes
  first), ``interpolation`` (a later event is stated: what happens in between);
- frame-needing (``meta.needs_frame``): ``where_at_event``, ``where_at_time`` (where an object is at a future
  moment; only the imagined frame shows it, see :mod:`.frame_questions`).
"""

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


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def answer_text(clip: Clip, q: Question) -> str:
    """Canonical answer: one event sentence, events joined by ', then ' (interpolation chains), or the asked
    object's place for the frame-needing kinds ('the red ball is on the floor at the left')."""
    if q.needs_frame:
        return str(q.extra["answer"])
    fut = clip.future
    return CHAIN_JOIN.join(fut[i].text for i in q.answer_events)


# ------------------------------------------------------------------------------------------------- scene description
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


# ------------------------------------------------------------------------------------------------------- candidates
def _involves(e: Event, name: str) -> bool:
    return e.subject == name or e.object == name


def uniform_motion_text(name: str, support: str, direction: str, target: str) -> tuple[str, str]:
    """(question, hint) of a text-solvable steady-motion question.

    ``target`` is 'wall', 'switch', 'edge' (of the ledge) or the name of a body ahead on the same support.
    """
    if target not in ("wall", "switch", "edge"):
        q = (
            f"The {name} is rolling {direction} along the {support} at a steady speed towards the {target}, and "
            f"nothing is between them. What will happen to the {name} next?"
        )
        return q, f"The {name} keeps rolling {direction} with nothing in between, so it will reach the {target}."
    if target == "edge":
        goal, reach = "the edge of the ledge", "the edge of the ledge"
    elif target == "switch":
        goal, reach = f"the {direction} wall, where the switch is", "the switch"
    else:
        goal, reach = f"the {direction} wall", f"the {direction} wall"
    q = (
        f"The {name} is rolling {direction} along the {support} at a steady speed, and nothing is between it and "
        f"{goal}. What will happen to the {name} next?"
    )
    hint = f"The {name} keeps rolling {direction} with nothing in its way, so it will reach {reach}."
    return q, hint


def candidates(clip: Clip, rng: np.random.Generator) -> list[Question]:
    """Every question the clip supports (deterministic given ``rng``)."""
    fut = clip.future
    sim = clip.sim
    bodies = sim.scene.bodies
    qs: list[Question] = []
    if not fut:
        return qs
    # text-solvable: steady motion of a ball
    uniform_subjects: set[str] = set()
    for bi, b in enumerate(bodies):
        support, direction = body_state(clip, bi)
        if b.shape != "ball" or support == "air" or direction is None:
            continue
        idx = next((i for i, e in enumerate(fut) if _involves(e, b.name)), None)
        if idx is None:
            continue
        e = fut[idx]
        lg = sim.scene.ledge
        if e.type == "hit" and e.subject == b.name and e.object is not None:
            oi = clip.names.index(e.object)
            o_support, _ = body_state(clip, oi)
            ahead = (float(sim.states[clip.cutoff, oi, 0]) - float(sim.states[clip.cutoff, bi, 0])) * (
                1 if direction == "right" else -1
            )
            if o_support != support or ahead <= 0:
                continue
            target = e.object
        elif e.type == "bounce" and e.where == direction:
            target = "wall"
        elif e.type == "switch" and sim.scene.switch_side == direction and support == "floor":
            target = "switch"
        elif e.type == "fall" and support == "ledge" and lg is not None and direction != lg.side:
            target = "edge"
        else:
            continue
        text, hint = uniform_motion_text(b.name, support, direction, target)
        qs.append(Question("uniform_motion", text, [idx], idx, hint=hint))
        uniform_subjects.add(b.name)
    # text-solvable: falling bodies land; the switch turns the light on
    for i, e in enumerate(fut):
        if e.type == "fall":
            nxt = next((j for j in range(i + 1, len(fut)) if _involves(fut[j], e.subject)), None)
            if nxt is not None and fut[nxt].type == "land":
                text = (
                    f"The {e.subject} is going to fall off the ledge. "
                    f"What will happen to the {e.subject} after it falls?"
                )
                hint = f"Once the {e.subject} leaves the ledge, gravity pulls it down to the floor."
                qs.append(Question("fall_land", text, [nxt], nxt, hint=hint))
        if e.type == "land" and not any(f.type == "fall" and f.subject == e.subject for f in fut[:i]):
            if all(not _involves(f, e.subject) for f in fut[:i]):
                text = f"The {e.subject} has fallen off the ledge. What will happen to the {e.subject} next?"
                hint = f"The {e.subject} is in the air, so gravity pulls it down to the floor."
                qs.append(Question("fall_land", text, [i], i, hint=hint))
        if e.type == "light":
            sw = next((f for f in sim.events if f.type == "switch" and f.frame == e.frame - 1), None)
            if sw is None:
                continue
            tense = "is going to hit" if sw.frame > clip.cutoff else "has just hit"
            text = f"The {sw.subject} {tense} the switch, which is wired to the light. What will happen to the light?"
            hint = "The switch is wired to the light, so pressing it closes the circuit."
            qs.append(Question("switch_light", text, [i], i, hint=hint))
    # vision-dependent
    qs.append(Question("next_event", "What will happen next after the video ends?", [0], 0))
    for k in range(2, min(len(fut), 5) + 1):
        text = f"Counting from the end of the video, what will be the {ORDINALS[k - 1]} event to happen?"
        qs.append(Question("kth_event", text, [k - 1], k - 1, extra={"k": k}))
    for b in bodies:
        if b.name in uniform_subjects:
            continue
        idx = next((i for i, e in enumerate(fut) if _involves(e, b.name)), None)
        if idx is not None:
            qs.append(Question("object_next", f"What will happen to the {b.name} next?", [idx], idx))
    for i, e in enumerate(fut):
        if e.type != "hit" or e.object is None:
            continue
        j = next((j for j in range(i + 1, len(fut)) if _involves(fut[j], e.object)), None)
        if j is not None and fut[j].subject == e.object:
            text = f"The {e.subject} is going to hit the {e.object}. What will happen to the {e.object} after that?"
            qs.append(Question("push_outcome", text, [j], j))
    for a in range(len(fut)):
        for b_ in range(a + 1, min(a + 3, len(fut))):
            ea, eb = fut[a], fut[b_]
            if ea.subject == eb.subject or "light" in (ea.type, eb.type):
                continue
            first, second = (ea, eb) if rng.random() < 0.5 else (eb, ea)
            text = f"Which will happen first: {first.text} or {second.text}?"
            qs.append(Question("which_first", text, [a], a, extra={"pair": [a, b_]}))
    for j in range(1, len(fut)):
        text = f"Later, {fut[j].text}. What happens between the end of the video and that moment?"
        qs.append(Question("interpolation", text, list(range(j)), j, given=j))
    from .frame_questions import frame_candidates  # frame_questions builds on the names above

    qs.extend(frame_candidates(clip))
    return qs


def fb_candidates(clip: Clip) -> dict[str, list[Question]]:
    """FutureBench-style questions of a test clip, by question_type (hop1/hop2/hop3/hop5)."""
    fut = clip.future
    out: dict[str, list[Question]] = {"hop1": [], "hop2": [], "hop3": [], "hop5": []}
    if fut:
        out["hop1"].append(Question("next_event", "What will happen next after the video ends?", [0], 0))
    for k in (2, 3):
        if len(fut) >= k:
            text = f"Counting from the end of the video, what will be the {ORDINALS[k - 1]} event to happen?"
            out[f"hop{k}"].append(Question("kth_event", text, [k - 1], k - 1, extra={"k": k}))
    for j in range(1, len(fut)):
        text = f"Later, {fut[j].text}. What happens between the end of the video and that moment?"
        out["hop5"].append(Question("interpolation", text, list(range(j)), j, given=j))
    return out
