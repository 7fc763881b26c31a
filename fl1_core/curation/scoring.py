"""Visual-gain scoring: P_t and P_v per record, g = P_v − P_t, resumable per-record JSONL with fingerprints."""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ..checkpoints import model_fingerprint
from ..data.collator import PromptExample
from ..data.examples import hinted_prompt, text_only_prompt
from ..data.records import SFTRecord, write_rejects
from ..runs import append_jsonl, write_jsonl

logger = logging.getLogger(__name__)

from .config import CurationConfig, GainScore
from .probes import _likelihood_pass, _rollout_pass, is_mcq


# ------------------------------------------------------------------------------------------------------ fingerprints
def scoring_fingerprint(config: CurationConfig, model: Any) -> str:
    """sha256[:16] of the scoring settings and the model's weights (:func:`fl1_core.checkpoints.model_fingerprint`);
    stored in every score row."""
    blob = json.dumps({"settings": config.scoring_settings(), "model": model_fingerprint(model)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def record_digest(record: SFTRecord) -> str:
    """sha256[:16] of what the probes read from a record (question, answer, media), stored with its scores."""
    parts = [record.human, record.answer, record.video, list(record.image), list(record.reasoning_image),
             list(record.image_paths), list(record.reasoning_image_paths)]
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:16]


def _chunk_seed(seed: int, chunk: int) -> int:
    return int.from_bytes(hashlib.sha256(f"curation:{seed}:{chunk}".encode()).digest()[:4], "big") & 0x7FFFFFFF




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
    from ..data.records import Reject

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
