"""The displacement between the last two observed frames, split by what the world's first thought says moves."""

from __future__ import annotations

import math

import pytest

from fl1_core.evaluation.motion_visibility import (
    calls_by_displacement, displacement_summary, last_observed_displacements, reader_baselines, references_by_clip)
from fl1_core.pretrain.evaluate import motion_movers

READING = ("At the end of the video, the red ball is rolling left along the floor and the blue box is resting on the "
           "floor.")


def _clip(red_track, blue_track, observed=(1, 2, 3)):
    return {"pool": [0, 2, 5, 9], "observed_images": list(observed),
            "objects": [{"name": "red ball", "track": red_track}, {"name": "blue box", "track": blue_track}]}


def test_displacement_is_taken_between_the_last_two_observed_pool_frames():
    # pool frames shown: 0, 2, 5; the red ball moves 3-4-5 between frames 2 and 5, the box not at all
    red = [[0, 0]] * 2 + [[10, 10]] * 3 + [[13, 14]] * 5
    blue = [[50, 50]] * 10
    got = last_observed_displacements({"c": _clip(red, blue)}, {"c": READING})
    assert got == {"moving": [5.0], "resting": [0.0]}
    # a fourth observed frame moves the pair to frames 5 and 9, where the ball rests
    got = last_observed_displacements({"c": _clip(red, blue, (1, 2, 3, 4))}, {"c": READING})
    assert got["moving"] == [0.0]


def test_reader_baselines_count_the_clips_each_reader_gets_right():
    red = [[0, 0]] * 2 + [[10, 10]] * 3 + [[13, 14]] * 5
    clips = {"moving": _clip(red, [[50, 50]] * 10),  # the ball moves, the box rests: only exact positions get it
             "both": _clip(red, [[50, 50]] * 2 + [[60, 50]] * 3 + [[70, 50]] * 5)}
    both = READING.replace("blue box is resting on the floor", "blue box is sliding right along the floor")
    got = reader_baselines(clips, {"moving": READING, "both": both})
    assert got == {"clips": 2, "every_body_moves": 0.5, "exact_displacement": 1.0}


def test_a_clip_with_one_observed_frame_is_refused():
    with pytest.raises(ValueError, match="observed frame"):
        last_observed_displacements({"c": _clip([[0, 0]] * 10, [[0, 0]] * 10, (1,))}, {"c": READING})


def test_summary_counts_movers_under_half_a_token():
    s = displacement_summary({"moving": [4.0, 8.0, 20.0, 40.0], "resting": [0.0]}, token_px=32)
    assert s["movers_under_half_a_token"] == 0.5
    assert s["moving"]["n"] == 4 and s["moving"]["token_quartiles"][1] == pytest.approx(14.0 / 32)
    assert math.isnan(displacement_summary({"moving": []}, 32)["movers_under_half_a_token"])
    with pytest.raises(ValueError):
        displacement_summary({"moving": [1.0]}, 0)


def test_calls_are_grouped_by_displacement():
    calls = [(0.0, False, True), (0.0, False, False), (3.0, True, True), (20.0, True, False), (20.0, True, True)]
    got = calls_by_displacement(calls, edges=(0.0, 0.5, 8.0, float("inf")))
    assert [g["bodies"] for g in got] == [2, 1, 2]
    assert (got[0]["truly_moving"], got[0]["said_moving"], got[0]["called_right"]) == (0.0, 0.5, 0.5)
    assert (got[2]["truly_moving"], got[2]["said_moving"], got[2]["called_right"]) == (1.0, 0.5, 0.5)
    assert math.isnan(calls_by_displacement([], edges=(0.0, 1.0))[0]["said_moving"])


def test_references_keep_the_first_reading_of_each_clip():
    rows = [{"meta": {"clip_id": "a", "reference_thoughts": ["first"]}},
            {"meta": {"clip_id": "a", "reference_thoughts": ["second"]}},
            {"meta": {"clip_id": "b"}}]
    assert references_by_clip(rows) == {"a": "first"}


def test_motion_movers_reads_a_motion_answer_without_the_opening():
    assert motion_movers("The red ball is rolling left along the floor and the blue box is resting on the floor.") \
        == {"red ball"}
    assert motion_movers("The red ball is falling and the blue box is sliding right along the ledge.") \
        == {"red ball", "blue box"}
    assert motion_movers("nothing") is None


def test_the_script_refuses_bad_input_and_reports_a_checkpoint(tmp_path, small_world, saved_tiny, capsys):
    import json
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    from motion_reading import main

    assert main([str(saved_tiny), "--world", str(tmp_path)]) == 2  # not a world
    assert main([str(tmp_path), "--world", str(small_world)]) == 2  # not a checkpoint
    assert main([str(saved_tiny), "--world", str(small_world), "--pairs", "0"]) == 2
    out = tmp_path / "m.json"
    assert main([f"tiny={saved_tiny}", "--world", str(small_world), "--pairs", "4", "--out", str(out)]) == 0
    got = json.loads(out.read_text())
    assert got["displacement"]["token_px"] == 32
    assert got["checkpoints"]["tiny"]["motion_task_movers"]["n"] == 4
    per_body = got["checkpoints"]["tiny"]["motion_task_calls_by_displacement"]
    assert sum(g["bodies"] for g in per_body) >= 4 * 2  # every pair shows two bodies or more
    n_event = sum(1 for line in (small_world / "heldout_mcq.jsonl").read_text().splitlines()
                  if line.strip() and not json.loads(line)["meta"].get("needs_frame"))
    assert got["checkpoints"]["tiny"]["chain_route_movers"]["n"] == n_event
    assert all(0 <= v <= 1 and (4 * v).is_integer() for v in got["motion_task_readers"].values())  # shares of 4 pairs
    printed = capsys.readouterr().out
    assert "movers under half a token" in printed and "saying every body moves scores" in printed
