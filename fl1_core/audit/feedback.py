"""How close the latents a model feeds back at inference are to the gold embeddings of the frames they stand for.

SFT teaches the text after a span to read the gold future-frame embeddings at the latent slots; at inference the
slots get what the model feeds back itself (``FutureL1Model.latent_feed``: the last hidden state, through the
projection head when there is one). Over the responses whose spans line up with the reference frames (as many spans
as frames, each of the frame's K slots), slot j of span k is compared with the gold embedding e_{k,j}, in the space
that is fed:

    norm ratio = mean ‖f‖ / mean ‖e‖
    MSE        = mean over slots and elements of (f − e)²
    slot-mean baseline = mean of (e − ē_j)², ē_j = the mean gold embedding of slot position j over the same spans

Fed-back latents carry information about their frame only where their MSE is below the slot-mean baseline, which
knows the average frame and nothing about this one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch


def fed_back_fidelity(latents: Sequence[torch.Tensor], span_counts: Sequence[Sequence[int]],
                      frame_targets: Sequence[Sequence[torch.Tensor]]) -> dict[str, Any]:
    """Compare fed latents ``latents[i]`` [n_i, H] (spans ``span_counts[i]``) with the gold targets
    ``frame_targets[i]`` (one [K_k, H] per reference frame); see the module docstring. Returns ``{"responses",
    "spans", "slots", "norm_fed", "norm_gold", "norm_ratio", "mse", "slot_mean_mse", "mse_by_position"}``."""
    fed, gold, position = [], [], []
    used = 0
    for vecs, counts, targets in zip(latents, span_counts, frame_targets):
        if not targets or len(counts) != len(targets) or any(c != t.shape[0] for c, t in zip(counts, targets)):
            continue
        used += 1
        fed.append(vecs.float())
        gold.append(torch.cat([t.float() for t in targets]))
        position.append(torch.cat([torch.arange(t.shape[0]) for t in targets]))
    if not fed:
        return {"responses": 0, "spans": 0, "slots": 0}
    f, e, pos = torch.cat(fed), torch.cat(gold), torch.cat(position)
    means = torch.stack([e[pos == j].mean(dim=0) for j in range(int(pos.max()) + 1)])
    mse = ((f - e) ** 2).mean(dim=-1)
    base = ((e - means[pos]) ** 2).mean(dim=-1)
    return {
        "responses": used,
        "spans": int(sum(len(c) for c, t in zip(span_counts, frame_targets) if t and len(c) == len(t))),
        "slots": int(f.shape[0]),
        "norm_fed": float(f.norm(dim=-1).mean()),
        "norm_gold": float(e.norm(dim=-1).mean()),
        "norm_ratio": float(f.norm(dim=-1).mean() / e.norm(dim=-1).mean()),
        "mse": float(mse.mean()),
        "slot_mean_mse": float(base.mean()),
        "mse_by_position": [float(mse[pos == j].mean()) for j in range(int(pos.max()) + 1)],
    }
