"""LA-DAPO (SPEC §6): group advantages and dynamic sampling; the trainer lives in sibling modules."""

from fl1_core.rl.advantages import dynamic_sampling_keep, group_advantages

__all__ = ["group_advantages", "dynamic_sampling_keep"]
