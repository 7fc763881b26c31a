"""Metrics rows go to accelerate trackers under their grouped names."""

from __future__ import annotations

import pytest

from fl1_core.metrics import Trackers, tracker_names


def test_report_to_validates_names_and_is_off_by_default():
    assert tracker_names(None) == [] and tracker_names("none") == []
    assert tracker_names("tensorboard") == ["tensorboard"]
    with pytest.raises(ValueError, match="unknown tracker"):
        tracker_names("tensorbored")


def test_tensorboard_tracker_receives_the_grouped_rows(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    trackers = Trackers("tensorboard", "rl", tmp_path, {"learning_rate": 1e-3, "lora": {"r": 8}})
    for step in (1, 2):
        trackers.log({"step": step, "reward/acc": 0.25 * step, "loss/policy": -0.1, "note": "text"}, step)
    trackers.close()
    events = EventAccumulator(str(tmp_path / "rl"))
    events.Reload()
    scalars = events.Tags()["scalars"]
    assert "reward/acc" in scalars and "loss/policy" in scalars and "note" not in scalars
    assert [(e.step, round(e.value, 6)) for e in events.Scalars("reward/acc")] == [(1, 0.25), (2, 0.5)]


def test_trackers_are_silent_off_the_main_process(tmp_path):
    trackers = Trackers("tensorboard", "rl", tmp_path, main_process=False)
    trackers.log({"reward/acc": 1.0}, 1)
    trackers.close()
    assert not (tmp_path / "rl").exists()
