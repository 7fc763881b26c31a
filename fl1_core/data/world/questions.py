"""Questions, answers, THOUGHT trajectories and MCQ distractors of the synthetic future world, and the record
builders of every dataset kind (TwiFF SFT, RL, FutureBench, TwiFF-Bench; SPEC §7-§8).

Question kinds (``meta.question_kind``) and whether the future visual state is needed (``meta.needs_vision``):

- text-solvable: ``uniform_motion`` (the question states that a ball rolls steadily towards a wall / the switch / the
  ledge edge with nothing in its way), ``fall_land`` (a body falls off the ledge: it lands on the floor),
  ``switch_light`` (a body hits the switch wired to the light: the light turns on);
- vision-dependent: ``next_event``, ``kth_event`` (the k-th event after the video ends), ``object_next`` (what
  happens to X next), ``push_outcome`` (A hits B: what happens to B), ``which_first`` (which of two events comes
  first), ``interpolation`` (a later event is stated: what happens in between).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fl1_core.tokens import ANSWER_CLOSE, ANSWER_OPEN, IMAGE_PLACEHOLDER, MCQ_INSTRUCTION

from .physics import Event, Simulation, event_text, pool_bin

LETTERS = ("A", "B", "C", "D")
ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth")
TEXT_KINDS = ("uniform_motion", "fall_land", "switch_light")
VISION_KINDS = ("next_event", "kth_event", "object_next", "push_outcome", "which_first", "interpolation")
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
    def hops(self) -> int:
        return self.chain_end + 1


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def answer_text(clip: Clip, q: Question) -> str:
    """Canonical answer: one event sentence, or events joined by ', then ' (interpolation chains)."""
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


# ------------------------------------------------------------------------------------------------------- distractors
def alternatives(clip: Clip, e: Event) -> dict[str, list[str]]:
    """Plausible wrong versions of an event, by category (wrong object / direction / outcome / order)."""
    names = clip.names
    sc = clip.sim.scene
    s, o = e.subject, e.object
    others = [n for n in names if n != s]
    cats: dict[str, list[str]] = {"wrong_object": [], "wrong_direction": [], "wrong_outcome": [], "wrong_order": []}
    if e.type == "hit":
        cats["wrong_object"] += [event_text("hit", s, n) for n in names if n not in (s, o)]
        cats["wrong_object"] += [event_text("hit", n, o) for n in names if n not in (s, o)]
    elif e.type != "light":
        cats["wrong_object"] += [event_text(e.type, n, None, e.where) for n in others]
    if e.type == "bounce":
        cats["wrong_direction"].append(event_text("bounce", s, where="left" if e.where == "right" else "right"))
    if e.type == "stop" and sc.ledge is not None:
        cats["wrong_direction"].append(event_text("stop", s, where="ledge" if e.where == "floor" else "floor"))
    walls = [event_text("bounce", s, where=w) for w in ("left", "right")]
    outcome = {
        "bounce": [event_text("stop", s, where="floor")] + ([event_text("switch", s)] if sc.switch_side else []),
        "hit": walls + [event_text("stop", s, where="floor")],
        "fall": [event_text("stop", s, where="ledge")] + walls,
        "land": [event_text("stop", s, where="ledge")] + walls,
        "stop": walls + ([event_text("fall", s)] if e.where == "ledge" else []),
        "switch": walls + [event_text("stop", s, where="floor")],
        "light": ["the light stays off", "the light turns off"],
    }[e.type]
    cats["wrong_outcome"] += outcome
    cats["wrong_order"] += [f.text for f in clip.sim.events if f is not e]
    return cats


def _pick(cats: dict[str, list[str]], exclude: set[str], n: int, rng: np.random.Generator) -> list[str]:
    """Pick ``n`` distinct strings not in ``exclude``, round-robin over shuffled categories."""
    pools = []
    for key in sorted(cats):
        items = [c for c in dict.fromkeys(cats[key]) if c not in exclude]
        pools.append([items[i] for i in rng.permutation(len(items))])
    order = [pools[i] for i in rng.permutation(len(pools))]
    picked: list[str] = []
    while len(picked) < n and any(order):
        for p in order:
            while p and p[0] in picked:
                p.pop(0)
            if p and len(picked) < n:
                picked.append(p.pop(0))
    return picked


def distractors(clip: Clip, q: Question, rng: np.random.Generator, n: int = 3) -> list[str]:
    """``n`` plausible wrong answers (wrong object, wrong direction, wrong order, wrong outcome)."""
    fut = clip.future
    correct = answer_text(clip, q)
    if len(q.answer_events) == 1:
        e = fut[q.answer_events[0]]
        exclude = {correct}
        if e.type == "hit" and e.object is not None:
            exclude.add(event_text("hit", e.object, e.subject))  # same collision, roles swapped: too ambiguous
        return _pick(alternatives(clip, e), exclude, n, rng)
    chain = [fut[i].text for i in q.answer_events]
    cats: dict[str, list[str]] = {"wrong_order": [], "wrong_object": [], "wrong_outcome": []}
    cats["wrong_order"].append(CHAIN_JOIN.join(reversed(chain)))
    if len(chain) >= 3:
        cats["wrong_order"].append(CHAIN_JOIN.join(chain[1:] + chain[:1]))
    later = [e.text for e in fut[q.chain_end + 1 :]]
    if later:
        cats["wrong_order"].append(CHAIN_JOIN.join(chain[1:] + later[:1]))
    for p, i in enumerate(q.answer_events):
        alts = alternatives(clip, fut[i])
        for key in ("wrong_object", "wrong_outcome", "wrong_direction"):
            for alt in alts[key]:
                if alt not in chain:
                    cats["wrong_object" if key == "wrong_object" else "wrong_outcome"].append(
                        CHAIN_JOIN.join(chain[:p] + [alt] + chain[p + 1 :])
                    )
    return _pick(cats, {correct}, n, rng)


def build_options(
    clip: Clip, q: Question, rng: np.random.Generator, letter: str
) -> dict[str, str] | None:
    """Four options with the correct answer at ``letter``; None when fewer than 3 distractors exist."""
    wrong = distractors(clip, q, rng)
    if len(wrong) < 3:
        return None
    pos = LETTERS.index(letter)
    texts = wrong[:pos] + [answer_text(clip, q)] + wrong[pos:]
    return dict(zip(LETTERS, texts))


def options_block(options: dict[str, str]) -> str:
    """'A. …' lines."""
    return "\n".join(f"{k}. {v}" for k, v in options.items())


class LetterBalancer:
    """Balanced answer letters: A-D repeated and shuffled by the seeded RNG, consumed in order."""

    def __init__(self, rng: np.random.Generator, n: int) -> None:
        m = -(-max(n, 1) // 4) * 4  # n rounded up to a multiple of 4
        seq = np.array([LETTERS[i % 4] for i in range(m)])
        self._seq = [str(x) for x in seq[rng.permutation(len(seq))]]
        self._i = 0

    def next(self) -> str:
        letter = self._seq[self._i % len(self._seq)]
        self._i += 1
        return letter


# ------------------------------------------------------------------------------------------------------- trajectories
def trajectory(clip: Clip, q: Question, final: str) -> tuple[list[str], list[int]]:
    """THOUGHTs and 1-based pool indices of the reasoning (future) frames of a question.

    The imagined events future[0..chain_end] are grouped by the first pool frame that shows them; thought i (i < n)
    predicts the events of group i and reasoning image i shows them; the last thought is ``final`` (the conclusion).
    Returns (thoughts, reasoning_image) with ``len(thoughts) == len(reasoning_image) + 1``.
    """
    fut = clip.future[: q.chain_end + 1]
    groups: dict[int, list[Event]] = {}
    for e in fut:
        groups.setdefault(pool_bin(e.frame, clip.pool), []).append(e)
    bins = sorted(groups)
    thoughts: list[str] = []
    for n, b in enumerate(bins):
        said = " and ".join(e.text for e in groups[b])
        if n == 0:
            lead = observation(clip)
            if q.hint:
                lead += " " + q.hint
            thoughts.append(f"{lead} Next, {said}.")
        else:
            thoughts.append(f"Then, {said}.")
    thoughts.append(final)
    return thoughts, [b + 1 for b in bins]


def conclusion(answer: str, letter: str | None = None) -> str:
    """The final thought."""
    if letter is None:
        return f"So, {answer}."
    return f"So, {answer}, which is option {letter}."


def _meta(clip: Clip, q: Question, fmt: str) -> dict[str, Any]:
    fut = clip.future
    return {
        "clip_id": clip.clip_id,
        "split": clip.split,
        "question_kind": q.kind,
        "needs_vision": q.needs_vision,
        "hops": q.hops,
        "format": fmt,
        "answer_text": answer_text(clip, q),
        "answer_event_indices": [clip.event_index(fut[i]) for i in q.answer_events],
        "chain_event_indices": [clip.event_index(e) for e in fut[: q.chain_end + 1]],
        "observed_until": clip.cutoff,
    }


def _human(clip: Clip, text: str) -> str:
    return IMAGE_PLACEHOLDER * clip.num_observed + text


# ------------------------------------------------------------------------------------------------------------ records
def sft_record(
    clip: Clip, q: Question, rec_id: str, rng: np.random.Generator, letter: str | None = None
) -> dict[str, Any]:
    """TwiFF SFT record (SPEC §8). MCQ when ``letter`` is given (and enough distractors exist)."""
    ans = answer_text(clip, q)
    options = build_options(clip, q, rng, letter) if letter is not None else None
    if options is None:
        letter = None
        question = q.text
    else:
        question = f"{q.text}\n{options_block(options)}\n{MCQ_INSTRUCTION}"
    thoughts, rimg = trajectory(clip, q, conclusion(ans, letter))
    gpt = "".join(
        f"THOUGHT {i}: {t}" + (IMAGE_PLACEHOLDER if i < len(rimg) else "") for i, t in enumerate(thoughts)
    )
    meta = _meta(clip, q, "mcq" if options else "free-form")
    if options:
        meta["options"] = options
    return {
        "id": rec_id,
        "video": clip.video,
        "image": list(range(1, clip.num_observed + 1)),
        "reasoning_image": rimg,
        "conversations": [{"from": "human", "value": _human(clip, question)}, {"from": "gpt", "value": gpt}],
        "answer": letter if options else ans,
        "cot": " ".join(thoughts),
        "meta": meta,
    }


def rl_record(
    clip: Clip, q: Question, rec_id: str, rng: np.random.Generator, letter: str | None = None
) -> dict[str, Any] | None:
    """RL record (SPEC §8): MCQ (options lines, letter answer) when ``letter`` is given, else free-form."""
    ans = answer_text(clip, q)
    meta = _meta(clip, q, "mcq" if letter else "free-form")
    if letter is not None:
        options = build_options(clip, q, rng, letter)
        if options is None:
            return None
        meta["options"] = options
        value, answer, ptype = f"{q.text}\n{options_block(options)}", letter, "multiple choice"
    else:
        value, answer, ptype = q.text, ans, "free-form"
    return {
        "id": rec_id,
        "video": clip.video,
        "image": list(range(1, clip.num_observed + 1)),
        "conversations": [{"from": "human", "value": _human(clip, value)}],
        "answer": answer,
        "problem_type": ptype,
        "meta": meta,
    }


def futurebench_item(
    clip: Clip, q: Question, qtype: str, rec_id: str, rng: np.random.Generator, letter: str
) -> dict[str, Any] | None:
    """FutureBench-style MCQ item over the observed-prefix video (SPEC §7)."""
    options = build_options(clip, q, rng, letter)
    if options is None:
        return None
    meta = _meta(clip, q, "mcq")
    meta["question_type"] = qtype
    return {
        "id": rec_id,
        "question_type": qtype,
        "video_path": clip.prefix_video,
        "qa": {"Question": q.text, "Options": options, "Answer": letter},
        "meta": meta,
    }


def twiffbench_row(clip: Clip, q: Question, rec_id: str, png: list[bytes]) -> dict[str, Any]:
    """TwiFF-Bench-style open-ended row; ``png`` are the 8 pool frames as PNG bytes."""
    ans = answer_text(clip, q)
    thoughts, rimg = trajectory(clip, q, conclusion(ans))
    chain = "".join(t + RIMAGE for t in thoughts[:-1])
    qimg = list(range(1, clip.num_observed + 1))
    meta = _meta(clip, q, "open-ended")
    meta["id"] = rec_id
    meta["events"] = [e.to_dict(clip.fps) for e in clip.future[: q.chain_end + 1]]
    return {
        "question": _human(clip, q.text),
        "answer": f"{chain}{thoughts[-1]} {ANSWER_OPEN}{ans}{ANSWER_CLOSE}",
        "question_images": [png[i - 1] for i in qimg],
        "reasoning_images": [png[i - 1] for i in rimg],
        "question_image_indices": qimg,
        "reasoning_image_indices": rimg,
        "meta_data": json.dumps(meta, sort_keys=True),
    }
