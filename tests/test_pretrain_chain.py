"""World pretraining in phases: chain files, the phase hand-over, resume, and a chain's card."""

from __future__ import annotations

import json

import pytest
import torch

from fl1_core.pretrain import PretrainRecipe, pretrain_world_base
from fl1_core.pretrain.chain import RecipeChain, load_recipe, read_training_log, recipe_from_dict

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = dict(hidden_size=32, intermediate_size=64, num_attention_heads=4, num_key_value_heads=2, vision_hidden_size=32,
            vision_depth=1, batch_size=2, warmup_steps=1, save_every=1, eval_every=0, log_every=1)


def _chain() -> RecipeChain:
    first = PretrainRecipe(seed=0, steps=2, tasks={"scene": 1.0, "lookup": 1.0}, **TINY)
    second = PretrainRecipe(seed=3, steps=2, learning_rate=5e-4, tasks={"lookup": 1.0}, **TINY)
    return RecipeChain(["see", "read"], [first, second])


def test_a_chain_file_names_its_phase_files_relative_to_itself(tmp_path):
    (tmp_path / "phases").mkdir()
    PretrainRecipe(seed=0, steps=2, **TINY).save(tmp_path / "phases" / "a.yaml")
    (tmp_path / "chain.yaml").write_text(
        "phases:\n  - {name: a, recipe: phases/a.yaml}\n  - {name: b, recipe: phases/a.yaml, seed: 7, steps: 5}\n")
    chain = load_recipe(tmp_path / "chain.yaml")
    assert isinstance(chain, RecipeChain) and chain.names == ["a", "b"]
    assert [p.seed for p in chain.phases] == [0, 7] and chain.steps == 7
    assert recipe_from_dict(chain.to_dict()) == chain
    assert isinstance(load_recipe(tmp_path / "phases" / "a.yaml"), PretrainRecipe)
    assert chain.replace(steps=1).steps == 2


@pytest.mark.parametrize("text, message", [
    ("phases:\n  - {name: a, recipe: nowhere.yaml}\n", "does not exist"),
    ("phases:\n  - {name: a, steps: 2}\n  - {name: b, steps: 2, init_from: x}\n", "init_from"),
    ("phases:\n  - {name: a, steps: 2}\n  - {name: a, steps: 2}\n", "must differ"),
    ("phases:\n  - {name: a, steps: 2}\nseed: 3\n", "unknown key"),
    ("phases:\n  - {name: a, stepz: 2}\n", "unknown setting"),
])
def test_a_bad_chain_file_is_refused_with_the_reason(tmp_path, text, message):
    (tmp_path / "chain.yaml").write_text(text)
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        load_recipe(tmp_path / "chain.yaml")


def test_the_second_phase_starts_from_the_first_phase_weights(tmp_path):
    from safetensors.torch import load_file

    from fl1_core.pretrain.train import build_base

    chain = _chain()
    final = pretrain_world_base(chain, tmp_path / "run", progress=False)
    log = read_training_log(tmp_path / "run")
    assert [r["step"] for r in log] == [1, 2, 3, 4] and [r["phase"] for r in log] == ["see", "see", "read", "read"]
    assert [r["phase_step"] for r in log] == [1, 2, 1, 2]
    assert log[2]["cpu_s"] > log[1]["cpu_s"]  # CPU time counts from the chain's start
    assert json.loads((tmp_path / "run" / "recipe.json").read_text()) == chain.to_dict()
    _, folder, second = chain.runnable(tmp_path / "run")[1]
    assert second.init_from == str(tmp_path / "run" / "phase-1-see" / "final")
    model, _, _ = build_base(second)
    first_final = load_file(tmp_path / "run" / "phase-1-see" / "final" / "model.safetensors")
    state = model.base.state_dict()
    assert all(torch.equal(state[k], v) for k, v in first_final.items())
    # the chain's final is the last phase's, and differs from the first phase's
    last = load_file(final / "model.safetensors")
    assert last.keys() == load_file(folder / "final" / "model.safetensors").keys()
    assert any(not torch.equal(last[k], first_final[k]) for k in first_final)


def test_a_chain_stopped_inside_a_phase_resumes_to_the_same_losses(tmp_path):
    chain = _chain()
    pretrain_world_base(chain, tmp_path / "once", progress=False)
    stopped = pretrain_world_base(chain, tmp_path / "twice", max_steps=3, progress=False)
    assert not stopped.exists() and len(read_training_log(tmp_path / "twice")) == 3
    pretrain_world_base(chain, tmp_path / "twice", progress=False)
    once = [r["loss"] for r in read_training_log(tmp_path / "once")]
    again = [r["loss"] for r in read_training_log(tmp_path / "twice")]
    assert len(once) == 4 and once == again


def test_a_chain_run_ships_with_a_card_of_its_phases(small_world, tmp_path):
    from fl1_core.pretrain.shipped import card_from_run, ship_world_base
    from fl1_core.world_base import CARD_MD, verify_world_base

    chain = _chain()
    before = torch.get_num_threads()
    trained_with = 2 if before == 1 else 1  # not the count the card is made under
    torch.set_num_threads(trained_with)
    try:
        pretrain_world_base(chain, tmp_path / "run", progress=False)
    finally:
        torch.set_num_threads(before)
    card = card_from_run(tmp_path / "run", small_world, first_steps=3)  # the count it trained with, not the current one
    assert card["threads"] == trained_with
    assert f"--threads {trained_with} && fl1 ship-base {tmp_path / 'run'}" in card["command"]
    assert [p["phase"] for p in card["phases"]] == ["see", "read"] and [p["steps"] for p in card["phases"]] == [2, 2]
    assert sum(p["cpu_minutes"] for p in card["phases"]) == pytest.approx(card["cpu_minutes"])
    assert len(card["first_losses"]) == 3 and "8 examples" in card["data"]
    dest = ship_world_base(tmp_path / "run", card, tmp_path / "shipped")
    assert verify_world_base(dest)["recipe"] == chain.to_dict()
    assert "| read | 2 |" in (dest / CARD_MD).read_text()


def test_a_log_without_one_thread_count_is_refused():
    from fl1_core.pretrain.shipped import training_threads

    assert training_threads([{"step": 1, "threads": 1}, {"step": 2, "threads": 1}]) == 1
    with pytest.raises(ValueError, match="does not record"):
        training_threads([{"step": 1, "threads": 1}, {"step": 2}])
    with pytest.raises(ValueError, match=r"several thread counts \[1, 2\]"):
        training_threads([{"step": 1, "threads": 1}, {"step": 2, "threads": 2}])
