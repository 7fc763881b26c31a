"""The KL reference of a LoRA RL run stays the initial model: after updates that move the adapters *and* the fully
trained lm_head, reference log-probs equal the init's (also after a kill and resume)."""

from __future__ import annotations

import pytest
import torch
from helpers_rl import ALL_GROUPS

from fl1_core.adapters import adapters_disabled, apply_lora, fully_trained_parameters, has_lora
from fl1_core.model import load_future_l1
from fl1_core.rl.config import RLConfig
from fl1_core.rl.trainer import RLTrainer
from fl1_core.rl.update import StopTraining
from fl1_core.reference import LoraReference

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from fl1_core.data.formats import load_rl_records
    from fl1_core.data.world import WorldConfig, generate_world

    out = tmp_path_factory.mktemp("world")
    generate_world(out, seed=0, config=WorldConfig.small(rl_size=8))
    return load_rl_records(out / "rl.jsonl").records


@pytest.fixture
def token_reward(monkeypatch):
    """Rewards that vary within a group (share of even token ids), so the updates are non-zero."""
    import fl1_core.rl.trainer as trainer_mod
    from helpers_rl import with_even_token_reward

    monkeypatch.setattr(trainer_mod, "score_groups", with_even_token_reward(trainer_mod.score_groups))


def _init(saved_tiny):
    """The initial model loaded from a checkpoint folder (so ``final/`` is an adapter folder, not a merge)."""
    model, _ = load_future_l1(saved_tiny, device=None)
    model.latent_config = model.latent_config.replace(budget_mode="loose")
    return model


def _config(**kw) -> RLConfig:
    base = dict(group_size=4, prompts_per_step=2, max_new_tokens=10, latent={"loose_cap": 3, "force_initial_latent": True},
                learning_rate=2e-2, max_steps=3, save_every=1, max_rounds=1, progress_bar=False,
                mode=ALL_GROUPS, kl_beta=0.05, lora={"r": 4})
    base.update(kw)
    return RLConfig(**base)


def _reference_vs_init(trainer: RLTrainer, init) -> tuple[float, float, float]:
    """Max |Δ log-prob| on fresh rollouts: reference vs init, adapters-off-only vs init, actor vs init."""
    rows = [r for g in trainer.collect(trainer.step)[0].groups for r in g]
    init_lp = trainer._replay_logprobs(init, rows, 8)
    ref_lp = trainer._replay_logprobs(None, rows, 8)
    with adapters_disabled(trainer.model):
        off_lp = trainer._replay_logprobs(trainer.model, rows, 8)
    actor_lp = trainer._replay_logprobs(trainer.model, rows, 8)

    def gap(a, b):
        return max(float((x - y).abs().max()) for x, y in zip(a, b))

    return gap(ref_lp, init_lp), gap(off_lp, init_lp), gap(actor_lp, init_lp)


def test_reference_logprobs_stay_the_inits_after_several_lora_updates(saved_tiny, tiny, world, tmp_path, token_reward):
    init = _init(saved_tiny)
    trainer = RLTrainer(_init(saved_tiny), tiny[1], world, _config(), tmp_path)
    assert trainer.ref_model is None and trainer.lora_reference is not None
    assert trainer.lora_reference.names == ["base.lm_head.weight"]  # what trains in full here (no latent head)
    trainer.train()
    assert has_lora(trainer.model)  # final/ is an adapter folder: the adapters are still separate
    head_moved = float((trainer.model.base.lm_head.weight - init.base.lm_head.weight).abs().max().detach())
    assert head_moved > 1e-3  # the updates did change the fully trained head
    lc = init.latent_config
    rows = init.base.model.language_model.embed_tokens.weight[[lc.latent_token_id, lc.latent_start_id,
                                                                lc.latent_end_id]].detach()
    (delta,) = [p for n, p in trainer.model.named_parameters() if "trainable_tokens_delta" in n]
    assert float((delta.detach() - rows).abs().max()) > 1e-3  # … and the latent token rows (kept apart by peft)
    ref_gap, off_gap, actor_gap = _reference_vs_init(trainer, init)
    assert actor_gap > 1e-3 and off_gap > 1e-3  # adapters off alone is not the init any more
    assert ref_gap < 1e-5
    # the trained head is back in place after the reference pass
    assert float((trainer.model.base.lm_head.weight - init.base.lm_head.weight).abs().max().detach()) == head_moved


def test_a_resumed_lora_run_keeps_the_init_as_reference(saved_tiny, tiny, world, tmp_path, token_reward):
    init = _init(saved_tiny)

    def kill(trainer, step, row):
        if step == 2:
            raise StopTraining

    with pytest.raises(StopTraining):
        RLTrainer(_init(saved_tiny), tiny[1], world, _config(max_steps=2), tmp_path, callbacks=[kill]).train()
    resumed = RLTrainer(_init(saved_tiny), tiny[1], world, _config(max_steps=2), tmp_path)
    resumed.train()
    assert resumed.resumed_from == 1 and resumed.step == 2
    ref_gap, off_gap, _ = _reference_vs_init(resumed, init)
    assert off_gap > 1e-3 and ref_gap < 1e-5


def test_the_frozen_copy_covers_the_latent_head_and_is_restored_after_an_error(saved_tiny):
    model = _init(saved_tiny)
    model.latent_config = model.latent_config.replace(projection_head=True)
    model.latent_head = torch.nn.Linear(model.base.config.text_config.hidden_size,
                                        model.base.config.text_config.hidden_size)
    apply_lora(model)
    ref = LoraReference(model)
    params = fully_trained_parameters(model)
    assert set(ref.names) == {"base.lm_head.weight", "latent_head.weight", "latent_head.bias"}
    assert ref.nbytes == sum(p.numel() * p.element_size() for p in params.values())
    with torch.no_grad():
        for p in params.values():
            p.add_(1.0)
    trained = {n: p.detach().clone() for n, p in params.items()}
    with pytest.raises(RuntimeError, match="boom"), torch.no_grad(), ref.active(model):
        for n, p in params.items():
            assert torch.equal(p, ref.frozen(n)) and not torch.equal(p, trained[n])
        raise RuntimeError("boom")
    assert all(torch.equal(p, trained[n]) for n, p in params.items())
