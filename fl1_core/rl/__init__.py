"""LA-DAPO (docs/PAPER.md#la-dapo): group advantages and dynamic sampling (pure functions), the trainer, presets and RL data
scaling (held-out MCQ accuracy, the yardstick of RL, is :mod:`fl1_core.evaluation.heldout`).

- :mod:`~fl1_core.rl.advantages` — ``group_advantages``;
- :mod:`~fl1_core.rl.dynamic_sampling` — ``dynamic_sampling_keep``, the refill rounds;
- :mod:`~fl1_core.rl.config` — ``RLConfig`` (``release`` / ``corrected`` presets, ``grpo`` / ``dapo`` / ``la-dapo``);
- :mod:`~fl1_core.rl.accuracy` — rule check + LLM-judge fallback;
- :mod:`~fl1_core.rl.rollout` — rollouts with latent recording, rewards, dynamic sampling with refill rounds;
- :mod:`~fl1_core.rl.trainer` — the update step and the loop with checkpoint/resume (``train_rl``, ``run_rl``);
- :mod:`~fl1_core.rl.scaling` — ``rl_data_scaling``.
"""

from fl1_core.rl.advantages import group_advantages
from fl1_core.rl.dynamic_sampling import dynamic_sampling_keep

__all__ = [
    "group_advantages",
    "dynamic_sampling_keep",
    "RLConfig",
    "RLResult",
    "RLTrainer",
    "TrainBatch",
    "StopTraining",
    "train_rl",
    "run_rl",
    "rl_data_scaling",
    "score_accuracy",
    "dynamic_sampling_rounds",
    "SamplingResult",
]

_LAZY = {
    "RLConfig": "fl1_core.rl.config",
    "RLResult": "fl1_core.rl.trainer",
    "RLTrainer": "fl1_core.rl.trainer",
    "TrainBatch": "fl1_core.rl.trainer",
    "StopTraining": "fl1_core.rl.trainer",
    "train_rl": "fl1_core.rl.trainer",
    "run_rl": "fl1_core.rl.trainer",
    "rl_data_scaling": "fl1_core.rl.scaling",
    "score_accuracy": "fl1_core.rl.accuracy",
    "dynamic_sampling_rounds": "fl1_core.rl.rollout",
    "SamplingResult": "fl1_core.rl.rollout",
}


def __getattr__(name: str):
    """Lazy re-exports: importing ``fl1_core.rl`` for the pure functions stays light (no transformers import)."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'fl1_core.rl' has no attribute {name!r}")
