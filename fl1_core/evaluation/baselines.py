"""Reference scores that need no trained model, reported beside every held-out MCQ score.

For each multiple-choice item (``heldout_mcq.jsonl``: ``meta.question_kind``, ``meta.options``, gold letter
``answer``; frame-needing items also carry ``meta.changed`` and ``meta.present_answer``):

* **chance** — ``1 / k`` for an item of ``k`` options; a group's chance is the mean over its items (the expected
  accuracy of a uniform random guess);
* **present** ("read the present") — the option whose normalised text (:func:`fl1_core.answers.normalize`) equals
  ``meta.present_answer``, the answer read off the last observed frame; when no option equals it, the first option
  in letter order (a fixed rule, counted as ``present_fallback``). Event kinds have no present answer: ``None``.
  On a frame item it is right exactly when the asked position did not change (``meta.changed`` false) and wrong on
  every changed item whose present answer is an option;
* **text** — a question-only model (no video): a pairwise logistic regression over (question, option) features,
  trained on the MCQ records of TRAIN clips (the world's ``rl.jsonl`` and ``sft.json``), that scores every option
  ``s(o) = w·f(q, o)`` and picks ``argmax_o s(o)`` (ties: the first letter). Training pairs are
  ``(f(q, gold) − f(q, wrong), 1)`` and their negation ``(·, 0)`` for each wrong option, no intercept, so only
  differences between options of one item are learned. ``f`` is the concatenation of

  - TF-IDF of the option's word 1–2-grams,
  - question-word × option-word indicators (l2-normalised per pair), the interaction of question and option,
  - three item-relative scalars: the share of the option's words found in the question, the option's mean word-set
    Jaccard similarity to the item's other options, and its word count minus the item's mean word count.

  It says how much of each kind a model could answer from text priors alone. No option letter is a feature.

:func:`baseline_predictions` gives every item's predictions, :func:`summarize_baselines` the per-kind table with
Wilson 95 % intervals (:func:`fl1_core.intervals.wilson_interval`), :func:`format_baselines_table` its
Markdown, :func:`run_baselines` all of it for a world folder (``fl1 baselines``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import sparse
from sklearn.feature_extraction import DictVectorizer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import normalize as l2_rows

from ..answers import normalize, option_lines, reference_letter
from ..data.formats import read_json_rows
from ..intervals import wilson_interval
from ..runs import atomic_write_json
from ..tokens import IMAGE_PLACEHOLDER, MCQ_INSTRUCTION

__all__ = ["MCQItem", "TextOnlyModel", "baseline_predictions", "format_baselines_table", "load_mcq_items",
           "mcq_items", "present_letter", "run_baselines", "summarize_baselines", "world_train_items"]

log = logging.getLogger(__name__)

TRAIN_FILES = ("rl.jsonl", "sft.json")  # MCQ rows of train clips feed the text model
HELDOUT_FILE = "heldout_mcq.jsonl"


@dataclass(frozen=True)
class MCQItem:
    """One multiple-choice item as the baselines see it: text only, plus the world's metadata."""

    id: str
    kind: str
    question: str  # the question stem: no image markers, option lines or letter instruction
    options: Mapping[str, str]
    answer: str  # the gold letter
    clip_id: str = ""
    split: str = ""
    needs_vision: bool = True
    needs_frame: bool = False
    changed: bool | None = None
    present_answer: str | None = None


def _stem(human: str) -> str:
    """The question without ``<image>`` markers, option lines and the single-letter instruction."""
    lines = human.replace(IMAGE_PLACEHOLDER, "").splitlines()
    kept = [ln for ln in lines if not option_lines(ln) and ln.strip() != MCQ_INSTRUCTION]
    return "\n".join(kept).strip()


def _item(row: Mapping[str, Any], where: str) -> MCQItem | None:
    """An :class:`MCQItem` of a record, None when the record is free-form; ``ValueError`` naming the record and the
    field when an MCQ record lacks what the baselines need."""
    if not isinstance(row, Mapping):
        raise ValueError(f"{where}: expected a record object, got {type(row).__name__}")
    rid = str(row.get("id", where))
    meta = row.get("meta") or {}
    human = next((c.get("value", "") for c in row.get("conversations", []) if c.get("from") == "human"), None)
    if human is None:
        raise ValueError(f"{rid}: no human turn in 'conversations'")
    options = meta.get("options") or option_lines(human)
    if meta.get("format") == "free-form" or not options:
        return None
    gold = reference_letter(str(row.get("answer", "")))
    if gold is None or gold not in options:
        raise ValueError(f"{rid}: 'answer' must be one of the option letters {sorted(options)}, got {row.get('answer')!r}")
    if len(options) < 2:
        raise ValueError(f"{rid}: 'meta.options' needs at least two options, got {len(options)}")
    kind = meta.get("question_kind")
    if not kind:
        raise ValueError(f"{rid}: 'meta.question_kind' is missing")
    needs_frame = bool(meta.get("needs_frame", False))
    if needs_frame and ("present_answer" not in meta or "changed" not in meta):
        raise ValueError(f"{rid}: a frame-needing item needs 'meta.present_answer' and 'meta.changed'")
    return MCQItem(
        id=rid, kind=str(kind), question=_stem(human), options={k: str(options[k]) for k in sorted(options)},
        answer=gold, clip_id=str(meta.get("clip_id", "")), split=str(meta.get("split", "")),
        needs_vision=bool(meta.get("needs_vision", True)), needs_frame=needs_frame,
        changed=bool(meta["changed"]) if needs_frame else None,
        present_answer=str(meta["present_answer"]) if needs_frame else None,
    )


def mcq_items(rows: Iterable[Mapping[str, Any]], source: str = "records") -> list[MCQItem]:
    """The multiple-choice items of records in the RL or SFT format (free-form records are skipped)."""
    items = [_item(r, f"{source}[{i}]") for i, r in enumerate(rows)]
    return [it for it in items if it is not None]


def load_mcq_items(path: str | os.PathLike) -> list[MCQItem]:
    """:func:`mcq_items` of a ``.json`` list or ``.jsonl`` file; an unreadable JSONL line raises ``ValueError``."""
    rows = []
    for pos, row, problem in read_json_rows(path):
        if problem is not None:
            raise ValueError(f"{path}: record {pos}: {problem}")
        rows.append(row)
    return mcq_items(rows, str(path))


def world_train_items(world: str | os.PathLike) -> list[MCQItem]:
    """The MCQ items of TRAIN clips in the world's :data:`TRAIN_FILES` (the text model's training set)."""
    items = [it for name in TRAIN_FILES for it in load_mcq_items(Path(world) / name)]
    return [it for it in items if it.split == "train"]


def present_letter(item: MCQItem) -> str | None:
    """The "read the present" prediction: the option equal (normalised) to ``present_answer``, else the first
    option letter; None for items without a present answer (event kinds)."""
    if item.present_answer is None:
        return None
    want = normalize(item.present_answer)
    hit = [k for k, v in item.options.items() if normalize(v) == want]
    return hit[0] if hit else sorted(item.options)[0]


# ------------------------------------------------------------------------------------------------ question-only model
def _words(text: str) -> list[str]:
    return normalize(text).split()


def _jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a | b else 0.0


class TextOnlyModel:
    """The question-only pairwise logistic ranker of the module docstring (deterministic: lbfgs, fixed seed)."""

    def __init__(self, C: float = 1.0, random_state: int = 0, max_iter: int = 5000) -> None:
        self.C, self.random_state, self.max_iter = C, random_state, max_iter
        self._tfidf: TfidfVectorizer | None = None
        self._cross: DictVectorizer | None = None
        self._clf: LogisticRegression | None = None

    # features -------------------------------------------------------------------------------------------------------
    @staticmethod
    def _cross_dicts(item: MCQItem) -> list[dict[str, float]]:
        q = sorted(set(_words(item.question)))
        return [{f"{a}|{b}": 1.0 for a in q for b in sorted(set(_words(o)))} for o in item.options.values()]

    @staticmethod
    def _scalars(item: MCQItem) -> np.ndarray:
        qset = set(_words(item.question))
        words = [_words(o) for o in item.options.values()]
        sets = [set(w) for w in words]
        mean_len = float(np.mean([len(w) for w in words]))
        rows = []
        for i, w in enumerate(words):
            overlap = sum(x in qset for x in w) / max(1, len(w))
            others = [_jaccard(sets[i], s) for j, s in enumerate(sets) if j != i]
            rows.append([overlap, float(np.mean(others)) if others else 0.0, (len(w) - mean_len) / 10.0])
        return np.asarray(rows, dtype=np.float64)

    def _features(self, items: Sequence[MCQItem]) -> sparse.csr_matrix:
        """One row per (item, option), items in order, options in letter order."""
        texts = [o for it in items for o in it.options.values()]
        crosses = [d for it in items for d in self._cross_dicts(it)]
        scal = np.vstack([self._scalars(it) for it in items])
        return sparse.hstack([self._tfidf.transform(texts), l2_rows(self._cross.transform(crosses)),
                              sparse.csr_matrix(scal)]).tocsr()

    # fit / predict ---------------------------------------------------------------------------------------------------
    def fit(self, items: Sequence[MCQItem]) -> TextOnlyModel:
        """Fit on items with gold letters (at least one item with two options)."""
        if not items:
            raise ValueError("TextOnlyModel.fit needs at least one multiple-choice item")
        self._tfidf = TfidfVectorizer(ngram_range=(1, 2), preprocessor=normalize, token_pattern=r"[0-9a-z]+")
        self._tfidf.fit([o for it in items for o in it.options.values()])
        self._cross = DictVectorizer().fit([d for it in items for d in self._cross_dicts(it)])
        X = self._features(items)
        diffs, start = [], 0
        for it in items:
            letters = list(it.options)
            g = start + letters.index(it.answer)
            diffs += [X[g] - X[start + j] for j, k in enumerate(letters) if k != it.answer]
            start += len(letters)
        D = sparse.vstack(diffs).tocsr()
        y = np.r_[np.ones(D.shape[0]), np.zeros(D.shape[0])]
        self._clf = LogisticRegression(C=self.C, fit_intercept=False, max_iter=self.max_iter,
                                       random_state=self.random_state)
        self._clf.fit(sparse.vstack([D, -D]).tocsr(), y)
        log.info("text-only model: %d items, %d difference pairs, %d features", len(items), D.shape[0], D.shape[1])
        return self

    def scores(self, items: Sequence[MCQItem]) -> list[dict[str, float]]:
        """``{letter: w·f(q, option)}`` per item."""
        if self._clf is None:
            raise RuntimeError("TextOnlyModel.scores before fit")
        s = self._features(items) @ self._clf.coef_.ravel()
        out, start = [], 0
        for it in items:
            out.append({k: float(s[start + j]) for j, k in enumerate(it.options)})
            start += len(it.options)
        return out

    def predict(self, items: Sequence[MCQItem]) -> list[str]:
        """The argmax letter per item (ties: the first in letter order)."""
        return [max(sc, key=lambda k: (sc[k], -ord(k[0]))) for sc in self.scores(items)]


# ------------------------------------------------------------------------------------------------- predictions, table
def baseline_predictions(heldout: Sequence[MCQItem], train: Sequence[MCQItem], *, C: float = 1.0,
                         random_state: int = 0) -> dict[str, dict[str, Any]]:
    """``{item id: {"kind", "needs_vision", "needs_frame", "changed", "gold", "chance", "present", "text", "text_scores"}}``;
    ``chance`` is ``1/k``, ``present`` a letter or None (:func:`present_letter`), ``text`` the question-only model's
    letter. Train and held-out items must come from disjoint clips."""
    shared = {it.clip_id for it in train if it.clip_id} & {it.clip_id for it in heldout if it.clip_id}
    if shared:
        raise ValueError(f"text-model training items share clips with the held-out items: {sorted(shared)[:5]}")
    model = TextOnlyModel(C=C, random_state=random_state).fit(train)
    scores = model.scores(heldout)
    out: dict[str, dict[str, Any]] = {}
    for it, sc in zip(heldout, scores):
        out[it.id] = {"kind": it.kind, "needs_vision": it.needs_vision, "needs_frame": it.needs_frame, "changed": it.changed, "gold": it.answer,
                      "chance": 1.0 / len(it.options), "present": present_letter(it),
                      "present_fallback": it.present_answer is not None and not any(
                          normalize(v) == normalize(it.present_answer) for v in it.options.values()),
                      "text": max(sc, key=lambda k: (sc[k], -ord(k[0]))), "text_scores": sc}
    return out


def _score(rows: Sequence[Mapping[str, Any]], key: str) -> dict[str, Any] | None:
    if any(r[key] is None for r in rows):
        return None
    k = sum(r[key] == r["gold"] for r in rows)
    lo, hi = wilson_interval(k, len(rows))
    return {"correct": int(k), "accuracy": k / len(rows), "ci95": [lo, hi]}


def _groups(preds: Mapping[str, Mapping[str, Any]]) -> list[tuple[str, str, list[Mapping[str, Any]]]]:
    rows = list(preds.values())
    event = sorted({r["kind"] for r in rows if not r["needs_frame"]})
    frame = sorted({r["kind"] for r in rows if r["needs_frame"]})
    out = [(k, "all", [r for r in rows if r["kind"] == k]) for k in event]
    for k in frame:
        these = [r for r in rows if r["kind"] == k]
        out += [(k, "all", these), (k, "changed", [r for r in these if r["changed"]]),
                (k, "unchanged", [r for r in these if not r["changed"]])]
    ev, fr = [r for r in rows if not r["needs_frame"]], [r for r in rows if r["needs_frame"]]
    out += [("event kinds", "all", ev), ("event kinds", "text-solvable", [r for r in ev if not r["needs_vision"]]),
            ("event kinds", "needs vision", [r for r in ev if r["needs_vision"]]), ("frame-needing kinds", "all", fr),
            ("frame-needing kinds", "changed", [r for r in fr if r["changed"]]),
            ("frame-needing kinds", "unchanged", [r for r in fr if not r["changed"]])]
    return [g for g in out if g[2]]


def summarize_baselines(preds: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per kind (frame kinds also per changed / unchanged subset) and per family (event kinds also split into
    text-solvable and vision-dependent by ``meta.needs_vision``): ``{"kind", "subset", "n", "chance",
    "present", "text"}``, where ``present`` / ``text`` are ``{"correct", "accuracy", "ci95"}`` (Wilson 95 %) and
    ``present`` is None for groups holding event items."""
    table = []
    for kind, subset, rows in _groups(preds):
        table.append({"kind": kind, "subset": subset, "n": len(rows),
                      "chance": float(np.mean([r["chance"] for r in rows])),
                      "present": _score(rows, "present"), "text": _score(rows, "text"),
                      "present_fallback": int(sum(bool(r["present_fallback"]) for r in rows))})
    return table


def _cell(score: Mapping[str, Any] | None) -> str:
    if score is None:
        return "—"
    lo, hi = score["ci95"]
    return f"{100 * score['accuracy']:.1f} [{100 * lo:.1f}, {100 * hi:.1f}]"


def format_baselines_table(table: Sequence[Mapping[str, Any]]) -> str:
    """Markdown of :func:`summarize_baselines` (accuracies in %, Wilson 95 % CIs in brackets)."""
    lines = ["| kind | subset | n | chance | present [95 % CI] | text-only [95 % CI] |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['kind']} | {r['subset']} | {r['n']} | {100 * r['chance']:.1f} | {_cell(r['present'])} | "
              f"{_cell(r['text'])} |" for r in table]
    return "\n".join(lines)


def run_baselines(world: str | os.PathLike, out: str | os.PathLike | None = None, *, C: float = 1.0,
                  random_state: int = 0) -> dict[str, Any]:
    """All baselines of a world folder: train on :func:`world_train_items`, predict ``heldout_mcq.jsonl``.

    Returns (and writes to ``out`` as JSON when given) ``{"world", "text_model", "train", "heldout", "table",
    "predictions"}``."""
    world = Path(world)
    train = world_train_items(world)
    heldout = load_mcq_items(world / HELDOUT_FILE)
    preds = baseline_predictions(heldout, train, C=C, random_state=random_state)
    kinds: dict[str, int] = {}
    for it in train:
        kinds[it.kind] = kinds.get(it.kind, 0) + 1
    result = {"world": str(world), "text_model": {"C": C, "random_state": random_state, "train_files": TRAIN_FILES},
              "train": {"n": len(train), "by_kind": dict(sorted(kinds.items()))},
              "heldout": {"file": HELDOUT_FILE, "n": len(heldout)},
              "table": summarize_baselines(preds), "predictions": preds}
    if out is not None:
        atomic_write_json(out, result)
    return result
