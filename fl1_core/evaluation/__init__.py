"""Evaluation on FutureBench- and TwiFF-Bench-style data: settings (``eval_config``), item loading (``loading``), the
resumable runner (``runner``), judging of predictions (``summary``), aggregation (``futurebench``, ``twiffbench``),
latent statistics and inference cost (``latent_stats``), the comparison table (``compare``), model-free baselines
(``baselines``), held-out MCQ accuracy (``heldout``) and hidden-state groups and t-SNE (``states``, ``tsne``).

Answers are read by :mod:`fl1_core.answers` and judged by :mod:`fl1_core.judge`; the two names below are
re-exported here because they belong to the stable API (importing this package stays light: no torch).
"""

from fl1_core.answers import extract_answer_letter
from fl1_core.evaluation.futurebench import score_futurebench
from fl1_core.evaluation.twiffbench import score_twiffbench
from fl1_core.judge.parsing import coerce_score_pair

__all__ = ["coerce_score_pair", "extract_answer_letter", "score_futurebench", "score_twiffbench"]
