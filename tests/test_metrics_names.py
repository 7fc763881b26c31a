"""One name per metric and per setting: grouped metric names, accelerate trackers, earlier setting names."""

from __future__ import annotations

import warnings

import pytest

from fl1_core.metrics import RL_METRIC_NAMES, SFT_METRIC_NAMES, Trackers, grouped, tracker_names


def test_grouped_names_are_unique_grouped_and_cover_the_issue_examples():
    for names in (RL_METRIC_NAMES, SFT_METRIC_NAMES):
        assert len(set(names.values())) == len(names)  # no two quantities share a name
        assert all("/" in v for v in names.values())
    for want in ("reward/acc", "reward/r_ctr", "reward/div_cos2", "loss/policy", "loss/kl"):
        assert want in RL_METRIC_NAMES.values()
    row = grouped({"step": 3, "acc": 0.5, "pg_loss": 0.1, "brand_new": 1.0, "loss/kl": 0.2}, RL_METRIC_NAMES)
    assert row == {"step": 3, "reward/acc": 0.5, "loss/policy": 0.1, "other/brand_new": 1.0, "loss/kl": 0.2}


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


def test_rl_settings_have_the_sft_names_and_accept_the_earlier_ones():
    from fl1_core.rl import RLConfig
    from fl1_core.sft import SFTConfig

    shared = {"learning_rate", "adam_epsilon", "max_grad_norm", "save_every", "progress_bar", "keep_checkpoints",
              "report_to"}
    rl_fields, sft_fields = set(RLConfig.__dataclass_fields__), set(SFTConfig.__dataclass_fields__)
    assert shared <= rl_fields and shared <= sft_fields
    assert not {"lr", "adam_eps", "grad_clip", "checkpoint_every", "progress", "latent_cap"} & rl_fields
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cfg = RLConfig.from_dict({"lr": 2e-4, "checkpoint_every": 3, "latent_cap": 5})
    assert (cfg.learning_rate, cfg.save_every, cfg.loose_cap) == (2e-4, 3, 5)
    assert sum(issubclass(w.category, DeprecationWarning) for w in caught) == 3
    assert RLConfig.cpu_world(lr=1e-4).learning_rate == 1e-4
    with pytest.raises(ValueError, match="both"):
        RLConfig.from_dict({"lr": 1e-4, "learning_rate": 1e-3})


def test_legacy_preset_parameter_becomes_hardware():
    from fl1_core.workbook import current_parameter_names

    assert current_parameter_names({"preset": "gpu", "seed": 1}) == {"hardware": "gpu", "seed": 1}
    assert current_parameter_names({"preset": "release"}) == {"preset": "release"}
