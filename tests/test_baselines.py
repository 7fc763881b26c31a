"""Baselines that need no trained model: chance, read-the-present, the question-only text model, the table, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fl1_core.evaluation.baselines import (
    MCQItem,
    TextOnlyModel,
    baseline_predictions,
    format_baselines_table,
    load_mcq_items,
    mcq_items,
    present_letter,
    summarize_baselines,
    world_train_items,
)
from fl1_core.intervals import wilson_interval

pytestmark = pytest.mark.usefixtures("one_thread")

LETTERS = "ABCD"
VOCAB = [f"w{i}" for i in range(60)]


def _toy(rng: np.random.Generator, n: int, rule: str, vocab: list[str], prefix: str) -> list[MCQItem]:
    """Items whose gold option carries the keyword 'glows' (rule 'keyword') or is the longest (rule 'longest');
    everything else is random words of ``vocab``."""
    items = []
    for i in range(n):
        gold = LETTERS[int(rng.integers(0, 4))]
        opts = {}
        for k in LETTERS:
            if rule == "keyword":
                words = list(rng.choice(vocab, 4))
                if k == gold:
                    words[int(rng.integers(0, 4))] = "glows"
            else:
                words = list(rng.choice(vocab, 7 if k == gold else int(rng.integers(2, 5))))
            opts[k] = " ".join(words)
        q = "what happens to the " + " ".join(rng.choice(vocab, 3))
        items.append(MCQItem(id=f"{prefix}{i}", kind=rule, question=q, options=opts, answer=gold, clip_id=f"{prefix}{i}"))
    return items


@pytest.mark.parametrize("rule", ["keyword", "longest"])
def test_text_model_learns_a_text_rule_it_can_see(rule):
    rng = np.random.default_rng(3)
    train = _toy(rng, 120, rule, VOCAB, "tr")
    test = _toy(rng, 60, rule, VOCAB, "te")  # fresh draws of the same filler words: only the rule carries over
    preds = TextOnlyModel().fit(train).predict(test)
    assert [p for p in preds] == [it.answer for it in test]


def test_text_model_is_deterministic_reads_no_gold_and_ignores_option_order(small_world):
    train = world_train_items(small_world)
    held = load_mcq_items(small_world / "heldout_mcq.jsonl")
    a, b = TextOnlyModel().fit(train), TextOnlyModel().fit(train)
    sa, sb = a.scores(held), b.scores(held)
    assert sa == sb
    preds = a.predict(held)
    assert all(p in it.options for p, it in zip(preds, held))
    # the held-out gold letters are never read
    flipped = [MCQItem(**{**it.__dict__, "answer": next(k for k in it.options if k != it.answer)}) for it in held]
    assert a.predict(flipped) == preds
    # an option's score depends on its text, not on its letter
    rev = [MCQItem(**{**it.__dict__, "options": dict(zip(it.options, reversed(list(it.options.values()))))})
           for it in held]
    for it, r, s, t in zip(held, rev, sa, a.scores(rev)):
        by_text = {it.options[k]: v for k, v in s.items()}
        assert {r.options[k]: v for k, v in t.items()} == pytest.approx(by_text, abs=1e-9)


def test_present_baseline_fails_every_changed_item_and_passes_every_unchanged_one(small_world):
    held = load_mcq_items(small_world / "heldout_mcq.jsonl")
    frame = [it for it in held if it.needs_frame]
    assert any(it.changed for it in frame) and any(not it.changed for it in frame)
    for it in held:
        p = present_letter(it)
        if not it.needs_frame:
            assert p is None
            continue
        assert it.present_answer in it.options.values()
        assert (p == it.answer) is (not it.changed), it.id
    preds = baseline_predictions(held, world_train_items(small_world))
    table = {(r["kind"], r["subset"]): r for r in summarize_baselines(preds)}
    assert table[("frame-needing kinds", "changed")]["present"]["accuracy"] == 0.0
    assert table[("frame-needing kinds", "unchanged")]["present"]["accuracy"] == 1.0
    assert table[("event kinds", "all")]["present"] is None


def test_present_fallback_is_the_first_option():
    it = MCQItem(id="x", kind="where_at_time", question="q", options={"B": "on the ledge", "A": "in the air"},
                 answer="B", needs_frame=True, changed=True, present_answer="on the floor")
    assert present_letter(it) == "A"
    assert present_letter(MCQItem(**{**it.__dict__, "present_answer": "On the ledge."})) == "B"


def test_table_chance_and_wilson_intervals():
    rows = {f"i{n}": {"kind": "k", "needs_vision": True, "needs_frame": False, "changed": None, "gold": "A", "chance": c,
                      "present": None, "present_fallback": False, "text": t}
            for n, (c, t) in enumerate([(0.25, "A"), (0.25, "B"), (1 / 3, "A"), (0.5, "A")])}
    (row, family, vision) = summarize_baselines(rows)
    assert row["kind"] == "k" and family["kind"] == "event kinds" and row["n"] == 4
    assert vision["subset"] == "needs vision" and vision["n"] == 4 and vision["text"] == row["text"]
    assert row["chance"] == pytest.approx((0.25 + 0.25 + 1 / 3 + 0.5) / 4)
    assert row["text"]["correct"] == 3 and row["text"]["ci95"] == list(wilson_interval(3, 4))
    assert row["present"] is None
    md = format_baselines_table([row])
    assert "| k | all | 4 | 33.3 | — | 75.0 [" in md


def test_bad_records_are_rejected_by_name():
    base = {"id": "r1", "conversations": [{"from": "human", "value": "<image>Where?\nA. x\nB. y"}], "answer": "B",
            "meta": {"question_kind": "where_at_time", "needs_frame": True, "changed": True,
                     "options": {"A": "x", "B": "y"}}}
    with pytest.raises(ValueError, match="r1.*present_answer"):
        mcq_items([base])
    with pytest.raises(ValueError, match="r1.*answer"):
        mcq_items([{**base, "answer": "D", "meta": {**base["meta"], "present_answer": "x"}}])
    with pytest.raises(ValueError, match=r"src\[0\].*record object"):
        mcq_items([["not", "a", "record"]], "src")
    assert mcq_items([{**base, "answer": "the x", "meta": {"format": "free-form", "question_kind": "k"}}]) == []
    ok = mcq_items([{**base, "meta": {**base["meta"], "present_answer": "x"}}])[0]
    assert ok.question == "Where?" and ok.options == {"A": "x", "B": "y"}
    train = [MCQItem(id="t", kind="k", question="q", options={"A": "a", "B": "b"}, answer="A", clip_id="c1")]
    with pytest.raises(ValueError, match="share clips"):
        baseline_predictions([MCQItem(**{**train[0].__dict__, "id": "h"})], train)


def test_cli_writes_the_table_and_every_items_predictions(small_world, tmp_path, capsys):
    from fl1_core.cli import main

    out = tmp_path / "baselines.json"
    assert main(["baselines", "--world", str(small_world), "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    held = load_mcq_items(small_world / "heldout_mcq.jsonl")
    assert set(res["predictions"]) == {it.id for it in held}
    assert res["train"]["n"] == len(world_train_items(small_world)) > 0
    assert {it.split for it in world_train_items(small_world)} == {"train"}
    assert "| frame-needing kinds | changed |" in capsys.readouterr().out
