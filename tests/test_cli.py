"""The fl1 command end to end on the small world (each sub-command's real code path)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fl1_core.cli import main
from fl1_core.data.world import WorldConfig, generate_world


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    out = tmp_path_factory.mktemp("cliworld")
    generate_world(out, seed=1, config=WorldConfig.small())
    return out


def test_tiny_then_eval_futurebench_is_resumable(world, tmp_path):
    assert main(["tiny", "--out", str(tmp_path / "tiny")]) == 0
    args = ["eval", "--benchmark", "futurebench", "--model", str(tmp_path / "tiny"), "--data",
            str(world / "futurebench.jsonl"), "--out", str(tmp_path / "ev"), "--max-new-tokens", "4", "--limit", "3"]
    assert main(args) == 0
    rows = [json.loads(line) for line in (tmp_path / "ev" / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and len({r["doc_id"] for r in rows}) == 3
    summary = json.loads((tmp_path / "ev" / "summary.json").read_text())
    assert summary["scores"]["n"] == summary["scores"]["strict"]["n"] == 3
    before = (tmp_path / "ev" / "predictions.jsonl").read_text()
    assert main(args) == 0  # resumed: nothing re-decoded, same predictions
    assert (tmp_path / "ev" / "predictions.jsonl").read_text() == before


def test_eval_twiffbench_with_the_local_judge(world, tmp_path):
    args = ["eval", "--benchmark", "twiffbench", "--model", "tiny", "--data", str(world / "twiffbench"),
            "--out", str(tmp_path / "tw"), "--max-new-tokens", "4", "--local-judge"]
    assert main(args) == 0
    summary = json.loads((tmp_path / "tw" / "summary.json").read_text())
    scores = summary["scores"]
    assert scores["n_judged"] + scores["n_failed"] == scores["n"] > 0


def test_heldout_names_checkpoints_and_writes_results(world, tmp_path, capsys):
    assert main(["tiny", "--out", str(tmp_path / "tiny")]) == 0
    out = tmp_path / "heldout.json"
    args = ["heldout", "--model", f"init={tmp_path / 'tiny'}", str(tmp_path / "tiny"), "--data",
            str(world / "heldout_mcq.jsonl"), "--out", str(out), "--max-new-tokens", "6"]
    assert main(args) == 0
    saved = json.loads(out.read_text())
    assert set(saved) == {"init", "tiny", "data_path"}
    small = WorldConfig.small()
    assert saved["init"]["n"] == small.heldout_mcq_size + small.heldout_frame_size  # event kinds, then frame kinds
    assert saved["init"]["accuracy"] == saved["tiny"]["accuracy"]  # the same weights, greedy decoding
    assert "init: accuracy" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="two checkpoints named 'tiny'"):
        main(["heldout", "--model", str(tmp_path / "tiny"), f"tiny={tmp_path / 'tiny'}", "--data",
              str(world / "heldout_mcq.jsonl")])


def test_pretrain_then_ship_a_base_with_its_card(world, tmp_path):
    from fl1_core.world_base import CARD_MD, verify_world_base

    tiny = ["hidden_size=32", "intermediate_size=64", "num_attention_heads=4", "num_key_value_heads=2",
            "vision_hidden_size=32", "vision_depth=1", "batch_size=2", "steps=3", "eval_every=3", "save_every=3"]
    run = tmp_path / "base"
    chain = Path(__file__).resolve().parents[1] / "configs" / "world_base" / "reading_base.yaml"  # from scratch
    assert main(["pretrain", "--out", str(run), "--world", str(world), "--eval-mcq", "2", "--threads", "1",
                 "--recipe", str(chain), "--set", *tiny]) == 0
    evals = [json.loads(x) for x in (run / "eval.jsonl").read_text().splitlines()]
    phases = json.loads((run / "recipe.json").read_text())["phases"]  # a chain of phases
    total = 3 * len(phases)  # --set applies to every phase
    assert evals[-1]["step"] == total and evals[-1]["mcq"]["all"]["n"] == 2
    dest = tmp_path / "shipped"
    assert main(["ship-base", str(run), "--world", str(world), "--threads", "1", "--dest", str(dest)]) == 0
    card = verify_world_base(dest)
    assert [p["steps"] for p in card["recipe"]["phases"]] == [3] * len(phases)
    assert len(card["first_losses"]) == total
    assert {"config.json", "model.safetensors", "training/log.jsonl"} <= set(card["sha256"])
    assert "fl1 pretrain" in (dest / CARD_MD).read_text()
    with pytest.raises(SystemExit, match="not a generated world"):
        main(["pretrain", "--out", str(tmp_path / "x"), "--world", str(tmp_path / "nowhere")])


def test_set_values_read_exponent_floats_as_numbers():
    """YAML 1.1 reads ``2e-4`` as a string; ``--set learning_rate=2e-4`` must still give the float."""
    from fl1_core.cli import _parse_params

    parsed = _parse_params(["lr=2e-4", "big=1E3", "name=run-1e", "sizes=[16, 32]", "hardware=cpu", "beta=0.5"])
    assert parsed == {"lr": 2e-4, "big": 1000.0, "name": "run-1e", "sizes": [16, 32], "hardware": "cpu", "beta": 0.5}
    with pytest.raises(SystemExit, match="key=value"):
        _parse_params(["no-equals-sign"])
