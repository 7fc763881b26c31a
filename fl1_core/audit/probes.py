"""Linear probes: do the latent spans carry the imagined future state?

Each feature source gives one vector per (test item, span k) that stands for the world at the gold frame of span k
(:func:`fl1_core.audit.world_states.span_frames`):

* ``latent SFT``: the mean of the latents the model fed in span k;
* ``frame embedding``: the mean ground-truth embedding of that future frame (frozen vision tower + merger: what
  latent SFT aligns to; the upper bound);
* ``text-only SFT``: the text-only model's hidden state right after its k-th ``</reason>`` (where a latent model
  would open span k);
* ``untrained``: an untrained model's states at the latent model's slots, on the same teacher-forced sequence (the
  floor).

The ``… · flat`` sources (``probes_flat`` of the audit) use the span's tokens concatenated in slot order instead of
their mean (:func:`fl1_core.audit.decode.span_flats`), so a probe can read *where* in the frame's 3×3 token grid
something sits; spans of another length than the frame's merged tokens are left out.

Probes (scikit-learn): standardise, then ridge regression (``RidgeCV``) for positions and velocities, scored by R²
(averaged over output dimensions), and logistic regression for event classes, scored by accuracy (with the majority
share as reference). Every score is out-of-fold over ``GroupKFold`` by clip, so spans of one clip never sit in both
the training and the test folds. Only the (item, span) keys every compared source has are used, so all sources are
scored on the same spans.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .world_states import CLASS_TARGETS, STATE_TARGETS, SpanFrame, state_at, target_matrix

Key = tuple[str, int]  # (record id, span index 1-based)


def span_features(frames: Mapping[str, Sequence[SpanFrame]], vectors: Mapping[str, Sequence[np.ndarray]]
                  ) -> dict[Key, np.ndarray]:
    """``{(record id, span k): vector}`` pairing each record's k-th vector with its k-th gold frame (extra vectors
    or frames on either side are dropped)."""
    out = {}
    for rid, vecs in vectors.items():
        for frame, vec in zip(frames.get(rid, ()), vecs):
            if vec is not None:  # a span that cannot be flattened (see decode.span_flats)
                out[(rid, frame.span)] = np.asarray(vec, dtype=np.float64)
    return out


def common_keys(sources: Mapping[str, Mapping[Key, np.ndarray]]) -> list[Key]:
    """Keys every source has, sorted."""
    sets = [set(s) for s in sources.values()]
    return sorted(set.intersection(*sets)) if sets else []


def _folds(groups: np.ndarray, folds: int) -> int:
    return max(2, min(folds, len(np.unique(groups))))


def fit_probe(x: np.ndarray, y: np.ndarray, groups: np.ndarray, target: str, *, folds: int = 5
              ) -> tuple[np.ndarray, dict[str, Any]]:
    """Out-of-fold predictions of one probe and its score (``{"metric", "score", "reference"?, "n", "folds"}``)."""
    from sklearn.linear_model import LogisticRegression, RidgeCV
    from sklearn.metrics import accuracy_score, r2_score
    from sklearn.model_selection import GroupKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if len(np.unique(groups)) < 2:
        raise ValueError(f"probe {target}: spans of at least two clips are needed for clip-grouped folds")
    k = _folds(groups, folds)
    if target in CLASS_TARGETS:
        if len(np.unique(y)) < 2:
            pred = np.full_like(y, y[0])
            return pred, {"metric": "accuracy", "score": 1.0, "reference": 1.0, "n": len(y), "folds": 0}
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=0.1))
        values, counts = np.unique(y, return_counts=True)
        try:
            pred = cross_val_predict(model, x, y, groups=groups, cv=GroupKFold(n_splits=k))
        except ValueError:  # a training fold holds one class only (few spans): the majority class, said so
            pred = np.full_like(y, values[counts.argmax()])
            return pred, {"metric": "accuracy", "score": float(accuracy_score(y, pred)),
                          "reference": float(counts.max() / counts.sum()), "n": len(y), "folds": 0,
                          "note": "a fold had one class: majority-class predictions"}
        return pred, {"metric": "accuracy", "score": float(accuracy_score(y, pred)),
                      "reference": float(counts.max() / counts.sum()), "n": len(y), "folds": k}
    model = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-2, 4, 13)))
    pred = cross_val_predict(model, x, y, groups=groups, cv=GroupKFold(n_splits=k))
    return pred, {"metric": "r2", "score": float(r2_score(y, pred)), "n": len(y), "folds": k}


def _score(y: np.ndarray, pred: np.ndarray, target: str) -> float:
    from sklearn.metrics import accuracy_score, r2_score

    if target in CLASS_TARGETS:
        return float(accuracy_score(y, pred))
    return float(r2_score(y, pred)) if len(y) > 1 else float("nan")


def probe_table(
    sources: Mapping[str, Mapping[Key, np.ndarray]],
    frames: Mapping[str, Sequence[SpanFrame]],
    clips: Mapping[str, dict],
    *,
    targets: Sequence[str] = STATE_TARGETS,
    folds: int = 5,
) -> list[dict[str, Any]]:
    """One row per (source, target): the out-of-fold score on the shared spans, and the score per span index."""
    keys = common_keys(sources)
    if not keys:
        raise ValueError("the feature sources share no (item, span) pair: nothing to probe")
    by_key = {(f.record_id, f.span): f for fs in frames.values() for f in fs}
    states = [state_at(clips[by_key[k].clip_id], by_key[k].frame) for k in keys]
    groups = np.asarray([by_key[k].clip_id for k in keys])
    spans = np.asarray([k[1] for k in keys])
    rows = []
    for target in targets:
        y = target_matrix(states, target)
        for name, feats in sources.items():
            x = np.stack([feats[k] for k in keys])
            pred, score = fit_probe(x, y, groups, target, folds=folds)
            per_span = {}
            for s in sorted(set(spans.tolist())):
                mask = spans == s
                if mask.sum() >= 5:
                    per_span[str(s)] = {"n": int(mask.sum()), "score": _score(y[mask], pred[mask], target)}
            rows.append({"source": name, "target": target, **score, "per_span": per_span,
                         "clips": int(len(np.unique(groups)))})
    return rows
