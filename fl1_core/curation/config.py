"""Curation settings and results: CurationConfig, one GainScore per record, one Decision per record."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal


from ..config import SamplingConfig, paper_setting
from ..data.prompt_caps import QUESTION_MAX_PIXELS

logger = logging.getLogger(__name__)


REASONS = ("kept", "easy", "negative_gain", "zero_gain", "below_min_gain", "beyond_top_k")


@dataclass
class CurationConfig(SamplingConfig):
    """Settings of visual-gain curation.

    Scoring (part of the scores fingerprint): ``mode`` (``likelihood`` | ``rollouts``), ``n_rollouts`` per probe,
    ``temperature``, ``top_p``, ``max_new_tokens``, ``batch_size`` (records per batch; a batch holds 2·B prompts,
    × n rollouts in rollouts mode), ``seed``, ``system_prompt`` (variant of :mod:`fl1_core.tokens`; the one the base was trained with), ``likelihood_scope`` (``answer`` | ``tagged``), ``question_max_pixels``
    (pixel cap of every probe image, question and hint frames; :mod:`fl1_core.data.prompt_caps`).
    Selection (free to change on cached scores): ``easy_threshold``, ``drop_zero_gain``, ``min_gain``, ``top_k`` or
    ``keep_fraction`` (at most one), ``stratify_letters`` (each answer letter, and free-form, keeps its share of the
    input: a small model learns a letter prior from a letter-skewed kept set), ``centre_gain`` (select on
    ``g − mean g`` of the record's stratum, its answer letter or free-form: the hint images can shift a model's
    letter prior, which moves the gain of every record with that letter alike and is not the visual help of one
    record), ``baseline_seed`` (random-selection baseline).

    Measured with the shipped base on world 0 (likelihood mode, keep_fraction 0.5): the hint images move the answer
    letter's probability from A/B to C/D (mean P_v − P_t: A −0.24, B −0.18, C +0.18, D +0.21), so the plain
    selection keeps 476 records whose MCQ letters are D 90, C 79, A 7, B 5. Centred and stratified it keeps 857
    (D 73, A 70, B 66, C 51). Latent SFT on each (226 steps, one seed), concluded option paired against the base
    on 400 event-kind held-out items: plain −4.8 [−9.0, −0.5], centred −6.2 [−10.5, −2.0], a random 857 records
    +0.8 [−3.5, +5.0] points; letters on the 320 frame-needing items, centred against plain, +5.0 [−0.2, +10.2]
    (README, "Where the event-kind losses come from").

    The paper probes with 8 sampled answers each (``mode="rollouts"``, ``n_rollouts`` 8) and gives no thresholds;
    ``likelihood`` mode and the selection defaults are the workbook's (docs/PAPER.md#curation,
    docs/PAPER.md#deviations). Sampling settings (``temperature``, ``top_p``, ``max_new_tokens``, ``seed``,
    ``system_prompt``): :class:`~fl1_core.config.SamplingConfig`.
    """

    mode: Literal["likelihood", "rollouts"] = "likelihood"
    n_rollouts: int = paper_setting(8, "docs/PAPER.md#curation", "sampled answers per probe in rollouts mode")
    max_new_tokens: int = 64
    batch_size: int = 8
    likelihood_scope: Literal["answer", "tagged"] = "answer"
    question_max_pixels: int | None = QUESTION_MAX_PIXELS
    # rollouts mode, free-form references: "env" asks the yes/no judge ($FL1_JUDGE_*) about rule failures (docs/PAPER.md#curation:
    # real TwiFF answers are sentences no rule matches); "none" uses the containment rule only, with a warning
    judge: Literal["none", "env"] = "none"
    easy_threshold: float = 0.75
    drop_zero_gain: bool = True
    min_gain: float = 0.0
    top_k: int | None = None
    keep_fraction: float | None = None
    stratify_letters: bool = False
    centre_gain: bool = False
    baseline_seed: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.mode not in ("likelihood", "rollouts"):
            raise ValueError(f"CurationConfig.mode must be 'likelihood' or 'rollouts', got {self.mode!r}")
        if self.judge not in ("none", "env"):
            raise ValueError(f"CurationConfig.judge must be 'none' or 'env', got {self.judge!r}")
        if self.likelihood_scope not in ("answer", "tagged"):
            raise ValueError(f"CurationConfig.likelihood_scope must be 'answer' or 'tagged', got {self.likelihood_scope!r}")
        for name in ("n_rollouts", "max_new_tokens", "batch_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"CurationConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.top_k is not None and self.keep_fraction is not None:
            raise ValueError("CurationConfig: set top_k or keep_fraction, not both")
        if self.top_k is not None and self.top_k < 0:
            raise ValueError(f"CurationConfig.top_k must be >= 0, got {self.top_k}")
        if self.keep_fraction is not None and not 0 <= self.keep_fraction <= 1:
            raise ValueError(f"CurationConfig.keep_fraction must be in [0, 1], got {self.keep_fraction}")

    def scoring_settings(self) -> dict[str, Any]:
        """The settings that change scores (rollout settings are irrelevant in likelihood mode and vice versa)."""
        keys = ["mode", "batch_size", "system_prompt", "question_max_pixels"]
        keys += ["n_rollouts", "temperature", "top_p", "max_new_tokens", "seed"] if self.mode == "rollouts" else ["likelihood_scope"]
        return {k: getattr(self, k) for k in keys}


@dataclass
class GainScore:
    """Scores of one record: ``gain = p_hint − p_text`` (P_v − P_t)."""

    id: str
    p_text: float
    p_hint: float
    mode: str
    question_kind: str | None = None
    needs_vision: bool | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def gain(self) -> float:
        return self.p_hint - self.p_text

    def to_row(self, fingerprint: str, record_sha: str | None = None) -> dict[str, Any]:
        row = dataclasses.asdict(self)
        row["gain"] = self.gain
        row["fingerprint"] = fingerprint
        if record_sha is not None:
            row["record_sha"] = record_sha
        return row

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> "GainScore":
        return cls(**{f.name: row[f.name] for f in dataclasses.fields(cls) if f.name in row})


@dataclass
class Decision:
    """Selection outcome of one record (``rank``: 1-based position among eligible records by (−gain, id))."""

    id: str
    p_text: float
    p_hint: float
    gain: float
    kept: bool
    reason: str
    rank: int | None = None
    question_kind: str | None = None
    needs_vision: bool | None = None
    selection_gain: float | None = None  # the gain selection ranked on (centred per stratum under centre_gain)


@dataclass
class CurationResult:
    """What :func:`curate` wrote and computed."""

    curated_path: Path
    table_path: Path
    csv_path: Path
    summary_path: Path
    scores_path: Path
    scores: list[GainScore]
    decisions: list[Decision]
    summary: dict[str, Any]

    @property
    def kept_ids(self) -> list[str]:
        return [d.id for d in self.decisions if d.kept]
