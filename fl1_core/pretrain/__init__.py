"""World pretraining: the tiny Qwen3-VL learns to see and read the synthetic world before the paper's stages.

Modules: ``perception`` (cell targets, the auxiliary cell head), ``tasks`` (the procedural curricula), ``recipe``
(sizes, optimisation, shares), ``train`` (the resumable loop of one phase), ``chain`` (phases in a row and
``pretrain_world_base``), ``evaluate`` and ``reading`` (held-out measures), ``shipped`` (the card and the copy into
``fl1_core/assets/world_base``).
"""

from .chain import pretrain_world_base
from .evaluate import heldout_mcq_by_group, lookup_accuracy, scene_accuracy
from .perception import CellHead, cell_loss, cell_targets
from .recipe import PretrainRecipe
from .tasks import TASKS, TaskSampler
from .train import build_base

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
]
