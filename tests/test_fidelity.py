"""Fidelity to docs/PAPER.md on the real-data path one test each (the dynamic-sampling fallback is in
test_rl_trainer)."""

from __future__ import annotations

import logging

import pytest

from fl1_core.config import LatentConfig


def test_fixed_decoding_budget_follows_the_pooled_training_budget():
    assert LatentConfig(max_latent_token=32, pooled_latent_tokens=8, budget_mode="fixed").decode_budget == 8
    assert LatentConfig(max_latent_token=32, budget_mode="fixed").decode_budget == 32
    assert LatentConfig(max_latent_token=32, budget_mode="loose", loose_cap=40).decode_budget == 40


def test_a_missing_trained_projection_head_is_refused(tmp_path):
    from fl1_core.checkpoints import save_model
    from fl1_core.model import FutureL1Model, load_future_l1
    from fl1_core.tiny import build_tiny_future_l1

    model, processor = build_tiny_future_l1(seed=0)
    with_head = FutureL1Model(model.base, model.latent_config.replace(projection_head=True, head_dim=32))
    save_model(with_head, processor, tmp_path / "ckpt")
    assert load_future_l1(tmp_path / "ckpt", device=None)[0].latent_head is not None
    (tmp_path / "ckpt" / "latent_head.pt").unlink()
    with pytest.raises(FileNotFoundError, match="latent_head.pt.*projection_head"):
        load_future_l1(tmp_path / "ckpt", device=None)


def test_rejected_rows_count_as_wrong_in_the_reported_denominator():
    from fl1_core.evaluation.summary import rejects_as_wrong

    twiff = {"n": 8, "failures_as_zero": {"cot": 4.0, "answer": 2.0, "avg": 3.0}}
    out = rejects_as_wrong(twiff, "twiffbench", 2)
    assert out == {"cot": 3.2, "answer": 1.6, "avg": 2.4, "n": 10, "n_rejects": 2}
    fb = {"n": 3, "strict": {"overall": 1.0}, "faithful": {"overall": 2 / 3}}
    assert rejects_as_wrong(fb, "futurebench", 1)["strict"] == pytest.approx(0.75)


def test_rl_with_free_form_records_and_no_judge_says_so(tiny, tmp_path, caplog):
    from fl1_core.data.formats import load_rl_records
    from fl1_core.data.world import WorldConfig, generate_world
    from fl1_core.rl.config import RLConfig
    from fl1_core.rl.trainer import RLTrainer

    generate_world(tmp_path / "w", seed=0, config=WorldConfig.small(rl_size=8))
    records = load_rl_records(tmp_path / "w" / "rl.jsonl").records
    free = sum(not r.is_multiple_choice for r in records)
    assert free > 0
    with caplog.at_level(logging.WARNING):
        trainer = RLTrainer(tiny[0], tiny[1], records, RLConfig(max_steps=1, prompts_per_step=2, group_size=2,
                                                                progress_bar=False), tmp_path / "rl")
    assert trainer.free_form_without_judge == free
    assert any("free-form" in r.message and "no judge" in r.message for r in caplog.records)


def test_curation_rollouts_send_free_form_rule_failures_to_the_judge(monkeypatch):
    import fl1_core.curation.probes as probes
    import fl1_core.judge.client as client
    from fl1_core.curation import CurationConfig
    from fl1_core.data.collator import PromptExample

    asked = []

    def fake_judge(items, config, **kw):
        asked.extend(items)
        return [{"verdict": True, "judge_error": None} for _ in items], None

    monkeypatch.setattr(client, "judge_many", fake_judge)
    monkeypatch.setattr(client.JudgeConfig, "from_env", classmethod(lambda cls, **kw: object()))
    prompts = [PromptExample("q0", "What happens next?"), PromptExample("q1", "Which option?")]
    answers = ["the red ball hits the blue box", "B"]
    texts = [["<answer>the ball strikes the box</answer>", "<answer>the red ball hits the blue box</answer>",
              "no answer"], ["<answer>C</answer>", "<answer>B</answer>", "<answer>A</answer>"]]
    result = [(1, texts[0]), (1, texts[1])]
    judged = probes._judge_free_form(result, prompts, answers, [False, True], CurationConfig(mode="rollouts", judge="env"))
    assert [len(asked), judged[0][0], judged[1][0]] == [1, 2, 1]  # only the free-form paraphrase was asked
    assert asked[0].model_answer == "the ball strikes the box"
    rule_only = probes._judge_free_form(result, prompts, answers, [False, True], CurationConfig(mode="rollouts"))
    assert rule_only == result and probes._warned_rule_only
