"""THOUGHT trajectories and the record builders of every dataset kind of the synthetic world (TwiFF SFT, RL,
FutureBench, TwiFF-Bench; docs/PAPER.md#evaluation, docs/PAPER.md#data-formats)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from fl1_core.tokens import ANSWER_CLOSE, ANSWER_OPEN, IMAGE_PLACEHOLDER, MCQ_INSTRUCTION

from .physics import Event, pool_bin

from .description import observation
from .frame_questions import frame_trajectory
from .options import build_options, candidates_block, options_block
from .world_types import RIMAGE, Clip, Question, answer_text


# ------------------------------------------------------------------------------------------------------- trajectories
def trajectory(clip: Clip, q: Question, final: str) -> tuple[list[str], list[int]]:
    """THOUGHTs and 1-based pool indices of the reasoning (future) frames of a question.

    The imagined events future[0..chain_end] are grouped by the first pool frame that shows them; thought i (i < n)
    predicts the events of group i and reasoning image i shows them; the last thought is ``final`` (the conclusion).
    Frame-needing kinds read the last imagined frame before concluding
    (:func:`fl1_core.data.world.frame_questions.frame_trajectory`).
    Returns (thoughts, reasoning_image) with ``len(thoughts) == len(reasoning_image) + 1``.
    """
    if q.needs_frame:
        return frame_trajectory(clip, q, final)
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
    meta: dict[str, Any] = {
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
        "needs_frame": q.needs_frame,
    }
    if q.needs_frame:
        meta["frame_index"] = int(q.extra["pool_index"]) + 1  # 1-based pool index of the asked frame
        meta["changed"] = bool(q.extra["changed"])
        meta["present_answer"] = str(q.extra["present"])  # the answer read off the last observed frame
    return meta


def _human(clip: Clip, text: str) -> str:
    return IMAGE_PLACEHOLDER * clip.num_observed + text


# ------------------------------------------------------------------------------------------------------------ records
def sft_record(
    clip: Clip, q: Question, rec_id: str, rng: np.random.Generator, letter: str | None = None
) -> dict[str, Any]:
    """TwiFF SFT record (docs/PAPER.md#data-formats). MCQ when ``letter`` is given (and enough distractors exist)."""
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
    clip: Clip, q: Question, rec_id: str, rng: np.random.Generator, letter: str | None = None,
    candidates: list[str] | None = None,
) -> dict[str, Any] | None:
    """RL record (docs/PAPER.md#data-formats): MCQ (options lines, letter answer) when ``letter`` is given, else
    free-form; a free-form record with ``candidates`` lists them after the question ("Candidates:", one "- …" line
    each, no letters) and keeps the answer sentence as its answer."""
    ans = answer_text(clip, q)
    meta = _meta(clip, q, "mcq" if letter else "free-form")
    if letter is not None:
        options = build_options(clip, q, rng, letter)
        if options is None:
            return None
        meta["options"] = options
        value, answer, ptype = f"{q.text}\n{options_block(options)}", letter, "multiple choice"
    elif candidates:
        if ans not in candidates:
            raise ValueError(f"{rec_id}: the answer {ans!r} is not among its candidates")
        meta["candidates"] = list(candidates)
        value, answer, ptype = f"{q.text}\n{candidates_block(candidates)}", ans, "free-form"
    else:
        value, answer, ptype = q.text, ans, "free-form"
    thoughts, rimg = trajectory(clip, q, conclusion(ans, letter))
    meta["reference_thoughts"] = thoughts  # the SFT-format chain the generator writes for this question
    meta["reference_spans"] = len(rimg)
    meta["reference_frames"] = rimg  # 1-based pool indices of the frames its spans show
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
    """FutureBench-style MCQ item over the observed-prefix video (docs/PAPER.md#evaluation)."""
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
