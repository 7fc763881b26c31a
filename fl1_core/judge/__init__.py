"""The LLM judge, below every stage (RL rewards, curation, evaluation): the OpenAI-compatible client with its cache,
the prompts, reply parsing, output sanitising, the rule scores and the local world judge server."""

from fl1_core.judge.client import JudgeConfig, YesNoJudgeItem, TwiffJudgeItem, judge_from_choice, judge_many

__all__ = ["JudgeConfig", "TwiffJudgeItem", "YesNoJudgeItem", "judge_from_choice", "judge_many"]
