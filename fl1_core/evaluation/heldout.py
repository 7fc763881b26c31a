"""Held-out MCQ accuracy in the RL prompt format: the yardstick of "did RL help over the SFT checkpoint".

Greedy interleaved decoding (:func:`fl1_core.decoding.decode_batches`) of every record's prompt, built exactly like an
RL rollout prompt (:func:`fl1_core.data.examples.rl_prompt` through :mod:`fl1_core.data.prompt_inputs`), scored by the rule
check (:func:`fl1_core.answers.rule_correct`: the strict option letter of the last ``<answer>`` span):

    accuracy = (1/N) · Σ_i 1[strict_letter(response_i) = answer_i]
    event_accuracy = (1/N) · Σ_i 1[concluded_option(response_i) = answer_i]      (the prediction, letter aside)
    binding = Σ_i 1[letter_i = answer_i ∧ concluded_i = answer_i] / Σ_i 1[concluded_i = answer_i]

On the world the records are ``heldout_mcq.jsonl`` (test clips, every question kind); on real data any RL-format
MCQ file whose videos were not trained on. A response without a strict letter counts as wrong (``format_valid``
reports how many had one).

The default budget (:data:`HELDOUT_MAX_NEW_TOKENS` = 192) fits three latent spans (11 tokens each) and their
thoughts: at 112 tokens a latent SFT checkpoint of the world lost 72 of 400 answers to truncation mid-thought.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from fl1_core.config import LatentConfig
from fl1_core.data.examples import rl_prompt
from fl1_core.data.records import RLRecord
from fl1_core.decoding import decode_batches, decoded_texts
from fl1_core.answers import concluded_letter, extract_answer_letter, rule_correct

__all__ = ["CHAIN_PREFIX", "HELDOUT_MAX_NEW_TOKENS", "evaluate_heldout_mcq", "item_group", "question_kinds",
           "run_heldout_mcq"]

log = logging.getLogger(__name__)

HELDOUT_MAX_NEW_TOKENS = 192
#: the chain route: the response is made to start the way the world's chains start, so a model that also knows a
#: one-line answer ("So, X, which is option B.") is scored on the route SFT trains
CHAIN_PREFIX = "<reason>At the end of the video,"


def reading_prefix(record: RLRecord) -> str:
    """The reading route: the response starts with ``<reason>`` and the world's own reading of the last observed
    frame (the observation sentence of ``meta.reference_thoughts[0]``,
    :func:`fl1_core.data.world.description.observation_sentence`), so the chain goes on from the right movers."""
    from ..data.world.description import observation_sentence

    thoughts = (record.meta or {}).get("reference_thoughts") or [""]
    sentence = observation_sentence(thoughts[0])
    if sentence is None:
        raise ValueError(f"held-out record {record.id}: meta.reference_thoughts[0] has no reading of the last observed "
                         "frame (\"At the end of the video, … .\"); the reading route needs a generated world's records")
    return f"<reason>{sentence}"


#: the answer routes of ``fl1 heldout --route``: a fixed prefix of every response, or each record's own
ROUTES = {"free": "", "chain": CHAIN_PREFIX, "reading": reading_prefix}


def item_group(record: RLRecord) -> str:
    """``frame`` (frame-needing kinds), ``text`` (text-solvable) or ``vision`` (the other event kinds), from the
    record's ``meta``; ``all`` without one."""
    from fl1_core.data.world.world_types import TEXT_KINDS

    meta = record.meta or {}
    if meta.get("needs_frame"):
        return "frame"
    if "question_kind" not in meta:
        return "all"
    return "text" if meta["question_kind"] in TEXT_KINDS else "vision"


def question_kinds(path: str | os.PathLike) -> dict[str, str]:
    """``{record id: meta.question_kind}`` of an RL-format ``.jsonl`` (or ``.json`` list) file; records without a
    kind are left out."""
    text = Path(path).read_text(encoding="utf-8")
    rows = json.loads(text) if str(path).endswith(".json") else [json.loads(x) for x in text.splitlines() if x.strip()]
    return {str(r["id"]): str(r["meta"]["question_kind"]) for r in rows
            if "id" in r and (r.get("meta") or {}).get("question_kind") is not None}


@torch.no_grad()
def evaluate_heldout_mcq(
    model: Any,
    processor: Any,
    records: Sequence[RLRecord],
    *,
    max_new_tokens: int = HELDOUT_MAX_NEW_TOKENS,
    batch_size: int = 32,
    latent_config: LatentConfig | None = None,
    system_prompt: str = "interleaved",
    kinds: Mapping[str, str] | None = None,
    progress: bool = True,
    assistant_prefix: str | Callable[[RLRecord], str] = "",
) -> dict[str, Any]:
    """Greedy accuracy of ``model`` on multiple-choice RL records.

    Returns ``{"n", "accuracy", "event_accuracy", "binding", "format_valid", "letters": {letter or "none": count},
    "by_kind": {kind: {"n", "accuracy", "event_accuracy"}}, "rows": [{"id", "kind", "answer", "pred", "correct",
    "concluded", "text"}]}``; ``kind`` is ``kinds[record.id]`` (see :func:`question_kinds`), else ``"all"``.
    ``concluded`` is the option the final thought states (:func:`fl1_core.answers.concluded_option`);
    ``event_accuracy`` = share of rows whose concluded option is the answer, ``binding`` = accuracy among those
    (None when there are none): the letter step on its own. ``by_group`` holds the same per group of kinds
    (:func:`item_group`) and, for frame-needing items, ``frame changed`` / ``frame unchanged`` (the answer differs
    from the last observed frame's, or not). ``assistant_prefix`` (e.g. :data:`CHAIN_PREFIX`) is written for the
    model as the start of every response; a callable (e.g. :func:`reading_prefix`) gives each record's own, checked
    on every record before any decoding.
    """
    mcq = [r for r in records if r.is_multiple_choice]
    if not mcq:
        raise ValueError("evaluate_heldout_mcq needs at least one multiple-choice record")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if callable(assistant_prefix):
        for rec in mcq:
            assistant_prefix(rec)  # a record it cannot start is refused before the model runs
    batches = decode_batches(model, processor, mcq, prompt_of=rl_prompt, batch_size=batch_size,
                             system_prompt=system_prompt, assistant_prefix=assistant_prefix,
                             max_new_tokens=max_new_tokens, latent_config=latent_config, progress=progress,
                             desc="held-out MCQ")
    texts = decoded_texts(batches)
    rows: list[dict[str, Any]] = [
        {"id": rec.id, "kind": str((kinds or {}).get(rec.id, "all")), "answer": rec.answer,
         "pred": extract_answer_letter(text, mode="strict"), "correct": bool(rule_correct(text, rec)),
         "concluded": concluded_letter(text, rec), "text": text, "group": item_group(rec),
         "changed": (rec.meta or {}).get("changed")}
        for rec, text in zip(mcq, texts)
    ]
    by_kind: dict[str, list[dict]] = defaultdict(list)
    by_group: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_kind[r["kind"]].append(r)
        by_group[r["group"]].append(r)
        if r["group"] == "frame" and r["changed"] is not None:
            by_group["frame changed" if r["changed"] else "frame unchanged"].append(r)
    n = len(rows)
    right_event = [r for r in rows if r["concluded"] == r["answer"]]
    return {
        "n": n,
        "accuracy": sum(r["correct"] for r in rows) / n,
        "event_accuracy": len(right_event) / n,
        "binding": sum(r["correct"] for r in right_event) / len(right_event) if right_event else None,
        "format_valid": sum(bool(r["pred"]) for r in rows) / n,
        "letters": dict(sorted(Counter(r["pred"] or "none" for r in rows).items())),
        "by_kind": {k: {"n": len(v), "accuracy": sum(r["correct"] for r in v) / len(v),
                        "event_accuracy": sum(r["concluded"] == r["answer"] for r in v) / len(v)}
                    for k, v in sorted(by_kind.items())},
        "by_group": {k: {"n": len(v), "accuracy": sum(r["correct"] for r in v) / len(v),
                         "event_accuracy": sum(r["concluded"] == r["answer"] for r in v) / len(v)}
                     for k, v in sorted(by_group.items())},
        "assistant_prefix": assistant_prefix if isinstance(assistant_prefix, str) else assistant_prefix.__name__,
        "rows": rows,
    }


def run_heldout_mcq(
    checkpoints: Mapping[str, str | os.PathLike],
    data_path: str | os.PathLike,
    out_path: str | os.PathLike | None = None,
    *,
    limit: int | None = None,
    **kwargs: Any,
) -> dict[str, dict[str, Any]]:
    """Load each named checkpoint and :func:`evaluate_heldout_mcq` it on the MCQ records of ``data_path`` (``limit``
    of them spread over the file when given, so the frame-needing items after the event kinds keep their share).

    Returns ``{name: result}``; with ``out_path`` also writes it (atomically) as JSON, and each model's responses
    to ``<out_path stem>.<name>.jsonl`` beside it (characters other than letters, digits, ``_.-`` in the name
    become ``_``). ``kwargs`` go to :func:`evaluate_heldout_mcq`.
    """
    from fl1_core.data.formats import load_rl_records, spread_limit
    from fl1_core.model import load_future_l1
    from fl1_core.runs import atomic_write_json, write_jsonl

    loaded = load_rl_records(data_path, on_error="skip")
    if loaded.rejects:
        log.warning("%d held-out record(s) rejected (first: %s)", len(loaded.rejects), loaded.rejects[0].reason)
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be >= 1 or None, got {limit}")
    records = spread_limit([r for r in loaded.records if r.is_multiple_choice], limit)  # every kind keeps its share
    kinds = question_kinds(data_path)
    results: dict[str, dict[str, Any]] = {}
    for name, ckpt in checkpoints.items():
        model, processor = load_future_l1(ckpt)
        res = evaluate_heldout_mcq(model, processor, records, kinds=kinds, **kwargs)
        log.info("held-out MCQ %s: accuracy %.3f (format-valid %.3f, n=%d)", name, res["accuracy"],
                 res["format_valid"], res["n"])
        results[name] = {**res, "checkpoint": str(ckpt)}
        del model
    if out_path is not None:
        out = Path(out_path)
        for name, res in results.items():
            write_jsonl(out.with_name(f"{out.stem}.{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)}.jsonl"), res["rows"])
        atomic_write_json(out, {name: {k: v for k, v in res.items() if k != "rows"} for name, res in results.items()}
                          | {"data_path": str(data_path)})
    return results
