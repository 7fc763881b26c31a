"""Configs: shared run / optimiser / sampling settings with one name per idea, one way to override the latent
config, named RL algorithms and implementations, and paper values that say so."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import pytest

import fl1_core
from fl1_core.config import (
    ConfigBase,
    FineTuneConfig,
    LatentConfig,
    OptimizerConfig,
    RunConfig,
    SamplingConfig,
)
from fl1_core.curation.config import CurationConfig
from fl1_core.evaluation.eval_config import EvalConfig
from fl1_core.pretrain.recipe import PretrainRecipe
from fl1_core.rl.algorithms import ALGORITHMS, IMPLEMENTATIONS
from fl1_core.rl.config import RLConfig
from fl1_core.sft.config import SFTConfig

PAPER = Path(__file__).resolve().parents[1] / "docs" / "PAPER.md"


def _config_classes() -> list[type]:
    found = set()
    for info in pkgutil.walk_packages(fl1_core.__path__, "fl1_core."):
        module = importlib.import_module(info.name)
        for obj in vars(module).values():
            if inspect.isclass(obj) and issubclass(obj, ConfigBase) and obj.__module__ == module.__name__:
                found.add(obj)
    return sorted(found, key=lambda c: c.__qualname__)


def _fields(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def test_shared_settings_come_from_one_base_each():
    owners = {"seed": RunConfig, "learning_rate": OptimizerConfig, "adam_epsilon": OptimizerConfig,
              "max_grad_norm": OptimizerConfig, "max_steps": FineTuneConfig, "report_to": FineTuneConfig,
              "temperature": SamplingConfig, "top_p": SamplingConfig, "system_prompt": None}
    classes = _config_classes()
    assert {RLConfig, SFTConfig, CurationConfig, EvalConfig, PretrainRecipe} <= set(classes)
    for cls in classes:
        for name, base in owners.items():
            if name in _fields(cls) and base is not None:
                assert issubclass(cls, base), f"{cls.__name__}.{name} is not {base.__name__}'s"
    # one name per idea: the other spellings are gone everywhere
    retired = {"total_steps", "progress", "adam_betas", "adam_eps", "lr", "grad_clip", "checkpoint_every",
               "latent_cap", "latent_lambda", "loose_cap", "force_initial_latent", "preset"}
    for cls in classes:
        if cls is not LatentConfig:
            assert not retired & _fields(cls), (cls.__name__, retired & _fields(cls))
    assert hasattr(SFTConfig, "gpu_release") and hasattr(RLConfig, "gpu_release")
    assert not hasattr(RLConfig, "release_gpu") and not hasattr(RLConfig, "corrected_gpu")


def test_rl_algorithms_are_named_complete_settings():
    assert set(ALGORITHMS) >= {"grpo", "dapo", "la-dapo"} and set(IMPLEMENTATIONS) == {"release", "corrected"}
    for settings in list(ALGORITHMS.values()) + list(IMPLEMENTATIONS.values()):
        assert all(v is not None for v in dataclasses.asdict(settings).values()), settings
    # nothing left to derive: RLConfig holds no field that an algorithm or implementation owns
    owned = {f.name for s in (ALGORITHMS["dapo"], IMPLEMENTATIONS["release"]) for f in dataclasses.fields(s)} - {"name"}
    assert not owned & _fields(RLConfig)
    la = ALGORITHMS["la-dapo"]
    assert (la.eps_low, la.eps_high, la.loss_agg, la.dynamic_sampling, la.latent_rewards) == (0.2, 0.28, "token", True, True)
    release = IMPLEMENTATIONS["release"]
    assert (release.lambda_ctr, release.lambda_div, release.tau, release.replay_latents) == (1.0, 0.0, 0.5, False)
    with pytest.raises(ValueError, match="already registered"):
        from fl1_core.rl.algorithms import register_algorithm

        register_algorithm(ALGORITHMS["grpo"])


def test_one_way_to_override_the_latent_config():
    base = LatentConfig(latent_token_id=1, latent_start_id=2, latent_end_id=3)
    assert base.overridden({}) is base
    cfg = base.overridden({"loose_cap": 9, "latent_lambda": 0.5})
    assert (cfg.loose_cap, cfg.latent_lambda, cfg.latent_token_id) == (9, 0.5, 1) and cfg.decode_budget == 9
    for make in (SFTConfig, RLConfig, EvalConfig):
        assert "latent" in _fields(make)
        with pytest.raises(ValueError, match="unknown LatentConfig"):
            make(latent={"latent_token_id": 5})
        with pytest.raises(ValueError, match="unknown LatentConfig"):
            make(latent={"latent_cap": 5})
    from fl1_core.model import load_future_l1
    from fl1_core.sft.loop import run_sft

    assert "latent_config" not in inspect.signature(load_future_l1).parameters
    assert "latent_config" not in inspect.signature(run_sft).parameters


def test_paper_values_say_so_and_the_release_presets_use_them():
    anchors = set(re.findall(r'^<a id="([a-z0-9-]+)"></a>$', PAPER.read_text(encoding="utf-8"), re.MULTILINE))
    carriers = [LatentConfig, SFTConfig, RLConfig, CurationConfig, EvalConfig]
    for cls in carriers:
        values = cls.paper_values()
        assert values, cls.__name__
        for name, (value, ref) in values.items():
            field = next(f for f in dataclasses.fields(cls) if f.name == name)
            assert f"paper: {value!r}, {ref}" in field.metadata["help"]
            assert ref.split("#", 1)[1] in anchors, (cls.__name__, name, ref)
    presets = {LatentConfig: LatentConfig(), SFTConfig: SFTConfig.gpu_release(), EvalConfig: EvalConfig(),
               RLConfig: RLConfig.gpu_release(), CurationConfig: CurationConfig(mode="rollouts")}
    for cls, preset in presets.items():
        for name, (value, _) in cls.paper_values().items():
            assert getattr(preset, name) == value, (cls.__name__, name)
    assert (RLConfig.paper_values()["learning_rate"][0], SFTConfig.paper_values()["learning_rate"][0]) == (1e-6, 1e-5)


def test_sampling_and_optimiser_checks_are_shared():
    with pytest.raises(ValueError, match="temperature"):
        CurationConfig(temperature=0.0)
    with pytest.raises(ValueError, match="system_prompt"):
        RLConfig(system_prompt="nope")
    with pytest.raises(ValueError, match="learning_rate"):
        PretrainRecipe(learning_rate=0.0)
    with pytest.raises(ValueError, match="max_steps"):
        SFTConfig(max_steps=-1)
    # pretraining keeps its β₂ = 0.95 explicitly
    assert (PretrainRecipe().adam_beta1, PretrainRecipe().adam_beta2) == (0.9, 0.95)
    assert RLConfig.from_dict(RLConfig.cpu_world().to_dict()) == RLConfig.cpu_world()
    with pytest.raises(ValueError, match="unknown setting"):
        RLConfig.from_dict({"total_steps": 3})


def test_hardware_presets_by_name():
    from fl1_core.rl.config import RLConfig
    from fl1_core.sft import SFTConfig

    assert RLConfig.for_hardware("cpu", seed=3) == RLConfig.cpu_world(seed=3)
    assert RLConfig.for_hardware("gpu").max_new_tokens == RLConfig.gpu_release().max_new_tokens
    assert SFTConfig.for_hardware("gpu") == SFTConfig.gpu_release()
    with pytest.raises(ValueError, match="unknown hardware 'tpu'"):
        SFTConfig.for_hardware("tpu")
