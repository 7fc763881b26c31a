"""Held-out MCQ accuracy (fl1_core.evaluation.heldout): scoring, per-kind breakdown, determinism, the CLI."""

from __future__ import annotations

import json

import pytest

from fl1_core.answers import concluded_option, option_lines
from fl1_core.data.formats import load_rl_records
from fl1_core.data.world import WorldConfig, generate_world
from fl1_core.decoding import batches as batches_mod
from fl1_core.evaluation.heldout import evaluate_heldout_mcq, question_kinds, run_heldout_mcq


@pytest.fixture(scope="module")
def small_world(tmp_path_factory):
    root = tmp_path_factory.mktemp("heldout_world")
    generate_world(root, seed=0, config=WorldConfig.small(heldout_mcq_size=10))
    return root


def _records(root):
    return list(load_rl_records(root / "heldout_mcq.jsonl").records)


def test_question_kinds_reads_meta(small_world, tmp_path):
    kinds = question_kinds(small_world / "heldout_mcq.jsonl")
    rows = [json.loads(line) for line in (small_world / "heldout_mcq.jsonl").read_text().splitlines()]
    assert kinds == {r["id"]: r["meta"]["question_kind"] for r in rows}
    as_list = tmp_path / "heldout.json"
    as_list.write_text(json.dumps(rows[:3] + [{"id": "no-meta"}]))
    assert question_kinds(as_list) == {r["id"]: r["meta"]["question_kind"] for r in rows[:3]}


def test_accuracy_counts_rule_correct_letters(small_world, tiny, monkeypatch):
    """With scripted responses, accuracy / format-valid / per-kind numbers follow the strict-letter rule exactly."""
    model, processor = tiny
    records = _records(small_world)
    kinds = question_kinds(small_world / "heldout_mcq.jsonl")
    wrong = {"A": "B", "B": "C", "C": "D", "D": "A"}
    # record i: correct letter for i % 3 == 0, a wrong letter for i % 3 == 1, no answer span for i % 3 == 2
    scripted = []
    for i, r in enumerate(records):
        if i % 3 == 0:
            scripted.append(f"<reason>x</reason>\n<answer>{r.answer}</answer>")
        elif i % 3 == 1:
            scripted.append(f"<reason>x</reason>\n<answer>{wrong[r.answer]}</answer>")
        else:
            scripted.append(f"<reason>the answer is {r.answer}</reason>")
    calls = []

    def fake_generate(model_, inputs, **kw):
        start = sum(calls)
        n = int(inputs["input_ids"].shape[0])
        calls.append(n)
        assert kw["do_sample"] is False
        return type("Gen", (), {"texts": scripted[start : start + n]})()

    monkeypatch.setattr(batches_mod, "generate_with_latents", fake_generate)
    res = evaluate_heldout_mcq(model, processor, records, kinds=kinds, batch_size=4, progress=False)
    n = len(records)
    assert calls == [4] * (n // 4) + ([n % 4] if n % 4 else []) and res["n"] == n
    groups = res["by_group"]  # event kinds by group, then the frame-needing items and their changed subsets
    assert groups["frame"]["n"] == sum(bool((r.meta or {}).get("needs_frame")) for r in records) > 0
    assert groups["frame changed"]["n"] + groups["frame unchanged"]["n"] == groups["frame"]["n"]
    assert sum(groups[g]["n"] for g in ("text", "vision", "frame") if g in groups) == n
    assert res["accuracy"] == pytest.approx(sum(i % 3 == 0 for i in range(n)) / n)
    assert res["format_valid"] == pytest.approx(sum(i % 3 != 2 for i in range(n)) / n)
    assert sum(v["n"] for v in res["by_kind"].values()) == n
    assert res["letters"]["none"] == sum(i % 3 == 2 for i in range(n)) and sum(res["letters"].values()) == n
    for kind, v in res["by_kind"].items():
        idx = [i for i, r in enumerate(records) if kinds[r.id] == kind]
        assert v["accuracy"] == pytest.approx(sum(i % 3 == 0 for i in idx) / len(idx))
    assert [row["correct"] for row in res["rows"]] == [i % 3 == 0 for i in range(n)]


def test_real_greedy_decoding_is_deterministic_and_consistent(small_world, tiny):
    model, processor = tiny
    records = _records(small_world)[:4]
    a = evaluate_heldout_mcq(model, processor, records, max_new_tokens=12, batch_size=3, progress=False)
    b = evaluate_heldout_mcq(model, processor, records, max_new_tokens=12, batch_size=4, progress=False)
    assert [r["text"] for r in a["rows"]] == [r["text"] for r in b["rows"]]
    assert a["accuracy"] == sum(r["correct"] for r in a["rows"]) / 4
    assert set(a["by_kind"]) == {"all"}  # no kinds given


def test_rejects_bad_input(small_world, tiny):
    model, processor = tiny
    free = [r for r in load_rl_records(small_world / "rl.jsonl").records if not r.is_multiple_choice]
    with pytest.raises(ValueError, match="multiple-choice"):
        evaluate_heldout_mcq(model, processor, free, progress=False)
    with pytest.raises(ValueError, match="batch_size"):
        evaluate_heldout_mcq(model, processor, _records(small_world), batch_size=0, progress=False)


def test_run_heldout_writes_results(small_world, tiny, tmp_path):
    from fl1_core.checkpoints import save_model

    model, processor = tiny
    save_model(model, processor, tmp_path / "ckpt")
    out = tmp_path / "heldout.json"
    res = run_heldout_mcq({"sft": tmp_path / "ckpt", "SFT (init)/x": tmp_path / "ckpt"},
                          small_world / "heldout_mcq.jsonl", out, max_new_tokens=8, progress=False)
    saved = json.loads(out.read_text())
    n = len(_records(small_world))
    assert saved["sft"]["accuracy"] == res["sft"]["accuracy"] and saved["sft"]["n"] == n
    rows = (tmp_path / "heldout.sft.jsonl").read_text().splitlines()
    assert len(rows) == n and json.loads(rows[0])["id"] == res["sft"]["rows"][0]["id"]
    assert (tmp_path / "heldout.SFT_init_x.jsonl").exists()  # names are made file-safe
    assert saved["SFT (init)/x"]["accuracy"] == saved["sft"]["accuracy"]
    first = run_heldout_mcq({"sft": tmp_path / "ckpt"}, small_world / "heldout_mcq.jsonl", limit=3,
                            max_new_tokens=8, progress=False)["sft"]
    spread = [res["sft"]["rows"][i * n // 3]["id"] for i in range(3)]  # the limit spreads over the file
    assert first["n"] == 3 and [r["id"] for r in first["rows"]] == spread
    with pytest.raises(ValueError, match="limit"):
        run_heldout_mcq({"sft": tmp_path / "ckpt"}, small_world / "heldout_mcq.jsonl", limit=0)


def test_event_accuracy_reads_the_concluded_option_apart_from_the_letter(small_world, tiny, monkeypatch):
    """Scripted conclusions: the right option's text with the right letter (i % 4 == 0), with a wrong letter
    (i % 4 == 1), a wrong option's text (i % 4 == 2), no option text (i % 4 == 3)."""
    model, processor = tiny
    records = _records(small_world)
    wrong = {"A": "B", "B": "C", "C": "D", "D": "A"}
    scripted = []
    for i, r in enumerate(records):
        options = option_lines(r.question_text)
        said = {0: options[r.answer], 1: options[r.answer], 2: options[wrong[r.answer]], 3: "nothing"}[i % 4]
        letter = r.answer if i % 4 == 0 else wrong[r.answer]
        scripted.append(f"<reason>Next, x.</reason>\n<reason>So, {said}, which is option {letter}.</reason>\n"
                        f"<answer>{letter}</answer>")

    def fake_generate(model_, inputs, **kw):
        start = fake_generate.done
        fake_generate.done += int(inputs["input_ids"].shape[0])
        return type("Gen", (), {"texts": scripted[start : fake_generate.done]})()

    fake_generate.done = 0
    monkeypatch.setattr(batches_mod, "generate_with_latents", fake_generate)
    res = evaluate_heldout_mcq(model, processor, records, batch_size=4, progress=False)
    n = len(records)
    right_event = [i for i in range(n) if i % 4 in (0, 1)]
    assert res["event_accuracy"] == pytest.approx(len(right_event) / n)
    assert res["binding"] == pytest.approx(sum(i % 4 == 0 for i in right_event) / len(right_event))
    assert [row["concluded"] for row in res["rows"]] == [
        {0: r.answer, 1: r.answer, 2: wrong[r.answer], 3: ""}[i % 4] for i, r in enumerate(records)]


def test_concluded_option_prefers_the_longest_match_and_refuses_ambiguity():
    options = option_lines("Q?\nA. the red ball falls\nB. the red ball falls, then the box stops\n"
                           "C. the box stops\nD. the light turns on")
    assert options["B"] == "the red ball falls, then the box stops"
    assert concluded_option("<reason>So, the red ball falls, then the box stops, which is option A.</reason>"
                            "<answer>A</answer>", options) == "B"  # A and C lie inside B
    assert concluded_option("<reason>So, the light turns on.</reason><answer>C</answer>", options) == "D"
    assert concluded_option("<reason>The light turns on.</reason><reason>So, the box stops.</reason>", options) == "C"
    assert concluded_option("<reason>So, the box stops and the light turns on.</reason>", options) == ""  # two
    assert concluded_option("<reason>So, the red ball falls</reason>", {}) == ""
    assert concluded_option(None, options) == ""


@pytest.fixture
def prompts_seen(monkeypatch):
    """The ``input_ids`` of every batch decoded, with generation replaced by a stub that answers "x"."""
    seen = []

    def fake_generate(model_, inputs, **kw):
        seen.append(inputs["input_ids"])
        return type("Gen", (), {"texts": ["x"] * int(inputs["input_ids"].shape[0])})()

    monkeypatch.setattr(batches_mod, "generate_with_latents", fake_generate)
    return seen


def test_the_chain_route_writes_the_prefix_for_the_model(small_world, tiny, prompts_seen):
    from fl1_core.evaluation.heldout import CHAIN_PREFIX

    model, processor = tiny
    records = _records(small_world)[:2]
    seen = prompts_seen
    evaluate_heldout_mcq(model, processor, records, batch_size=2, progress=False)
    res = evaluate_heldout_mcq(model, processor, records, batch_size=2, progress=False, assistant_prefix=CHAIN_PREFIX)
    prefix = processor.tokenizer(CHAIN_PREFIX, add_special_tokens=False)["input_ids"]
    assert seen[1].shape[1] == seen[0].shape[1] + len(prefix)
    assert seen[1][0, -len(prefix):].tolist() == prefix and res["assistant_prefix"] == CHAIN_PREFIX


def test_the_reading_route_starts_each_response_with_its_own_reading(small_world, tiny, prompts_seen):
    import dataclasses

    from fl1_core.data.world.description import observation_sentence
    from fl1_core.evaluation.heldout import reading_prefix

    model, processor = tiny
    records = _records(small_world)[:2]
    seen = prompts_seen
    res = evaluate_heldout_mcq(model, processor, records, batch_size=2, progress=False,
                               assistant_prefix=reading_prefix)
    assert res["assistant_prefix"] == "reading_prefix"
    for row, rec in zip(seen[0], records):
        sentence = observation_sentence(rec.meta["reference_thoughts"][0])
        assert sentence and sentence.startswith("At the end of the video, ")
        want = processor.tokenizer(f"<reason>{sentence}", add_special_tokens=False)["input_ids"]
        assert row[-len(want):].tolist() == want  # left-padded: each row ends with its own reading
    bare = dataclasses.replace(records[1], meta={**records[1].meta, "reference_thoughts": ["So, it stops."]})
    with pytest.raises(ValueError, match=records[1].id):
        evaluate_heldout_mcq(model, processor, [records[0], bare], batch_size=2, progress=False,
                             assistant_prefix=reading_prefix)
    assert len(seen) == 1  # refused before any decoding
