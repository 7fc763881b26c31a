"""scripts/first_thought_flips.py: the first thought and the flips of the concluded event, split by whether it
changed, counted by hand on four items."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from first_thought_flips import (  # noqa: E402
    event_by_reading, first_events_right, first_predicted_event, first_thought, flips, main)

SEEN = "<reason>At the end of the video, the red ball is rolling left. Next, the red ball hits the wall.</reason>"
OTHER = "<reason>At the end of the video, the red ball is rolling right. Next, the red ball stops.</reason>"


def row(i: str, kind: str, concluded: str, text: str) -> dict:
    return {"id": i, "kind": kind, "answer": "A", "concluded": concluded, "text": text, "correct": False,
            "group": "frame" if kind == "where_at_time" else "vision"}


def test_first_thought_stops_at_next_and_flips_are_split_by_it(tmp_path, capsys):
    assert first_thought(SEEN) == "At the end of the video, the red ball is rolling left."
    assert first_thought("no reasoning") == ""
    ref = [row("1", "next_event", "A", SEEN), row("2", "next_event", "B", SEEN), row("3", "kth_event", "A", SEEN),
           row("4", "where_at_time", "A", SEEN)]
    new = [row("1", "next_event", "B", OTHER), row("2", "next_event", "A", SEEN), row("3", "kth_event", "A", OTHER),
           row("4", "where_at_time", "B", OTHER)]
    counts = flips(list(zip(ref, new)))
    assert counts == {"items": 3, "changed": 2, "changed_up": 0, "changed_down": 1, "same_up": 1, "same_down": 0}
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text("".join(json.dumps(r) + "\n" for r in ref))
    b.write_text("".join(json.dumps(r) + "\n" for r in new))
    assert main([str(a), str(b)]) == 0
    assert "changed on 2 (66.7 %)" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main([f"{a},{a}", str(b)])


def test_the_moving_bodies_are_scored_against_the_worlds_first_thought(tmp_path, capsys):
    resting = "<reason>At the end of the video, the red ball is resting on the floor. Next, it stops.</reason>"
    truth = "At the end of the video, the red ball is rolling left along the floor. Next, the red ball hits the wall."
    ref = [row("1", "next_event", "A", SEEN), row("2", "next_event", "A", SEEN), row("3", "where_at_time", "A", SEEN)]
    new = [row("1", "next_event", "A", OTHER),  # rolling the other way: the same moving body, still right
           row("2", "next_event", "A", resting),  # nothing moves: wrong
           row("3", "where_at_time", "A", resting)]  # frame-needing: not scored
    a, b, data = tmp_path / "a.jsonl", tmp_path / "b.jsonl", tmp_path / "heldout.jsonl"
    a.write_text("".join(json.dumps(r) + "\n" for r in ref))
    b.write_text("".join(json.dumps(r) + "\n" for r in new))
    data.write_text("".join(json.dumps({"id": i, "meta": {"reference_thoughts": [truth, "So, A."]}}) + "\n"
                            for i in ("1", "2", "3")))
    assert main([str(a), str(b), "--data", str(data)]) == 0
    # paired d = (0, −1): mean −0.5, sd 0.707, half 1.96 · 0.707 / √2 = 0.98
    printed = capsys.readouterr().out
    assert "right on 2 event-kind items: reference 100.0 %, other 50.0 %, Δ -50.0 [-148.0, +48.0]" in printed
    # the other file: item 1 read right and concluded right (A), item 2 read wrong and concluded right
    assert "other: concluded event right on 100.0 % of the 1 items read right, 100.0 % of the 1 read wrong" in printed
    data.write_text(json.dumps({"id": "9", "meta": {}}) + "\n")
    with pytest.raises(SystemExit):
        main([str(a), str(b), "--data", str(data)])


def test_seeds_pooled_over_the_same_items_each_count(tmp_path, capsys):
    truth = "At the end of the video, the red ball is rolling left along the floor. Next, the red ball hits the wall."
    data = tmp_path / "heldout.jsonl"
    data.write_text(json.dumps({"id": "1", "meta": {"reference_thoughts": [truth]}}) + "\n")
    files = []
    for name, text in [("a0", SEEN), ("a1", SEEN), ("b0", SEEN), ("b1", OTHER.replace("rolling right", "resting"))]:
        files.append(tmp_path / f"{name}.jsonl")
        files[-1].write_text(json.dumps(row("1", "next_event", "A", text)) + "\n")
    assert main([f"{files[0]},{files[1]}", f"{files[2]},{files[3]}", "--data", str(data)]) == 0
    assert "right on 2 event-kind items: reference 100.0 %, other 50.0 %" in capsys.readouterr().out


def test_event_by_reading_splits_the_conclusions_by_the_reading():
    truth = "At the end of the video, the red ball is rolling left along the floor."
    rows = [row("1", "next_event", "A", SEEN), row("2", "next_event", "B", SEEN), row("3", "next_event", "A", OTHER),
            row("4", "next_event", "B", "<reason>At the end of the video, the red ball is resting on the floor."
                                       "</reason>"),
            row("5", "where_at_time", "A", SEEN)]
    got = event_by_reading(rows, {i: truth for i in "12345"})
    assert got["read_right"] == [True, False, True] and got["read_wrong"] == [False]
    # 2/3 − 0/1, half-width 1.96 · sqrt((2/3 · 1/3) / 3 + 0) = 0.533
    assert got["delta"]["delta"] == pytest.approx(2 / 3)
    assert got["delta"]["ci95"] == pytest.approx([2 / 3 - 0.5334, 2 / 3 + 0.5334], abs=1e-4)


def test_the_first_predicted_event_is_compared_with_the_worlds():
    assert first_predicted_event(SEEN) == "the red ball hits the wall"
    assert first_predicted_event(" Next, the red ball stops.</reason>") == "the red ball stops"  # a reading-route text
    assert first_predicted_event("<reason>So, A.</reason>") is None
    truth = {i: "At the end of the video, the red ball is rolling left. Next, the red ball hits the wall." for i in "123"}
    pairs = [(row("1", "next_event", "A", SEEN), row("1", "next_event", "A", OTHER)),  # right → wrong
             (row("2", "next_event", "A", OTHER), row("2", "next_event", "A", SEEN)),  # wrong → right
             (row("3", "where_at_time", "A", SEEN), row("3", "where_at_time", "A", OTHER))]  # frame-needing: left out
    got = first_events_right(pairs, truth)
    assert (got["items"], got["reference"], got["other"], got["delta"]["delta"]) == (2, 1, 1, 0.0)
