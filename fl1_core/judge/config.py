"""What a judge request is: the endpoint settings (JudgeConfig, from arguments or the environment), the two item
kinds (TwiFF-Bench scoring, yes/no accuracy) and the per-run statistics."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


from fl1_core.judge.sanitize import split_reasoning_answer

ENV_BASE_URL = "FL1_JUDGE_BASE_URL"
ENV_MODEL = "FL1_JUDGE_MODEL"
ENV_API_KEY = "FL1_JUDGE_API_KEY"
_FALLBACK_KEY_ENV = "OPENAI_API_KEY"
_PLACEHOLDER_KEY = "no-key"


def normalize_base_url(url: str) -> str:
    """Strip whitespace, trailing slashes and a trailing ``/chat/completions``."""
    url = url.strip().rstrip("/")
    if url.endswith("/chat/completions"):
        url = url[: -len("/chat/completions")].rstrip("/")
    return url


@dataclass
class JudgeConfig:
    """Judge endpoint and request policy. Holds the NAME of the API-key variable, never the key."""

    base_url: str | None = None  # None → $FL1_JUDGE_BASE_URL
    model: str | None = None  # None → $FL1_JUDGE_MODEL
    api_key_env: str = ENV_API_KEY  # falls back to $OPENAI_API_KEY when unset
    concurrency: int = 16
    timeout_s: float = 60.0
    max_retries: int = 4  # retries after the first attempt (the release: up to 500 × 500, docs/PAPER.md#deviations)
    backoff_base_s: float = 1.0
    backoff_max_s: float = 30.0
    jitter_seed: int | None = 0  # None → no jitter
    temperature: float = 0.0  # 0, the release's judge (docs/PAPER.md#evaluation)
    max_tokens: int = 1024  # 1024, the release's
    json_mode: bool = True  # TwiFF scoring only, as the release; the yes/no judge is plain text
    include_images: bool = True
    cache_dir: str | None = None

    @classmethod
    def from_env(cls, **overrides: Any) -> "JudgeConfig":
        """A config whose base URL and model are read from the environment now (overrides win)."""
        values: dict[str, Any] = {"base_url": os.environ.get(ENV_BASE_URL), "model": os.environ.get(ENV_MODEL)}
        values.update(overrides)
        return cls(**values)

    def resolved_base_url(self) -> str:
        """The normalised base URL (config, else ``$FL1_JUDGE_BASE_URL``)."""
        url = self.base_url or os.environ.get(ENV_BASE_URL)
        if not url:
            raise ValueError(f"judge base URL not set: pass JudgeConfig(base_url=...) or set ${ENV_BASE_URL}")
        return normalize_base_url(url)

    def resolved_model(self) -> str:
        """The judge model name (config, else ``$FL1_JUDGE_MODEL``)."""
        model = self.model or os.environ.get(ENV_MODEL)
        if not model:
            raise ValueError(f"judge model not set: pass JudgeConfig(model=...) or set ${ENV_MODEL}")
        return model

    def to_dict(self) -> dict[str, Any]:
        """Plain values for manifests (no secret is held, so none can leak)."""
        return dataclasses.asdict(self)

    def _api_key(self) -> str | None:
        return os.environ.get(self.api_key_env) or os.environ.get(_FALLBACK_KEY_ENV)


@dataclass
class TwiffJudgeItem:
    """One TwiFF-Bench sample to score (model reasoning/answer already split, see :meth:`from_output`)."""

    doc_id: Any
    question: str
    reference_reasoning: str
    ground_truth: str
    model_reasoning: str
    model_answer: str
    reference_images: list[Any] = field(default_factory=list, repr=False)

    @classmethod
    def from_output(
        cls, doc_id: Any, question: str, reference: str, model_output: str, reference_images: Sequence[Any] = ()
    ) -> "TwiffJudgeItem":
        """Build from a TwiFF-Bench reference (chain + ``<answer>…</answer>``) and a raw model output."""
        ref_chain, gt = split_reasoning_answer(reference)
        reasoning, answer = split_reasoning_answer(model_output)
        return cls(doc_id, question, ref_chain, gt, reasoning, answer, list(reference_images))


@dataclass
class YesNoJudgeItem:
    """One RL accuracy-judge query (docs/PAPER.md#rewards)."""

    doc_id: Any
    question: str
    ground_truth: str
    model_answer: str


@dataclass
class JudgeStats:
    """Counters of one judging run."""

    items: int = 0
    requests_sent: int = 0
    cache_hits: int = 0
    coalesced: int = 0
    retries: int = 0
    judged: int = 0
    failures: int = 0
    clamped: int = 0
    errors: dict[str, int] = field(default_factory=dict)  # error kind → attempts that ended with it
    elapsed_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """Plain values for metrics files."""
        return dataclasses.asdict(self)


def _coerce_item(obj: Any, idx: int) -> TwiffJudgeItem | YesNoJudgeItem:
    if isinstance(obj, (TwiffJudgeItem, YesNoJudgeItem)):
        return obj
    if not isinstance(obj, Mapping):
        raise TypeError(f"judge item {idx}: expected TwiffJudgeItem, YesNoJudgeItem or a mapping, got {type(obj)}")
    doc_id = obj.get("doc_id", idx)
    if "reference_reasoning" in obj:
        reasoning, answer = obj.get("model_reasoning"), obj.get("model_answer")
        if reasoning is None and answer is None and obj.get("model_output") is not None:
            reasoning, answer = split_reasoning_answer(obj["model_output"])
        missing = [k for k in ("question", "ground_truth") if k not in obj]
        if missing:
            raise ValueError(f"judge item {doc_id!r}: missing field(s) {missing} for TwiFF-Bench scoring")
        return TwiffJudgeItem(
            doc_id,
            obj["question"],
            obj["reference_reasoning"],
            obj["ground_truth"],
            reasoning or "",
            answer or "",
            list(obj.get("reference_images") or []),
        )
    missing = [k for k in ("ground_truth", "model_answer") if k not in obj]
    if missing:
        raise ValueError(
            f"judge item {doc_id!r}: missing field(s) {missing}; a TwiFF item needs 'reference_reasoning', "
            "a yes/no item 'ground_truth' and 'model_answer'"
        )
    return YesNoJudgeItem(doc_id, obj.get("question", ""), obj["ground_truth"], obj["model_answer"])
