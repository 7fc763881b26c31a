"""The rollout log's rows and the rewarded share by event type (fl1_core.rl.rollout_log, scripts/rollout_rewards.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from fl1_core.rl.rollout_log import rewards_by_event_type, rollout_rows

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from rollout_rewards import main  # noqa: E402

RECORDS = [
    {"id": "b", "problem_type": "free-form", "answer": "the red ball bounces off the left wall", "meta": {}},
    {"id": "h", "problem_type": "free-form", "answer": "the red ball hits the blue box", "meta": {}},
    {"id": "f", "problem_type": "free-form", "answer": "left", "meta": {"needs_frame": True}},  # a place, skipped
    {"id": "m", "problem_type": "multiple choice", "answer": "B", "meta": {}},  # a letter, skipped
]


def row(step, rid, answer, acc):
    return {"step": step, "id": rid, "answer": answer, "acc": acc}


ROWS = [
    row(1, "b", "the red ball bounces off the right wall", 0.0),
    row(1, "b", "the red ball bounces off the left wall", 1.0),
    row(1, "b", "the red ball hits the blue box", 0.0),
    row(1, "h", "the red ball hits the blue box", 1.0),
    row(2, "h", "the blue box hits the red ball", 0.0),
    row(2, "h", "", 0.0),  # no answer span: its own type
    row(2, "h", "the red ball hits the blue box", None),  # judging failed: not counted
    row(2, "f", "left", 1.0),
    row(2, "m", "B", 1.0),
]


def test_shares_by_event_type_count_only_free_form_event_records():
    by_window = rewards_by_event_type(ROWS, RECORDS, window=1)
    got = {(r["steps"], r["type"]): (r["references"], r["said"], r["rewarded"]) for r in by_window}
    assert got == {("1-1", "bounce"): (3, 2, 1), ("1-1", "hit"): (1, 2, 1),
                   ("2-2", "hit"): (2, 1, 0), ("2-2", "none"): (0, 1, 0)}
    pooled = {r["type"]: r["share_rewarded"] for r in rewards_by_event_type(ROWS, RECORDS, window=10)}
    assert pooled == {"bounce": 0.5, "hit": pytest.approx(1 / 3), "none": 0.0}
    with pytest.raises(ValueError, match="window"):
        rewards_by_event_type(ROWS, RECORDS, window=0)


def test_rollout_rows_hold_each_response_with_its_answer_span():
    record = SimpleNamespace(id="b")
    response = lambda text, acc: SimpleNamespace(  # noqa: E731
        group=3, prompt=SimpleNamespace(record=record), text=text, acc=acc, acc_source="judge", reward=1.25,
        length=7, span_counts=[2, 2])
    rows = rollout_rows([[response("<reason>x</reason><answer> the red ball falls </answer>", 1.0),
                          response("<reason>cut off", None)]], step=4, round_index=1)
    assert rows[0] == {"step": 4, "round": 1, "group": 3, "id": "b", "answer": "the red ball falls", "acc": 1.0,
                       "acc_source": "judge", "reward": 1.25, "length": 7, "spans": 2}
    assert rows[1]["answer"] == "" and rows[1]["acc"] is None


def test_the_script_pools_runs_and_refuses_a_run_without_a_log(tmp_path, capsys):
    data = tmp_path / "rl.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    for name, part in (("a", ROWS[:4]), ("b", ROWS[4:])):
        (tmp_path / name).mkdir()
        (tmp_path / name / "rollouts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in part))
    out = tmp_path / "table.json"
    assert main([f"{tmp_path / 'a'},{tmp_path / 'b'}", "--data", str(data), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "bounce  references     3  said     2  rewarded     1   50.0 %" in printed
    assert "hit     references     3  said     3  rewarded     1   33.3 %" in printed
    assert json.loads(out.read_text()) == rewards_by_event_type(ROWS, RECORDS)
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit) as stop:
        main([str(tmp_path / "empty"), "--data", str(data)])
    assert stop.value.code == 2 and "no rollouts.jsonl" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stop:  # a missing RL file is named, not read as an empty one
        main([str(tmp_path / "a"), "--data", str(tmp_path / "missing.jsonl")])
    assert stop.value.code == 2 and "missing.jsonl: no such RL file" in capsys.readouterr().err
