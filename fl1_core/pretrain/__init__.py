"""World pretraining: the tiny Qwen3-VL learns to see and read the synthetic world before the paper's stages.

Modules: ``perception`` (cell targets, the auxiliary cell head), ``tasks`` (the procedural curricula), ``recipe``
(sizes, optimisation, shares), ``train`` (the resumable loop), ``evaluate`` (held-out measures).
"""

from .evaluate import heldout_mcq_by_group, lookup_accuracy, scene_accuracy, wilson_interval
from .perception import CellHead, cell_loss, cell_targets
from .recipe import PretrainRecipe
from .tasks import TASKS, TaskSampler
from .train import build_base, pretrain_world_base

__all__ = [
    "TASKS",
    "CellHead",
    "PretrainRecipe",
    "TaskSampler",
    "build_base",
    "cell_loss",
    "cell_targets",
    "heldout_mcq_by_group",
    "lookup_accuracy",
    "pretrain_world_base",
    "scene_accuracy",
    "wilson_interval",
]
