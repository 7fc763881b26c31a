"""Frame-needing questions: the answer is a state that only the imagined future frame shows.

The world's event questions can be answered from the reasoning text alone: every chain states each future event in
words before the span that shows it. The kinds here ask where an object *is* at a future moment: which third of the
scene (left, middle, right: the columns of the 3 × 3 merged-token grid of a 96-px frame) and on what (floor, ledge,
air). No event sentence says that. In the chain, the thought before the last span names the moment; the span is the
frame of that moment; the thought after it reads the layout off the frame in the words of the world base's scene
task, and the conclusion names the asked object's position. So the answer never appears in any text before the last
span (``tests/test_world_frame_kinds.py`` checks this on every record).

Kinds (``meta.question_kind``; all have ``meta.needs_frame = true`` and ``meta.frame_index``, the 1-based pool index
of the asked frame):

- ``where_at_event`` — "At the moment <event>, where will the <object> be?": the chain imagines the events up to the
  named one, one span per pool frame, and reads the layout after the last span;
- ``where_at_time`` — "Imagine the scene <t> seconds after the video ends. Where will the <object> be then?": one span,
  the frame of that moment, then the reading.

``meta.changed`` is true when the asked object's position differs from its position at the last observed frame (the
"read the present" baseline then fails). Candidates keep every changed (object, moment) and a seeded share of the
unchanged ones, so that most items are not readable from the present.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable

import numpy as np

from .physics import Event, pool_bin
from .description import observation
from .world_types import Clip, Question

COLUMNS = ("left", "middle", "right")
SUPPORT_WORDS = {"floor": "on the floor", "ledge": "on the ledge", "air": "in the air"}
UNCHANGED_KEEP = 0.35  # share of unchanged (object, moment) candidates kept


def column_of(x: float, width: int) -> str:
    """The third of the scene that holds x: 'left' / 'middle' / 'right' (the merged-token columns at 96 px)."""
    return COLUMNS[min(2, max(0, int(3 * x / width)))]


def place_phrase(support: str, column: str) -> str:
    """'on the floor at the left' / 'on the ledge in the middle' / 'in the air at the right'."""
    at = "in the middle" if column == "middle" else f"at the {column}"
    return f"{SUPPORT_WORDS[support]} {at}"


PLACES = tuple(place_phrase(s, c) for s in SUPPORT_WORDS for c in COLUMNS)  # every place a reading can give
PLACE_PATTERN = "|".join(re.escape(p) for p in PLACES)  # a regex alternation of PLACES
READING_OPEN = "From left to right:"  # how a layout reading (and the scene task's description) starts
# one object of a layout reading ("the red ball on the floor at the left") and a frame-needing conclusion
# ("So, the red ball is on the floor at the left, which is option B."; free-form chains have no option), parsed
READING_ITEM = re.compile(rf"the (?P<name>.+?) (?P<place>{PLACE_PATTERN})(?=[,.])")
CONCLUSION = re.compile(
    rf"So, the (?P<name>.+?) is (?P<place>{PLACE_PATTERN})(?:, which is option (?P<letter>[A-D]))?\.")


def body_place(clip: Clip, body: int, frame: int) -> str:
    """Where body ``body`` is at ``frame`` (:func:`place_phrase`)."""
    sim = clip.sim
    x = float(sim.states[frame, body, 0])
    return place_phrase(sim.supports[frame][body], column_of(x, sim.scene.width))


def place_answer(clip: Clip, body: int, frame: int) -> str:
    """The answer sentence: 'the red ball is on the floor at the left'."""
    return f"the {clip.names[body]} is {body_place(clip, body, frame)}"


def left_to_right(clip: Clip, frame: int, where: Callable[[int], str]) -> str:
    """'From left to right: the <object> <where(i)>, …. The light is on/off.' (the light only when the scene has
    one): the wording of the scene task and of the layout reading."""
    sim = clip.sim
    order = np.argsort(sim.states[frame, :, 0], kind="stable")
    parts = [f"the {clip.names[int(i)]} {where(int(i))}" for i in order]
    text = f"{READING_OPEN} " + ", ".join(parts) + "."
    if sim.scene.switch_side is not None:
        on = sim.light_on_frame is not None and frame >= sim.light_on_frame
        text += " The light is on." if on else " The light is off."
    return text


def layout_text(clip: Clip, frame: int) -> str:
    """The reading of a frame: 'From left to right: the red ball on the floor at the left, the blue box on the ledge
    in the middle. The light is off.' (the scene task's order and support, with each object's column)."""
    return left_to_right(clip, frame, lambda i: body_place(clip, i, frame))


def _seconds(frames: int, fps: int) -> str:
    s = frames / fps
    return f"{s:.1f}".rstrip("0").rstrip(".")


FRAME_STREAM = 7_001  # the keep/drop draws of unchanged candidates: their own stream, never the caller's generator


def _frame_rng(clip: Clip) -> np.random.Generator:
    key = f"{clip.clip_id}:{clip.cutoff}:{len(clip.sim.events)}".encode()
    return np.random.default_rng([FRAME_STREAM, zlib.crc32(key)])


def frame_candidates(clip: Clip) -> list[Question]:
    """Every frame-needing question of the clip (deterministic per clip; the caller's generator is not drawn from,
    so adding these kinds changes no other kind's draws): each object at each future pool frame, asked by an event that first shows in that frame (``where_at_event``, not for objects named by the events of
    that frame or sent to a wall by an earlier event, so no event sentence says where they are) or by time (``where_at_time``). Unchanged positions are kept with probability :data:`UNCHANGED_KEEP`."""
    fut = clip.future
    pool = clip.pool
    last = clip.cutoff
    rng = _frame_rng(clip)
    by_bin: dict[int, int] = {}  # pool bin -> index of the last future event first shown there
    shown_by: dict[int, set[str]] = {}  # pool bin -> objects whose place the chain's events up to it give away
    at_wall: set[str] = set()  # subjects of wall events (bounce, switch) so far: their column is said
    for i, e in enumerate(fut):
        b = pool_bin(e.frame, pool)
        by_bin[b] = i
        if e.type in ("bounce", "switch"):
            at_wall.add(e.subject)
        shown_by[b] = at_wall | shown_by.get(b, set()) | {n for n in (e.subject, e.object) if n}
    qs: list[Question] = []
    for p in range(clip.num_observed, len(pool)):
        frame = pool[p]
        if frame <= last:
            continue
        for b, name in enumerate(clip.names):
            present, asked = body_place(clip, b, last), body_place(clip, b, frame)
            changed = present != asked
            if not changed and rng.random() >= UNCHANGED_KEEP:
                continue
            extra = {"body": b, "pool_index": p, "answer": place_answer(clip, b, frame),
                     "present": place_answer(clip, b, last), "changed": changed}
            if p in by_bin and name not in shown_by[p]:  # the named events must not say where the object is
                k = by_bin[p]
                text = f"At the moment {fut[k].text}, where will the {name} be?"
                qs.append(Question("where_at_event", text, [], k, extra=dict(extra)))
            t = _seconds(frame - last, clip.fps)
            text = f"Imagine the scene {t} seconds after the video ends. Where will the {name} be then?"
            qs.append(Question("where_at_time", text, [], -1, extra=dict(extra, seconds=t)))
    return qs


def frame_trajectory(clip: Clip, q: Question, final: str) -> tuple[list[str], list[int]]:
    """THOUGHTs and 1-based reasoning-frame indices of a frame-needing question (``len(thoughts) == spans + 1``).

    ``where_at_event``: the events up to the named one grouped by the pool frame that first shows them, as in the
    event chains ("Next, …" / "Then, …"), one span per group; ``where_at_time``: "Imagine the scene t seconds after
    the video ends." and one span. The thought after the last span is the layout reading (:func:`layout_text`)
    followed by ``final``: one thought, as a TwiFF trajectory has one text segment per gap between frames."""
    p = int(q.extra["pool_index"])
    lead = observation(clip)
    reading = f"{layout_text(clip, clip.pool[p])} {final}"
    if q.kind == "where_at_time":
        moment = f"Imagine the scene {q.extra['seconds']} seconds after the video ends."
        return [f"{lead} {moment}", reading], [p + 1]
    groups: dict[int, list[Event]] = {}
    for e in clip.future[: q.chain_end + 1]:
        groups.setdefault(pool_bin(e.frame, clip.pool), []).append(e)
    bins = sorted(groups)
    if bins[-1] != p:
        raise ValueError(f"{clip.clip_id}: the named event is not shown first in pool frame {p + 1}")
    thoughts = []
    for n, b in enumerate(bins):
        said = " and ".join(e.text for e in groups[b])
        thoughts.append(f"{lead} Next, {said}." if n == 0 else f"Then, {said}.")
    thoughts.append(reading)
    return thoughts, [b + 1 for b in bins]


def place_distractors(clip: Clip, q: Question, rng: np.random.Generator | None = None, n: int = 3) -> list[str]:
    """Three wrong places whose pattern does not point at the answer: the other two columns of the asked support
    (so the answer is one of the three columns of its support, and the support words give nothing away), and one
    place on another support that is never the answer: the object's present place when it changed there, else a
    random column (drawn from ``rng``) of another support the scene has (the ledge, else the air)."""
    if n != 3:
        raise ValueError(f"frame-needing questions have 4 options (3 distractors), got n={n}")
    b = int(q.extra["body"])
    name = clip.names[b]
    frame = clip.pool[int(q.extra["pool_index"])]
    support = clip.sim.supports[frame][b]
    same = [f"the {name} is {place_phrase(support, c)}" for c in COLUMNS]
    out = [o for o in same if o != q.extra["answer"]]
    if q.extra["changed"] and q.extra["present"] not in same:
        return out + [q.extra["present"]]
    others = [s for s in ("floor", "ledge", "air") if s != support and (s != "ledge" or clip.sim.scene.ledge)]
    rng = rng if rng is not None else np.random.default_rng(0)
    other = others[int(rng.integers(0, len(others)))] if len(others) > 1 else others[0]
    return out + [f"the {name} is {place_phrase(other, COLUMNS[int(rng.integers(0, 3))])}"]
