"""``vocabulary_corpus``: every word and phrase template the world can emit (to train the tiny model's tokenizer)."""

from __future__ import annotations

import itertools

from fl1_core.tokens import (
    ANSWER_CLOSE,
    ANSWER_OPEN,
    IMAGE_PLACEHOLDER,
    MCQ_INSTRUCTION,
    REASON_CLOSE,
    REASON_OPEN,
    SYSTEM_PROMPTS,
)

from .config import WorldConfig
from .physics import SHAPES, event_text
from .questions import CHAIN_JOIN, LETTERS, ORDINALS, RIMAGE, describe_body, uniform_motion_text
from .records import conclusion


def vocabulary_corpus(config: WorldConfig | None = None) -> list[str]:
    """Deterministic list of sentences covering every template of the world.

    Covers event sentences for every object name, question templates, hints, THOUGHT prefixes, option lines
    ("A. …"), tags (<reason>, <answer>, <image>, <rimage>), the MCQ instruction, system prompts, numbers and Qwen
    video timestamps ("<0.5 seconds>" … "<10.0 seconds>").
    """
    cfg = config if config is not None else WorldConfig()
    names = [f"{c} {s}" for c in cfg.colors for s in SHAPES]
    sides, supports = ("left", "right"), ("floor", "ledge")
    out: list[str] = []
    events: list[str] = []
    for n in names:
        events += [event_text("bounce", n, where=w) for w in sides]
        events += [event_text("fall", n), event_text("land", n), event_text("switch", n)]
        events += [event_text("stop", n, where=w) for w in supports]
    for a, b in itertools.permutations(names, 2):
        events.append(event_text("hit", a, b))
    events += [event_text("light", "light"), "the light stays off", "the light turns off"]
    out += events
    out += [_cap(e) + "." for e in events[:: 7]]
    for n in names:
        shape = n.split()[1]
        for sup, d in itertools.product(supports, sides):
            out.append(describe_body(n, shape, sup, d))
            for target in ("wall", "switch", "edge", *[m for m in names if m != n]):
                out.extend(uniform_motion_text(n, sup, d, target))
        out += [describe_body(n, shape, s, None) for s in supports] + [describe_body(n, shape, "air", None)]
        out.append(f"The {n} is going to fall off the ledge. What will happen to the {n} after it falls?")
        out.append(f"Once the {n} leaves the ledge, gravity pulls it down to the floor.")
        out.append(f"The {n} has fallen off the ledge. What will happen to the {n} next?")
        out.append(f"The {n} is in the air, so gravity pulls it down to the floor.")
        for tense in ("is going to hit", "has just hit"):
            out.append(f"The {n} {tense} the switch, which is wired to the light. What will happen to the light?")
        out.append(f"What will happen to the {n} next?")
    for a, b in itertools.permutations(names, 2):
        out.append(f"The {a} is going to hit the {b}. What will happen to the {b} after that?")
    out.append("The switch is wired to the light, so pressing it closes the circuit.")
    out.append("What will happen next after the video ends?")
    out += [f"Counting from the end of the video, what will be the {o} event to happen?" for o in ORDINALS]
    e0, e1, e2 = events[0], events[len(events) // 2], events[-4]
    out.append(f"Which will happen first: {e0} or {e1}?")
    out.append(f"Later, {e2}. What happens between the end of the video and that moment?")
    out.append(f"At the end of the video, {describe_body(names[0], 'ball', 'floor', 'right')} and "
               f"{describe_body(names[3], 'box', 'ledge', None)}. Next, {e1}.")
    out.append(f"Then, {e0} and {e2}.")
    out.append(conclusion(e0 + CHAIN_JOIN + e1))
    out += [conclusion(e2, letter) for letter in LETTERS]
    out += [f"{letter}. {e}" for letter, e in zip(LETTERS * 3, events[:12])]
    out += [f"THOUGHT {i}: " for i in range(10)]
    out.append(f"THOUGHT 0: {e0}.{IMAGE_PLACEHOLDER}THOUGHT 1: {e1}.{IMAGE_PLACEHOLDER}THOUGHT 2: {conclusion(e1)}")
    out.append(f"{e0}.{RIMAGE}{e1}.{RIMAGE}{conclusion(e1)} {ANSWER_OPEN}{e1}{ANSWER_CLOSE}")
    out += [f"{REASON_OPEN}{e}{REASON_CLOSE}" for e in events[:3]]
    out += [f"{ANSWER_OPEN}{letter}{ANSWER_CLOSE}" for letter in LETTERS]
    out += [IMAGE_PLACEHOLDER * k + "What will happen next after the video ends?" for k in range(1, 5)]
    out.append(MCQ_INSTRUCTION)
    out += [p for p in SYSTEM_PROMPTS.values() if p]
    out += [str(i) for i in range(101)]
    out += [f"<{t / 10:.1f} seconds>" for t in range(0, 101)]
    return list(dict.fromkeys(out))


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]
