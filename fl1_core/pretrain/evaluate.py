"""Held-out measures of a world base: does it see, does it read, does it answer.

* ``scene_accuracy`` — greedy scene descriptions of frames from clips never trained on (a seed of their own):
  exact match of the whole description, and the share of object colours named in the right left-to-right slot;
* ``motion_accuracy`` — greedy motion descriptions of two consecutive pool frames of held-out clips (the pretraining
  ``motion`` task): exact match, and whether the bodies described as moving are exactly the moving ones;
* ``lookup_accuracy`` — option look-up ("Which option says: …?") over option sets of held-out MCQ records: the
  letter the model writes first inside ``<answer>``;
* ``heldout_mcq_by_group`` — :func:`fl1_core.evaluation.heldout.evaluate_heldout_mcq` on the world's ``heldout_mcq.jsonl``
  (test clips), split into text-solvable and vision-dependent kinds; also the share of responses whose reasoning
  *concludes* the gold option's text (:func:`concluded_text`), whatever letter follows, and on the event kinds the
  share whose first thought has exactly the world's bodies moving at the last observed frame (``movers_read``,
  :func:`movers_read_share`: the reading every event-kind chain starts from).

Every accuracy comes with its Wilson 95 % interval (``n`` items, :func:`fl1_core.intervals.wilson_interval`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..answers import answer_span
from ..intervals import wilson_interval
from ..data.collator import PromptExample
from ..data.formats import spread_limit
from ..data.world.options import options_block
from ..data.world.world_types import LETTERS, TEXT_KINDS
from ..decoding import decode_batches, decoded_texts
from ..data.world.curriculum_text import LOOKUP_QUESTION, MOTION_QUESTION, SCENE_QUESTION
from ..data.world.description import OBSERVATION_OPENING, moving_bodies
from ..evaluation.motion_visibility import MOVED_PX, calls_by_displacement
from .tasks import ClipStream, motion_text, scene_text

EVAL_SEED = 987_654  # clips of the scene measure: a seed no training stream uses


def _summary(correct: Sequence[bool]) -> dict[str, Any]:
    n, k = len(correct), int(sum(correct))
    lo, hi = wilson_interval(k, n)
    return {"n": n, "accuracy": k / n if n else 0.0, "ci95": [lo, hi]}


def _answer_span(text: str) -> str:
    """The last answer span, ``""`` without one (:func:`fl1_core.answers.answer_span`)."""
    return answer_span(text) or ""


def _greedy(model, processor, prompts: list[PromptExample], system: str, max_new_tokens: int,
            batch_size: int = 32) -> list[str]:
    return decoded_texts(decode_batches(model, processor, prompts, batch_size=batch_size, system_prompt=system,
                                        max_new_tokens=max_new_tokens))


def scene_accuracy(model, processor, n: int = 64, seed: int = EVAL_SEED) -> dict[str, Any]:
    """Greedy "Describe the picture" on ``n`` frames of held-out clips → exact match and colour-slot accuracy."""
    stream = ClipStream(seed)
    rng = np.random.default_rng([seed, 1])
    prompts, truths = [], []
    for i in range(n):
        clip = stream.clip(i)
        frame = int(rng.integers(0, clip.sim.states.shape[0]))
        prompts.append(PromptExample(f"scene-{i}", SCENE_QUESTION, [stream.frame(clip, frame)]))
        truths.append(scene_text(clip, frame))
    texts = _greedy(model, processor, prompts, "none", max_new_tokens=48)
    colours = set(stream.colors)
    exact, slots = [], []
    for text, truth in zip(texts, truths):
        got = _answer_span(text)
        exact.append(got == truth)
        want = [w.strip(",.") for w in truth.split() if w.strip(",.") in colours]
        said = [w.strip(",.") for w in got.split() if w.strip(",.") in colours]
        slots.extend(a == b for a, b in zip(want, said + [None] * len(want)))
    return {"exact": _summary(exact), "colour_slots": _summary(slots), "sample": texts[0]}


def motion_movers(description: str) -> set[str] | None:
    """The bodies a motion description ("The red ball is rolling left along the floor and …") has moving."""
    text = description.strip()
    return moving_bodies(f"{OBSERVATION_OPENING}{text[:1].lower()}{text[1:]}")


def motion_accuracy(model, processor, n: int = 64, seed: int = EVAL_SEED) -> dict[str, Any]:
    """Greedy motion descriptions of two consecutive pool frames of ``n`` held-out clips → exact match and movers
    right (:func:`motion_movers` of the answer equals that of the truth; the direction is not asked), beside the
    share a reader that says every body moves and one that reads exact displacements (> ``MOVED_PX``) would get, and
    the per-body calls by displacement (:func:`~fl1_core.evaluation.motion_visibility.calls_by_displacement`)."""
    stream = ClipStream(seed)
    rng = np.random.default_rng([seed, 2])
    prompts, truths, every, displaced, shifts = [], [], [], [], []
    for i in range(n):
        clip = stream.clip(i)
        a = int(rng.integers(0, len(clip.pool) - 1))
        frames = [clip.pool[a], clip.pool[a + 1]]
        prompts.append(PromptExample(f"motion-{i}", MOTION_QUESTION, [stream.frame(clip, f) for f in frames]))
        truths.append(motion_text(clip, frames[1]))
        movers, names = motion_movers(truths[-1]), [b.name for b in clip.sim.scene.bodies]
        shift = np.hypot(*(clip.sim.states[frames[1], :, :2] - clip.sim.states[frames[0], :, :2]).T)
        every.append(movers == set(names))
        displaced.append(movers == {name for name, d in zip(names, shift) if d > MOVED_PX})
        shifts.append([(name, float(d), name in movers) for name, d in zip(names, shift)])
    texts = _greedy(model, processor, prompts, "none", max_new_tokens=64)
    answers = [_answer_span(t) for t in texts]
    calls = [(d, moving, name in (motion_movers(a) or set()))
             for a, bodies in zip(answers, shifts) for name, d, moving in bodies]
    return {"exact": _summary([a == t for a, t in zip(answers, truths)]),
            "movers": _summary([motion_movers(a) == motion_movers(t) for a, t in zip(answers, truths)]),
            "every_body_moves": float(np.mean(every)), "exact_displacement": float(np.mean(displaced)),
            "calls_by_displacement": calls_by_displacement(calls), "sample": texts[0]}


def lookup_prompts(records: Sequence[dict], seed: int = 0) -> tuple[list[PromptExample], list[str]]:
    """One look-up prompt per MCQ record's options; the asked option drawn with ``default_rng([seed, 3])``."""
    rng = np.random.default_rng([seed, 3])
    prompts, letters = [], []
    for i, rec in enumerate(records):
        options = rec["meta"]["options"]
        asked = LETTERS[int(rng.integers(0, 4))]
        prompts.append(PromptExample(f"lookup-{i}", f"{options_block(options)}\n{LOOKUP_QUESTION.format(options[asked])}"))
        letters.append(asked)
    return prompts, letters


def lookup_accuracy(model, processor, records: Sequence[dict], seed: int = 0,
                    max_new_tokens: int = 6) -> dict[str, Any]:
    """Option look-up accuracy over the option sets of ``records`` (MCQ rows with ``meta.options``); the letter is
    read from the answer span, so a model that reasons first needs a larger ``max_new_tokens``."""
    prompts, letters = lookup_prompts([r for r in records if "options" in r.get("meta", {})], seed)
    texts = _greedy(model, processor, prompts, "none", max_new_tokens=max_new_tokens)
    return _summary([_answer_span(t)[:1] == want for t, want in zip(texts, letters)])


_CONCLUSION = re.compile(r"So, (.+?), which is option [A-D]")


def concluded_text(text: str) -> str | None:
    """The answer text of the reasoning's conclusion ("So, <answer>, which is option X."), or None.

    Scored against the gold option's text, it separates *knowing the answer* from *reading the options*: a model
    can conclude the right event and still write the wrong letter."""
    m = _CONCLUSION.search(text)
    return m.group(1).strip() if m else None


def read_heldout(world_dir: str | Path, limit: int | None = None) -> list[dict]:
    """The rows of ``<world>/heldout_mcq.jsonl`` (``limit`` of them spread over the file)."""
    path = Path(world_dir) / "heldout_mcq.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no held-out MCQ set; generate the world with `fl1 world --out {world_dir}`")
    rows = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
    return spread_limit(rows, limit)  # every group of kinds keeps its share


def movers_read_share(response_rows: Sequence[dict], heldout_rows: Sequence[dict],
                      assistant_prefix: str = "") -> dict[str, Any]:
    """Share of event-kind responses whose first thought has exactly the bodies moving that the world's first thought
    (``meta.reference_thoughts[0]`` of the held-out row) has moving; each response read as ``assistant_prefix`` +
    its text, since a forced prefix is not part of the decoded text (:func:`fl1_core.evaluation.role_swaps.movers_read`)."""
    from ..evaluation.role_swaps import movers_read

    references = {r["id"]: r["meta"]["reference_thoughts"][0] for r in heldout_rows
                  if r.get("meta", {}).get("reference_thoughts")}
    spoken = [{**row, "text": assistant_prefix + (row.get("text") or "")} for row in response_rows]
    return _summary([ok for ok in movers_read(spoken, references) if ok is not None])


def heldout_mcq_by_group(model, processor, world_dir: str | Path, limit: int | None = None,
                         batch_size: int = 32, assistant_prefix: str = "") -> dict[str, Any]:
    """Held-out MCQ accuracy (RL prompt format, greedy, strict letter): ``all`` (the event kinds), text-solvable,
    vision-dependent and ``frame`` (the frame-needing kinds); ``assistant_prefix`` as in
    :func:`fl1_core.evaluation.heldout.evaluate_heldout_mcq` (the chain route)."""
    from ..data.formats import load_rl_records
    from ..evaluation.heldout import evaluate_heldout_mcq

    path = Path(world_dir) / "heldout_mcq.jsonl"
    rows = read_heldout(world_dir, limit)
    keep = {r["id"] for r in rows}
    records = [r for r in load_rl_records(path, on_error="skip").records if r.id in keep]
    kinds = {r["id"]: r["meta"]["question_kind"] for r in rows}
    res = evaluate_heldout_mcq(model, processor, records, kinds=kinds, batch_size=batch_size, progress=False,
                               assistant_prefix=assistant_prefix)
    gold_text = {r["id"]: r["meta"]["options"][r["answer"]] for r in rows}
    frame = {r["id"] for r in rows if r["meta"].get("needs_frame")}
    groups: dict[str, list[bool]] = {"all": [], "text": [], "vision": [], "frame": []}
    concluded: dict[str, list[bool]] = {"all": [], "text": [], "vision": [], "frame": []}
    for row in res["rows"]:
        group = "frame" if row["id"] in frame else "text" if row["kind"] in TEXT_KINDS else "vision"
        said = concluded_text(row["text"]) == gold_text[row["id"]]
        for g in (("all", group) if group != "frame" else (group,)):
            groups[g].append(row["correct"])
            concluded[g].append(said)
    out = {g: _summary(v) for g, v in groups.items()}
    out["concluded_text"] = {g: _summary(v) for g, v in concluded.items()}
    out["movers_read"] = movers_read_share(res["rows"], rows, assistant_prefix)
    out["format_valid"] = res["format_valid"]
    out["letters"] = res["letters"]
    out["by_kind"] = res["by_kind"]
    return out
