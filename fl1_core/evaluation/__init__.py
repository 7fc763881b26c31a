"""Evaluation: FutureBench and TwiFF-Bench scoring, answer extraction, the judge client and a local judge server.

One concept per module: ``extraction`` (option letters), ``sanitize`` (cleaning outputs for judges), ``futurebench``
and ``twiffbench`` (aggregation), ``judge_parsing`` (reply parsing), ``judge_prompts`` (messages), ``judge_rules``
(the exact model-free scoring rules), ``judge_cache`` (disk cache), ``judge_client`` (async OpenAI-compatible client)
and ``judge_server`` (the local OpenAI-compatible judge).
"""

from fl1_core.evaluation.extraction import EXTRACTION_MODES, extract_answer_letter, read_option_letter
from fl1_core.evaluation.futurebench import FUTUREBENCH_SPLITS, SPLIT_LABELS, score_futurebench
from fl1_core.judge.cache import JudgeCache, cache_key
from fl1_core.judge.client import (
    JudgeClient,
    JudgeConfig,
    JudgeStats,
    TwiffJudgeItem,
    YesNoJudgeItem,
    ajudge_many,
    judge_many,
    normalize_base_url,
)
from fl1_core.judge.parsing import (
    clamp_score_pair,
    coerce_score_pair,
    parse_score_reply,
    parse_yes_no,
    round_half_up,
)
from fl1_core.judge.prompts import build_twiff_messages, build_yesno_messages
from fl1_core.judge.rules import rule_answer_score, rule_cot_score, rule_scores, rule_yes_no
from fl1_core.judge.server import FaultConfig, JudgeServerHandle, serve, start_judge_server
from fl1_core.judge.sanitize import VISUAL_MARKER, sanitize_for_judge, split_reasoning_answer
from fl1_core.evaluation.twiffbench import score_twiffbench

__all__ = [
    "EXTRACTION_MODES",
    "FUTUREBENCH_SPLITS",
    "SPLIT_LABELS",
    "VISUAL_MARKER",
    "FaultConfig",
    "JudgeCache",
    "JudgeClient",
    "JudgeConfig",
    "JudgeServerHandle",
    "JudgeStats",
    "TwiffJudgeItem",
    "YesNoJudgeItem",
    "ajudge_many",
    "build_twiff_messages",
    "build_yesno_messages",
    "cache_key",
    "clamp_score_pair",
    "coerce_score_pair",
    "extract_answer_letter",
    "judge_many",
    "normalize_base_url",
    "parse_score_reply",
    "parse_yes_no",
    "read_option_letter",
    "round_half_up",
    "rule_answer_score",
    "rule_cot_score",
    "rule_scores",
    "rule_yes_no",
    "sanitize_for_judge",
    "score_futurebench",
    "score_twiffbench",
    "serve",
    "split_reasoning_answer",
    "start_judge_server",
]

# Evaluation runner, latent statistics / inference cost and the comparison table.
# Imported lazily: they pull in torch / transformers / pandas, which scoring and the judge server do not need.
_LAZY = {
    "EvalConfig": "fl1_core.evaluation.runner",
    "evaluate": "fl1_core.evaluation.runner",
    "evaluate_futurebench": "fl1_core.evaluation.runner",
    "evaluate_twiffbench": "fl1_core.evaluation.runner",
    "summarize_predictions": "fl1_core.evaluation.runner",
    "adjacent_span_cosines": "fl1_core.evaluation.latent_stats",
    "inference_cost": "fl1_core.evaluation.latent_stats",
    "latent_statistics": "fl1_core.evaluation.latent_stats",
    "span_count_distribution": "fl1_core.evaluation.latent_stats",
    "comparison_table": "fl1_core.evaluation.compare",
}
__all__ += sorted(_LAZY)


def __getattr__(name: str):
    """Resolve the lazily imported names of :data:`_LAZY`."""
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
