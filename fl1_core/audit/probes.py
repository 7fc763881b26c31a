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

Probes (scikit-learn): standardise, then ridge regression for positions and velocities, scored by R² (averaged over
output dimensions), and logistic regression for event classes, scored by accuracy (with the majority share as
reference). Every score is out-of-fold over ``GroupKFold`` by clip, so spans of one clip never sit in both the
training and the test folds. The ridge penalty is chosen inside each training fold, again over clip-grouped folds
(``GridSearchCV``): several items share a clip and its frames, so a leave-one-out choice (``RidgeCV``'s default)
sees a near-copy of every held-out span and picks too weak a penalty for 1,152-wide flat spans. Measured on latent
SFT's spans (world 0, 322 spans of 120 clips): flat layout R² from the true frame 0.49 → 0.68, from the own latents
−0.10 → 0.07, from the untrained floor −0.20 → 0.05 (the grouped choice lands at α 300–30,000). Only the (item,
span) keys every compared source has are used, so all sources are scored on the same spans.
"""

from __future__ import annotations

import warnings
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


RIDGE_ALPHAS = np.logspace(-2, 6, 17)  # the ridge penalties a regression probe chooses from


def _folds(groups: np.ndarray, folds: int) -> int:
    return max(2, min(folds, len(np.unique(groups))))


def fit_probe(x: np.ndarray, y: np.ndarray, groups: np.ndarray, target: str, *, folds: int = 5,
              apply_to: np.ndarray | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """Out-of-fold predictions of one probe and its score (``{"metric", "score", "reference"?, "n", "folds"}``; a
    regression probe also gives the ridge penalty each training fold chose, ``alphas``).

    ``apply_to`` (regression only): other features of the same rows; the probe is fitted on ``x`` of the training
    clips and predicts from ``apply_to`` of the held-out clips (a probe of real frames reading imagined ones)."""
    from scipy.linalg import LinAlgWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, r2_score
    from sklearn.model_selection import GroupKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if len(np.unique(groups)) < 2:
        raise ValueError(f"probe {target}: spans of at least two clips are needed for clip-grouped folds")
    k = _folds(groups, folds)
    if apply_to is not None and (target in CLASS_TARGETS or apply_to.shape != x.shape):
        raise ValueError(f"probe {target}: apply_to needs a regression target and features shaped like x "
                         f"{x.shape}, got {apply_to.shape}")
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
    with warnings.catch_warnings():  # the smallest penalties solve ill-conditioned systems; the search rejects them
        warnings.simplefilter("ignore", LinAlgWarning)
        pred, alphas = _ridge_folds(x, y, groups, k, folds, apply_to)
    return pred, {"metric": "r2", "score": float(r2_score(y, pred)), "n": len(y), "folds": k, "alphas": alphas}


def _ridge_folds(x: np.ndarray, y: np.ndarray, groups: np.ndarray, k: int, folds: int, apply_to: np.ndarray | None
                 ) -> tuple[np.ndarray, list[float]]:
    """Out-of-fold ridge predictions over ``k`` clip-grouped folds, and the penalty each training fold chose over
    its own clip-grouped inner folds."""
    from sklearn.linear_model import Ridge, RidgeCV
    from sklearn.model_selection import GridSearchCV, GroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    pred = np.zeros_like(y, dtype=np.float64)
    alphas = []
    for train, test in GroupKFold(n_splits=k).split(x, y, groups):
        if len(np.unique(groups[train])) < 2:  # one clip to train on: no grouped choice, leave-one-out instead
            fitted = make_pipeline(StandardScaler(), RidgeCV(alphas=RIDGE_ALPHAS)).fit(x[train], y[train])
            alpha = fitted[-1].alpha_
        else:
            fitted = GridSearchCV(make_pipeline(StandardScaler(), Ridge()), {"ridge__alpha": RIDGE_ALPHAS},
                                  cv=GroupKFold(n_splits=_folds(groups[train], folds)), scoring="r2")
            fitted.fit(x[train], y[train], groups=groups[train])
            alpha = fitted.best_params_["ridge__alpha"]
        pred[test] = fitted.predict((x if apply_to is None else apply_to)[test]).reshape(pred[test].shape)
        alphas.append(float(alpha))
    return pred, alphas


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
    read_by: str | None = None,
) -> list[dict[str, Any]]:
    """One row per (source, target): the out-of-fold score on the shared spans, and the score per span index. With
    ``read_by`` (a source name), every other source also gets, per regression target, a row ``"<source> · read by
    <read_by>"``: the probe fitted on ``read_by``'s spans of the training clips, applied to this source's spans of
    the held-out clips (do imagined frames read like the real frame they stand for?)."""
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
        fits = [(name, np.stack([feats[k] for k in keys]), None) for name, feats in sources.items()]
        if read_by is not None and target not in CLASS_TARGETS:
            reference = np.stack([sources[read_by][k] for k in keys])
            fits += [(f"{name} · read by {read_by}", reference, x) for name, x, _ in fits if name != read_by]
        for name, x, apply_to in fits:
            pred, score = fit_probe(x, y, groups, target, folds=folds, apply_to=apply_to)
            per_span = {}
            for s in sorted(set(spans.tolist())):
                mask = spans == s
                if mask.sum() >= 5:
                    per_span[str(s)] = {"n": int(mask.sum()), "score": _score(y[mask], pred[mask], target)}
            rows.append({"source": name, "target": target, **score, "per_span": per_span,
                         "clips": int(len(np.unique(groups)))})
    return rows
