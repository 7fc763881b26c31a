"""Visual-gain curation (SPEC §5, stage 1). No code was released; this is the workbook's design.

For every candidate SFT record the *base* model is probed twice:

* text-only: the question frames and the question (:func:`fl1_core.data.examples.text_only_prompt`) → ``P_t``;
* hinted: the same plus the record's future frames as extra images (:func:`~fl1_core.data.examples.hinted_prompt`)
  → ``P_v``.

Visual gain ``g = P_v − P_t`` ∈ [−1, 1]. Two scoring modes:

* ``rollouts`` (the paper's): ``n`` sampled rollouts per probe; ``P = (1/n) Σ_i correct(rollout_i)`` where
  ``correct`` reads the last ``<answer>…</answer>`` span: MCQ → option-letter equality (strict extraction);
  free-form → normalised equality, or the normalised reference sentence occurring in the answer on word boundaries.
* ``likelihood`` (fast): teacher-forced probability of the reference, length-normalised:
  ``P = exp((1/|y|) Σ_j log p(y_j | prompt, ctx, y_<j))`` — the geometric-mean token probability of
  ``y`` = the answer text after a forced ``ctx = "<answer>"`` (scope ``"answer"``, default) or of
  ``y = "<answer>{answer}</answer>"`` with no context (scope ``"tagged"``).

Selection (:func:`select_by_gain`), in this order of reasons: ``easy`` (``P_t ≥ easy_threshold``), ``negative_gain``
(``g < 0``), ``zero_gain`` (``g == 0`` when ``drop_zero_gain``), ``below_min_gain`` (``g < min_gain``), then the
remaining candidates are ranked by (−g, id) and the first K are kept (``top_k``, or ``floor(keep_fraction · N)``
with N = number of scored candidates; neither = keep all eligible), the rest are ``beyond_top_k``.

Scores are appended per record to a JSONL file as soon as they are computed; a restart reads it back and never
rescores an id. Each row carries a fingerprint of the scoring settings and of the model weights; a scores file from a
different setting or base model is refused instead of being silently mixed. Batches are fixed chunks of the full
candidate list (chunk i = records[i·B:(i+1)·B]) with a per-chunk seed, so an interrupted and resumed run reproduces an
uninterrupted one (a chunk interrupted half-way is completed with only its missing ids).

Paths: the curated file holds the original JSON rows, untouched, when it is written next to the source file;
elsewhere, relative ``video`` / image paths are rewritten to absolute paths (resolved like
:func:`~fl1_core.data.formats.load_sft_records` does: against ``video_root`` or the source file's folder).
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import logging
import math
import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from tqdm.auto import tqdm

from . import answers
from . import tokens as T
from .answers import answer_span, reference_letter
from .answers import normalize as normalize_answer  # the earlier public name
from .config import ConfigBase
from .data.collator import PromptExample, build_prompt_inputs, render_prompt
from .data.examples import hinted_prompt, text_only_prompt
from .data.formats import SFTRecord, load_sft_records, read_json_rows, write_rejects
from .decoding import generate_with_latents
from .losses import token_logprobs
from .runs import append_jsonl, atomic_write_json, atomic_write_text, write_jsonl

logger = logging.getLogger(__name__)

__all__ = [
    "CurationConfig",
    "GainScore",
    "Decision",
    "CurationResult",
    "score_visual_gain",
    "select_by_gain",
    "curate",
    "is_correct",
    "answer_span",
    "normalize_answer",
    "is_mcq",
    "scoring_fingerprint",
    "record_digest",
    "repeat_prompt_rows",
    "REASONS",
]

REASONS = ("kept", "easy", "negative_gain", "zero_gain", "below_min_gain", "beyond_top_k")


@dataclass
class CurationConfig(ConfigBase):
    """Settings of visual-gain curation.

    Scoring (part of the scores fingerprint): ``mode`` (``likelihood`` | ``rollouts``), ``n_rollouts`` per probe,
    ``temperature``, ``top_p``, ``max_new_tokens``, ``batch_size`` (records per batch; a batch holds 2·B prompts,
    × n rollouts in rollouts mode), ``seed``, ``system_prompt`` (variant of :mod:`fl1_core.tokens`; the one the base was trained with —
    stage 0's default is ``interleaved``), ``likelihood_scope`` (``answer`` | ``tagged``).
    Selection (free to change on cached scores): ``easy_threshold``, ``drop_zero_gain``, ``min_gain``, ``top_k`` or
    ``keep_fraction`` (at most one), ``baseline_seed`` (random-selection baseline).
    """

    mode: Literal["likelihood", "rollouts"] = "likelihood"
    n_rollouts: int = 8
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 64
    batch_size: int = 8
    seed: int = 0
    system_prompt: str = "interleaved"
    likelihood_scope: Literal["answer", "tagged"] = "answer"
    # rollouts mode, free-form references: "env" asks the yes/no judge ($FL1_JUDGE_*) about rule failures (SPEC:
    # real TwiFF answers are sentences no rule matches); "none" uses the containment rule only, with a warning
    judge: Literal["none", "env"] = "none"
    easy_threshold: float = 0.75
    drop_zero_gain: bool = True
    min_gain: float = 0.0
    top_k: int | None = None
    keep_fraction: float | None = None
    baseline_seed: int = 0

    def __post_init__(self) -> None:
        if self.mode not in ("likelihood", "rollouts"):
            raise ValueError(f"CurationConfig.mode must be 'likelihood' or 'rollouts', got {self.mode!r}")
        if self.judge not in ("none", "env"):
            raise ValueError(f"CurationConfig.judge must be 'none' or 'env', got {self.judge!r}")
        if self.likelihood_scope not in ("answer", "tagged"):
            raise ValueError(f"CurationConfig.likelihood_scope must be 'answer' or 'tagged', got {self.likelihood_scope!r}")
        for name in ("n_rollouts", "max_new_tokens", "batch_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"CurationConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.temperature <= 0:
            raise ValueError(f"CurationConfig.temperature must be > 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"CurationConfig.top_p must be in (0, 1], got {self.top_p}")
        if self.top_k is not None and self.keep_fraction is not None:
            raise ValueError("CurationConfig: set top_k or keep_fraction, not both")
        if self.top_k is not None and self.top_k < 0:
            raise ValueError(f"CurationConfig.top_k must be >= 0, got {self.top_k}")
        if self.keep_fraction is not None and not 0 <= self.keep_fraction <= 1:
            raise ValueError(f"CurationConfig.keep_fraction must be in [0, 1], got {self.keep_fraction}")
        T.system_prompt(self.system_prompt)  # validates the variant name

    def scoring_settings(self) -> dict[str, Any]:
        """The settings that change scores (rollout settings are irrelevant in likelihood mode and vice versa)."""
        keys = ["mode", "batch_size", "system_prompt"]
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


# ------------------------------------------------------------------------------------------------------ correctness
def is_mcq(record: SFTRecord) -> bool:
    """MCQ record: ``meta.format == "mcq"`` when present, else a single option letter as the answer."""
    fmt = (record.meta or {}).get("format")
    if fmt is not None:
        return str(fmt).lower() in ("mcq", "multiple choice", "multiple-choice")
    return reference_letter(record.answer) is not None


def is_correct(text: str, reference: str, mcq: bool, rule: str = "contains") -> bool:
    """Rollout correctness: :func:`fl1_core.answers.is_correct` with the containment rule by default (a rollout's
    free-form answer counts when it contains the reference event on word boundaries; ``rule="exact"`` is stricter).
    No answer span → wrong."""
    return answers.is_correct(text, reference, mcq=mcq, rule=rule)


# ------------------------------------------------------------------------------------------------------ fingerprints
def _model_fingerprint(model: Any) -> str:
    """Cheap identity of the weights: parameter count and the float64 sum of all parameters (10 significant digits)."""
    params = list(model.parameters()) if hasattr(model, "parameters") else []
    if not params:
        return "unknown"
    with torch.no_grad():
        total = sum(float(p.detach().sum(dtype=torch.float64)) for p in params)
    count = sum(p.numel() for p in params)
    return f"{count}:{total:.10g}"


def scoring_fingerprint(config: CurationConfig, model: Any) -> str:
    """sha256[:16] of the scoring settings and the model fingerprint; stored in every score row."""
    blob = json.dumps({"settings": config.scoring_settings(), "model": _model_fingerprint(model)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def record_digest(record: SFTRecord) -> str:
    """sha256[:16] of what the probes read from a record (question, answer, media), stored with its scores."""
    parts = [record.human, record.answer, record.video, list(record.image), list(record.reasoning_image),
             list(record.image_paths), list(record.reasoning_image_paths)]
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:16]


def _chunk_seed(seed: int, chunk: int) -> int:
    return int.from_bytes(hashlib.sha256(f"curation:{seed}:{chunk}".encode()).digest()[:4], "big") & 0x7FFFFFFF


# ------------------------------------------------------------------------------------------------------ model passes
def _device(model: Any) -> torch.device:
    dev = getattr(model, "device", None)
    if isinstance(dev, torch.device):
        return dev
    params = list(model.parameters()) if hasattr(model, "parameters") else []
    return params[0].device if params else torch.device("cpu")


def _processor_inputs(processor: Any, texts: list[str], examples: Sequence[PromptExample]) -> dict:
    """Processor batch for full chat texts (images / videos of ``examples`` in order), padded."""
    images = [im for ex in examples for im in ex.question_images]
    videos = [ex.question_video for ex in examples if ex.question_video is not None]
    kwargs: dict[str, Any] = {}
    if images:
        kwargs["images"] = images
    if videos:
        kwargs.update(videos=[v.frames for v in videos], video_metadata=[v.metadata() for v in videos], do_sample_frames=False)
    return dict(processor(text=texts, padding=True, return_tensors="pt", **kwargs))


def _target_length(tokenizer: Any, text: str, target_start: int) -> tuple[int, list[int]]:
    """Number of tokens of ``text`` that cover a character at or after ``target_start`` (offsets of the fast
    tokenizer; a token straddling the boundary counts as a target token)."""
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    return sum(1 for start, end in enc["offset_mapping"] if end > target_start and end > start), enc["input_ids"]


@torch.no_grad()
def _likelihood_pass(
    model: Any, processor: Any, prompts: Sequence[PromptExample], answers: Sequence[str], config: CurationConfig
) -> list[tuple[float, int]]:
    """One teacher-forced forward over ``prompts``; per row (mean target log-prob, target token count)."""
    tok = processor.tokenizer
    system = T.system_prompt(config.system_prompt)
    texts, n_target, tails = [], [], []
    for ex, answer in zip(prompts, answers):
        head = render_prompt(processor, system, len(ex.question_images), ex.question_video is not None, ex.question)
        if config.likelihood_scope == "answer":
            head, target = head + T.ANSWER_OPEN, answer
        else:
            target = f"{T.ANSWER_OPEN}{answer}{T.ANSWER_CLOSE}"
        n, ids = _target_length(tok, head + target, len(head))
        if n < 1:
            raise ValueError(f"record {ex.id!r}: field 'answer': the reference {answer!r} has no tokens to score")
        texts.append(head + target)
        n_target.append(n)
        tails.append(ids[-n:])
    inputs = _processor_inputs(processor, texts, prompts)
    device = _device(model)
    inputs = {k: v.to(device) if torch.is_tensor(v) else v for k, v in inputs.items()}
    input_ids, mask = inputs["input_ids"], inputs["attention_mask"]
    hidden = model(**inputs, hidden_only=True).hidden_states  # [B, L, d]: no [B, L, V] logits for 2B rows
    batch, length = input_ids.shape
    m = max(n_target)
    # row end = one past the last real token (left padding: L; right padding: the row length)
    positions = torch.arange(length, device=device).expand(batch, -1)
    end = torch.where(mask.bool(), positions + 1, torch.zeros_like(positions)).max(1).values  # [B]
    j = torch.arange(m, device=device)
    tgt_pos = (end.unsqueeze(1) - m + j).clamp(min=1)  # [B, m]
    n = torch.tensor(n_target, device=device)
    valid = j.unsqueeze(0) >= (m - n).unsqueeze(1)
    for b in range(batch):  # the processor's ids must end with the tokenizer's target ids (image pads come before)
        got = input_ids[b, int(end[b]) - n_target[b] : int(end[b])].tolist()
        if got != tails[b]:
            raise RuntimeError(f"record {prompts[b].id!r}: target tokens differ between tokenizer and processor")
    # only the m target positions of each row go through the LM head, chunk-wise
    pred_hidden = torch.gather(hidden, 1, (tgt_pos - 1).unsqueeze(-1).expand(-1, -1, hidden.shape[-1]))
    tok_logp, _ = token_logprobs(pred_hidden, model.base.lm_head.weight, torch.gather(input_ids, 1, tgt_pos))
    mean = (tok_logp * valid).sum(1) / n
    return [(float(v), int(k)) for v, k in zip(mean.tolist(), n_target)]


def _repeat_media(values: torch.Tensor, grid: torch.Tensor, per_row: list[int], n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Repeat each row's block of media (patch rows of ``values``, entries of ``grid``) ``n`` times, in row order."""
    patches = grid.prod(-1).tolist()
    v_parts, g_parts, img, patch = [], [], 0, 0
    for k in per_row:
        n_patch = int(sum(patches[img : img + k]))
        v_parts += [values[patch : patch + n_patch]] * n
        g_parts += [grid[img : img + k]] * n
        img, patch = img + k, patch + n_patch
    return torch.cat(v_parts, 0), torch.cat(g_parts, 0)


def repeat_prompt_rows(inputs: dict, prompts: Sequence[PromptExample], n: int) -> dict:
    """Processor inputs of B prompts → inputs of B·n rows (each prompt n times in a row), without re-running the
    processor: token tensors are ``repeat_interleave``d, pixel blocks of each row are repeated in order."""
    if n == 1:
        return inputs
    out = {k: v.repeat_interleave(n, dim=0) if torch.is_tensor(v) and v.dim() >= 1 and v.shape[0] == len(prompts)
           and k in ("input_ids", "attention_mask", "mm_token_type_ids") else v for k, v in inputs.items()}
    if inputs.get("pixel_values") is not None:
        per_row = [len(ex.question_images) for ex in prompts]
        out["pixel_values"], out["image_grid_thw"] = _repeat_media(inputs["pixel_values"], inputs["image_grid_thw"], per_row, n)
    if inputs.get("pixel_values_videos") is not None:
        per_row = [int(ex.question_video is not None) for ex in prompts]
        out["pixel_values_videos"], out["video_grid_thw"] = _repeat_media(
            inputs["pixel_values_videos"], inputs["video_grid_thw"], per_row, n
        )
    return out


def _rollout_pass(
    model: Any, processor: Any, prompts: Sequence[PromptExample], answers: Sequence[str], mcq: Sequence[bool],
    config: CurationConfig, seed: int,
) -> list[tuple[int, list[str]]]:
    """n sampled rollouts per prompt in ONE ``generate_with_latents`` call; per prompt (#correct, texts)."""
    n = config.n_rollouts
    inputs = repeat_prompt_rows(build_prompt_inputs(processor, list(prompts), config.system_prompt), prompts, n)
    out = generate_with_latents(
        model, inputs, max_new_tokens=config.max_new_tokens, do_sample=True, temperature=config.temperature,
        top_p=config.top_p, seed=seed, tokenizer=processor.tokenizer,
    )
    result = []
    for i, (answer, is_mc) in enumerate(zip(answers, mcq)):
        texts = list(out.texts[i * n : (i + 1) * n])
        result.append((sum(is_correct(t, answer, is_mc) for t in texts), texts))
    return _judge_free_form(result, prompts, answers, mcq, config)


_warned_rule_only = False


def _judge_free_form(result: list[tuple[int, list[str]]], prompts: Sequence[PromptExample], answers: Sequence[str],
                     mcq: Sequence[bool], config: CurationConfig) -> list[tuple[int, list[str]]]:
    """Free-form rollouts the rule rejected but that have an answer go to the yes/no judge (``config.judge="env"``);
    without a judge they stay wrong and a warning says so once."""
    global _warned_rule_only
    pending = [(i, k) for i, (is_mc, (_, texts)) in enumerate(zip(mcq, result)) if not is_mc
               for k, t in enumerate(texts) if answer_span(t) and not is_correct(t, answers[i], False)]
    if not pending:
        return result
    if config.judge == "none":
        if not _warned_rule_only:
            logger.warning("curation (rollouts): free-form answers are checked by the containment rule only; real "
                           "sentence answers need the judge (CurationConfig.judge='env' with $FL1_JUDGE_*)")
            _warned_rule_only = True
        return result
    from .judge.client import JudgeConfig, YesNoJudgeItem, judge_many

    items = [YesNoJudgeItem(doc_id=f"{prompts[i].id}#{k}", question=prompts[i].question, ground_truth=answers[i],
                            model_answer=answer_span(result[i][1][k]) or "") for i, k in pending]
    verdicts, _ = judge_many(items, JudgeConfig.from_env(), progress=False, desc="curation judge")
    extra = [0] * len(result)
    for (i, _), res in zip(pending, verdicts):
        extra[i] += int(res.get("judge_error") is None and res.get("verdict") is True)
    return [(c + extra[i], texts) for i, (c, texts) in enumerate(result)]


# ------------------------------------------------------------------------------------------------------ scoring
def _load_scores(path: Path, fingerprint: str) -> tuple[dict[str, GainScore], dict[str, str]]:
    """Scores already on disk (first row per id wins); a torn last line is dropped and the file rewritten clean.
    Rows with another fingerprint are refused (different scoring settings or base model)."""
    if not path.exists():
        return {}, {}
    raw = path.read_text(encoding="utf-8")
    rows, torn = [], False
    for line in raw.splitlines():
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            torn = True
            break
    if torn or (raw and not raw.endswith("\n")):
        logger.warning("%s: dropping a torn last line left by an interrupted run", path)
        write_jsonl(path, rows)
    other = sorted({r.get("fingerprint") for r in rows} - {fingerprint}, key=str)
    if other:
        raise ValueError(
            f"{path} holds scores with fingerprint(s) {other}, but the current scoring settings and base model give "
            f"{fingerprint!r}; resuming would mix incompatible scores. Use another scores_path or delete the file."
        )
    out: dict[str, GainScore] = {}
    digests: dict[str, str] = {}
    for r in rows:
        out.setdefault(str(r["id"]), GainScore.from_row(r))
        if r.get("record_sha"):
            digests.setdefault(str(r["id"]), r["record_sha"])
    return out, digests


def score_visual_gain(
    model: Any,
    processor: Any,
    records: Sequence[SFTRecord],
    config: CurationConfig,
    scores_path: str | Path,
    *,
    rejects_path: str | Path | None = None,
    progress: bool = True,
    fingerprint: str | None = None,
) -> list[GainScore]:
    """Score every record (``P_t``, ``P_v``, ``gain = P_v − P_t``) with the base model; resumable via ``scores_path``.

    Returns one :class:`GainScore` per scoreable record, in the order of ``records``. Records whose probes cannot be
    built (no future frame, undecodable video, repeated id) are skipped and written to ``rejects_path`` (default:
    ``<scores_path>.rejects.jsonl``); a later run retries them. Never rescores an id already in ``scores_path``.
    """
    scores_path = Path(scores_path)
    rejects_path = Path(rejects_path) if rejects_path is not None else scores_path.with_name(scores_path.name + ".rejects.jsonl")
    fingerprint = fingerprint or scoring_fingerprint(config, model)
    done, digests = _load_scores(scores_path, fingerprint)
    changed = [r.id for r in records if r.id in digests and digests[r.id] != record_digest(r)]
    if changed:
        raise ValueError(
            f"{scores_path}: record(s) {changed[:5]}{' …' if len(changed) > 5 else ''} changed (question, answer or "
            "media) since they were scored; their cached scores would be stale. Use another scores_path."
        )
    seen: set[str] = set()
    unique: list[SFTRecord] = []
    rejects: list[dict[str, Any]] = []
    for rec in records:
        if rec.id in seen:
            rejects.append({"record_id": rec.id, "field": "id", "reason": "repeated id; only the first record is scored"})
            continue
        seen.add(rec.id)
        unique.append(rec)
    chunks = [unique[i : i + config.batch_size] for i in range(0, len(unique), config.batch_size)]
    todo_total = sum(1 for r in unique if r.id not in done)
    logger.info("visual gain (%s): %d records, %d already scored in %s", config.mode, len(unique), len(unique) - todo_total, scores_path)
    was_training = bool(getattr(model, "training", False))
    if hasattr(model, "eval"):
        model.eval()
    bar = tqdm(total=len(unique), initial=len(unique) - todo_total, desc=f"visual gain ({config.mode})", unit="rec", disable=not progress)
    try:
        for index, chunk in enumerate(chunks):
            todo = [r for r in chunk if r.id not in done]
            if not todo:
                continue
            built: list[tuple[SFTRecord, PromptExample, PromptExample]] = []
            for rec in todo:
                try:
                    if rec.num_future_frames == 0:
                        raise ValueError("no future frames: the hinted probe would equal the text-only probe")
                    built.append((rec, text_only_prompt(rec), hinted_prompt(rec)))
                except Exception as err:  # noqa: BLE001 - one bad record must not stop the batch
                    logger.warning("record %r: skipped (%s)", rec.id, err)
                    rejects.append({"record_id": rec.id, "field": "reasoning_image" if "future" in str(err) else "video", "reason": str(err)})
                    bar.update(1)
            if not built:
                continue
            for score, (rec, _, _) in zip(_score_chunk(model, processor, built, config, _chunk_seed(config.seed, index)), built):
                append_jsonl(scores_path, score.to_row(fingerprint, record_digest(rec)))
                done[score.id] = score
                bar.update(1)
    finally:
        bar.close()
        if was_training and hasattr(model, "train"):
            model.train()
        if rejects:
            _write_score_rejects(rejects_path, rejects)
    return [done[r.id] for r in unique if r.id in done]


def _write_score_rejects(path: Path, rejects: list[dict[str, Any]]) -> None:
    from .data.formats import Reject

    write_rejects([Reject(r["record_id"], r["field"], r["reason"]) for r in rejects], path)
    logger.warning("%d record(s) could not be scored; see %s", len(rejects), path)


def _score_chunk(
    model: Any, processor: Any, built: list[tuple[SFTRecord, PromptExample, PromptExample]], config: CurationConfig,
    seed: int,
) -> list[GainScore]:
    """Both probes of every record of one chunk in one model pass (prompt order: text₀, hint₀, text₁, hint₁, …)."""
    prompts = [p for _, text, hint in built for p in (text, hint)]
    answers = [rec.answer for rec, _, _ in built for _ in range(2)]
    out: list[GainScore] = []
    if config.mode == "likelihood":
        res = _likelihood_pass(model, processor, prompts, answers, config)
        for k, (rec, _, _) in enumerate(built):
            (lt, nt), (lv, nv) = res[2 * k], res[2 * k + 1]
            detail = {"logp_text": lt, "logp_hint": lv, "n_tokens_text": nt, "n_tokens_hint": nv}
            out.append(_make_score(rec, math.exp(lt), math.exp(lv), config.mode, detail))
    else:
        mcq = [is_mcq(rec) for rec, _, _ in built for _ in range(2)]
        res = _rollout_pass(model, processor, prompts, answers, mcq, config, seed)
        n = config.n_rollouts
        for k, (rec, _, _) in enumerate(built):
            (ct, tt), (cv, tv) = res[2 * k], res[2 * k + 1]
            detail = {"correct_text": ct, "correct_hint": cv, "n": n, "sample_text": tt[0][:300], "sample_hint": tv[0][:300]}
            out.append(_make_score(rec, ct / n, cv / n, config.mode, detail))
    return out


def _make_score(rec: SFTRecord, p_text: float, p_hint: float, mode: str, detail: dict[str, Any]) -> GainScore:
    meta = rec.meta or {}
    nv = meta.get("needs_vision")
    return GainScore(
        id=rec.id, p_text=float(p_text), p_hint=float(p_hint), mode=mode,
        question_kind=meta.get("question_kind"), needs_vision=None if nv is None else bool(nv), detail=detail,
    )


# ------------------------------------------------------------------------------------------------------ selection
def select_by_gain(scores: Sequence[GainScore], config: CurationConfig) -> list[Decision]:
    """Decisions in the order of ``scores``: drop easy (P_t ≥ easy_threshold), negative (g < 0), zero (g = 0, if
    ``drop_zero_gain``) and below-threshold (g < min_gain) records; rank the rest by (−g, id) and keep the top K."""
    reasons: dict[str, str] = {}
    eligible: list[GainScore] = []
    for s in scores:
        g = s.gain
        if s.p_text >= config.easy_threshold:
            reasons[s.id] = "easy"
        elif g < 0:
            reasons[s.id] = "negative_gain"
        elif g == 0 and config.drop_zero_gain:
            reasons[s.id] = "zero_gain"
        elif g < config.min_gain:
            reasons[s.id] = "below_min_gain"
        else:
            eligible.append(s)
    eligible.sort(key=lambda s: (-s.gain, s.id))
    if config.top_k is not None:
        k = config.top_k
    elif config.keep_fraction is not None:
        k = int(math.floor(config.keep_fraction * len(scores) + 1e-9))
    else:
        k = len(eligible)
    ranks = {s.id: i + 1 for i, s in enumerate(eligible)}
    for s in eligible:
        reasons[s.id] = "kept" if ranks[s.id] <= k else "beyond_top_k"
    return [
        Decision(
            id=s.id, p_text=s.p_text, p_hint=s.p_hint, gain=s.gain, kept=reasons[s.id] == "kept", reason=reasons[s.id],
            rank=ranks.get(s.id), question_kind=s.question_kind, needs_vision=s.needs_vision,
        )
        for s in scores
    ]


# ------------------------------------------------------------------------------------------------------ curate
def _mean(xs: Sequence[float]) -> float | None:
    return float(sum(xs) / len(xs)) if xs else None


def _share(ds: Sequence[Decision]) -> float | None:
    known = [d.needs_vision for d in ds if d.needs_vision is not None]
    return float(sum(known) / len(known)) if known else None


def summarize(decisions: Sequence[Decision], config: CurationConfig) -> dict[str, Any]:
    """Counts, mean gain / P of kept vs dropped vs all, needs_vision shares, question kinds, and a random-selection
    baseline of the same K (one seeded draw; its expectation is the 'all' column)."""
    kept = [d for d in decisions if d.kept]
    dropped = [d for d in decisions if not d.kept]

    def block(ds: Sequence[Decision]) -> dict[str, Any]:
        return {
            "count": len(ds),
            "mean_gain": _mean([d.gain for d in ds]),
            "mean_p_text": _mean([d.p_text for d in ds]),
            "mean_p_hint": _mean([d.p_hint for d in ds]),
            "needs_vision_share": _share(ds),
            "question_kinds": dict(sorted(Counter(str(d.question_kind) for d in ds).items())),
        }

    rng = random.Random(config.baseline_seed)
    rand = rng.sample(list(decisions), len(kept)) if kept else []
    return {
        "counts": {"scored": len(decisions), "kept": len(kept), "dropped": len(dropped),
                   "by_reason": {r: sum(d.reason == r for d in decisions) for r in REASONS}},
        "kept": block(kept),
        "dropped": block(dropped),
        "all": block(decisions),
        "random_baseline": {"k": len(kept), "seed": config.baseline_seed, "mean_gain": _mean([d.gain for d in rand]),
                            "needs_vision_share": _share(rand),
                            "expected_mean_gain": _mean([d.gain for d in decisions]),
                            "expected_needs_vision_share": _share(decisions)},
    }


def _absolute_paths(row: dict[str, Any], root: Path) -> dict[str, Any]:
    """Copy of ``row`` with relative ``video`` and image-path entries resolved against ``root`` (indices untouched)."""
    row = dict(row)
    fix = lambda p: p if Path(p).expanduser().is_absolute() else str((root / p).resolve())  # noqa: E731
    if isinstance(row.get("video"), str):
        row["video"] = fix(row["video"])
    for key in ("image", "reasoning_image"):
        if isinstance(row.get(key), list):
            row[key] = [fix(x) if isinstance(x, str) else x for x in row[key]]
    return row


def _table_csv(decisions: Sequence[Decision]) -> str:
    buf = io.StringIO()
    names = [f.name for f in dataclasses.fields(Decision)]
    writer = csv.DictWriter(buf, fieldnames=names, lineterminator="\n")
    writer.writeheader()
    for d in decisions:
        writer.writerow(dataclasses.asdict(d))
    return buf.getvalue()


def curate(
    model: Any,
    processor: Any,
    sft_path: str | Path,
    out_dir: str | Path,
    config: CurationConfig,
    *,
    video_root: str | Path | None = None,
    scores_path: str | Path | None = None,
    curated_name: str = "sft_curated.json",
    progress: bool = True,
) -> CurationResult:
    """Score, select and write: ``<out_dir>/{curated_name}`` (kept records' original JSON rows, source order),
    ``curation.jsonl`` / ``curation.csv`` (one :class:`Decision` per scored record), ``curation_summary.json``,
    ``scores.jsonl`` (resumable scores, unless ``scores_path``) and ``rejects.jsonl`` (records that failed to load
    or score). Relative media paths become absolute unless ``out_dir`` is the source file's folder. A world base
    built for another tokenizer or world version is refused (:func:`fl1_core.pretrain.shipped.check_base_compatible`)."""
    from .pretrain.shipped import check_base_compatible

    sft_path, out_dir = Path(sft_path), Path(out_dir)
    check_base_compatible(model, processor, sft_path.parent)
    out_dir.mkdir(parents=True, exist_ok=True)
    scores_path = Path(scores_path) if scores_path is not None else out_dir / "scores.jsonl"
    loaded = load_sft_records(sft_path, video_root=video_root, on_error="skip")
    score_rejects = out_dir / "scoring_rejects.jsonl"
    fingerprint = scoring_fingerprint(config, model)
    t0 = time.perf_counter()
    scores = score_visual_gain(
        model, processor, loaded.records, config, scores_path, rejects_path=score_rejects, progress=progress,
        fingerprint=fingerprint,
    )
    wall = time.perf_counter() - t0
    decisions = select_by_gain(scores, config)
    kept = {d.id for d in decisions if d.kept}

    rows = {pos: row for pos, row, problem in read_json_rows(sft_path) if problem is None}
    root = Path(video_root) if video_root is not None else sft_path.parent
    same_dir = out_dir.resolve() == sft_path.parent.resolve() and video_root is None
    curated, written = [], set()
    for rec in loaded.records:
        if rec.id in kept and rec.id not in written:
            written.add(rec.id)
            curated.append(rows[rec.position] if same_dir else _absolute_paths(rows[rec.position], root))
    curated_path = atomic_write_json(out_dir / curated_name, curated, indent=1)
    table_path = write_jsonl(out_dir / "curation.jsonl", [dataclasses.asdict(d) for d in decisions])
    csv_path = atomic_write_text(out_dir / "curation.csv", _table_csv(decisions))
    if loaded.rejects:
        write_rejects(loaded.rejects, out_dir / "rejects.jsonl")
    summary = summarize(decisions, config)
    summary["counts"].update(candidates=len(loaded.records) + len(loaded.rejects), load_rejects=len(loaded.rejects),
                             score_rejects=len(loaded.records) - len(scores))
    summary.update(
        config=config.to_dict(), fingerprint=fingerprint, source=str(sft_path),
        curated=str(curated_path), paths="original rows" if same_dir else "absolute media paths",
        scoring_wall_s=round(wall, 3),
    )
    summary_path = atomic_write_json(out_dir / "curation_summary.json", summary)
    logger.info(
        "curation: kept %d / %d (mean gain kept %s vs dropped %s; needs_vision kept %s vs all %s)",
        len(kept), len(decisions), summary["kept"]["mean_gain"], summary["dropped"]["mean_gain"],
        summary["kept"]["needs_vision_share"], summary["all"]["needs_vision_share"],
    )
    return CurationResult(curated_path, table_path, csv_path, summary_path, scores_path, scores, decisions, summary)
