"""The reviewer's one-seed imagination check: usage errors, OUT_DIR ownership and a small end-to-end run."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from fl1_core.imagination_check import UsageError, main, parse_args, pool_checks, run_check

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("argv", [[], ["1", "2"], ["x", "2", "out"], ["1", "-3", "out"], ["1", "2.5", "out"]])
def test_bad_seeds_or_missing_arguments_stop_with_the_usage_line(argv, capsys):
    assert main(argv) == 2
    assert "usage: imagination_check.sh WORLD_SEED TRAIN_SEED OUT_DIR" in capsys.readouterr().err
    script = subprocess.run(["bash", str(ROOT / "scripts" / "imagination_check.sh"), *argv], capture_output=True,
                            text=True)
    assert script.returncode == 2 and "usage:" in script.stderr


def test_seeds_parse_as_integers():
    args = parse_args(["7", "0", "out"])
    assert (args.world_seed, args.train_seed, args.out_dir) == (7, 0, "out")


def test_a_small_check_runs_end_to_end_and_refuses_an_out_dir_of_other_seeds(tmp_path, one_thread):
    from fl1_core.data.world import WorldConfig

    small = dict(sft_steps=1, items=4, world_config=WorldConfig.small(), max_new_tokens=24,
                 overrides={"per_device_batch_size": 2})
    out = tmp_path / "check"
    summary = run_check(3, 0, out, **small)
    line = summary["line"]
    assert line["n"] == 4 and set(line) == {"n", "oracle_minus_shuffled", "latent_minus_pause", "latent_minus_text"}
    for key in ("oracle_minus_shuffled", "latent_minus_pause", "latent_minus_text"):
        assert line[key]["lo"] <= line[key]["mean"] <= line[key]["hi"]
    for name in ("latent.none", "latent.oracle", "latent.oracle_shuffled", "latent.present", "pause", "text"):
        rows = (out / "predictions" / f"{name}.jsonl").read_text().splitlines()
        assert len(rows) == 4 and "concluded_correct" in json.loads(rows[0])
    assert len(summary["base_sha256"]) == 64
    again = run_check(3, 0, out, **small)  # the same seeds: resumes and gives the same JSON
    assert again == summary
    pooled = pool_checks([out, out])  # pooling two copies: twice the items, the same mean
    for key in ("oracle_minus_shuffled", "latent_minus_pause", "latent_minus_text"):
        assert pooled[key]["pooled"]["n"] == 8
        assert pooled[key]["pooled"]["mean"] == pytest.approx(line[key]["mean"], abs=0.01)
        assert pooled[key]["over_checks"]["k"] == 2
    with pytest.raises(UsageError, match="another imagination check"):
        run_check(4, 0, out, **small)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x.txt").write_text("mine")
    with pytest.raises(UsageError, match="not empty"):
        run_check(3, 0, tmp_path / "busy", **small)
    assert set(summary["frame_reading"]) == {"latent/none", "latent/oracle", "latent/oracle_shuffled", "latent/present",
                                             "pause", "text"}
    with pytest.raises(UsageError, match="not a checkpoint folder"):  # a candidate base must be a checkpoint
        run_check(3, 0, tmp_path / "other", base=tmp_path / "busy", **small)
    from fl1_core.audit.frame_reading import readings_table

    rows = {r["decode"]: r for r in readings_table([out])}  # re-read from the files: the summary's numbers
    assert set(rows) == {"latent.none", "latent.oracle", "latent.oracle_shuffled", "latent.present", "pause", "text"}
    assert rows["latent.none"]["reading_right"] == summary["frame_reading"]["latent/none"]["reading_right"]
