"""The LLM judge, below every stage (RL rewards, curation, evaluation): the OpenAI-compatible client with its cache,
the prompts, reply parsing, output sanitising, the rule scores and the local world judge server."""

from fl1_core.judge.client import judge_from_choice, judge_many
from fl1_core.judge.config import JudgeConfig, YesNoJudgeItem, TwiffJudgeItem

__all__ = ["JudgeConfig", "TwiffJudgeItem", "YesNoJudgeItem", "judge_from_choice", "judge_many"]
