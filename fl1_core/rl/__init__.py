"""Reinforcement learning with LA-DAPO (docs/PAPER.md#la-dapo) and its GRPO / DAPO ablations.

- :mod:`~fl1_core.rl.advantages` — ``group_advantages`` (pure function);
- :mod:`~fl1_core.rl.dynamic_sampling` — ``dynamic_sampling_keep``, the refill rounds;
- :mod:`~fl1_core.rl.algorithms` — the named algorithm and implementation settings (``grpo`` / ``dapo`` /
  ``la-dapo``, and the ablations ``grpo-token-mean`` / ``grpo-dynamic-sampling``; ``release`` / ``corrected``);
- :mod:`~fl1_core.rl.config` — ``RLConfig``;
- :mod:`~fl1_core.rl.accuracy` — rule check + LLM-judge fallback;
- :mod:`~fl1_core.rl.rollout` — rollouts with latent recording and rewards;
- :mod:`~fl1_core.rl.update` and :mod:`~fl1_core.rl.trainer` — the update step and the loop (``RLTrainer``,
  ``train_rl``, ``run_rl``);
- :mod:`~fl1_core.rl.scaling` — ``rl_data_scaling`` (held-out MCQ accuracy, the yardstick of RL, is
  :mod:`fl1_core.evaluation.heldout`).

Importing this package stays light (torch only): the trainer and its transformers imports load with their modules.
"""

from fl1_core.rl.advantages import group_advantages
from fl1_core.rl.dynamic_sampling import dynamic_sampling_keep

__all__ = ["dynamic_sampling_keep", "group_advantages"]
