"""MCQ options of the synthetic world: plausible distractors (wrong object, direction, order or outcome), the four
option lines, and balanced answer letters."""

from __future__ import annotations


import numpy as np


from .physics import Event, event_text

from .frame_questions import place_distractors
from .world_types import CHAIN_JOIN, LETTERS, Clip, Question, answer_text


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
    """``n`` plausible wrong answers (wrong object, wrong direction, wrong order, wrong outcome; wrong places for the
    frame-needing kinds)."""
    if q.needs_frame:
        return place_distractors(clip, q, rng, n)
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


def candidates_block(candidates: list[str]) -> str:
    """'Candidates:' and one '- …' line per candidate (a free-form question's options, without letters)."""
    return "\n".join(["Candidates:", *(f"- {c}" for c in candidates)])


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
