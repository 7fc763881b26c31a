"""How well does the base imagine a future frame? The alignment error of each latent slot, beside two baselines.

For ``n`` interleaved chains of clips no training stream uses (half of them frame-needing, as in the chain task), the
gold future-frame embeddings sit at the latent slots (teacher forcing) and the projected prediction of each slot,
``ŝ_{t+1} = project(h_t)``, is compared with its gold embedding ``e_{t+1}``, per slot position k of the 3 × 3 grid
(raster order; the bottom row holds the objects):

    model     = mean over slots at k and elements of (ŝ − e)²
    slot mean = mean of (e − ē_k)², ē_k = the mean gold embedding at k over the same spans (knows no frame)
    present   = mean of (a − e)², a = the same cell of the last question image (the frame does not change)
    own       = ``model`` when every slot is fed the model's own earlier predictions instead of the gold (the text
                between spans stays gold): what decoding feeds. Computed exactly by feeding the previous pass's
                predictions until every slot has seen only its own predictions (pass p fixes slot p of each row).

A slot carries what its frame adds only where ``model`` is below both baselines. Rows average three positions.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..data.collator import SFTCollator
from ..latent_anchor import question_anchors, slot_anchors, span_positions
from .evaluate import EVAL_SEED
from .tasks import TaskSampler

ROWS = ("top", "middle", "bottom")


@torch.no_grad()
def imagination_error(model, processor, n: int = 64, seed: int = EVAL_SEED, batch_size: int = 8) -> dict[str, Any]:
    """``{"n_chains", "n_slots", "model" | "own" | "slot_mean" | "present": {"by_position": [...], "by_row": {...},
    "all": float}}`` (module docstring). Needs a model with latent slots (not the pause control)."""
    if n < 1 or batch_size < 1:
        raise ValueError(f"imagination_error needs n >= 1 chains and batch_size >= 1, got n={n}, batch={batch_size}")
    if model.pauses:
        raise ValueError("imagination_error: the pause-token control feeds no latents to compare")
    sampler = TaskSampler(seed + 3, mcq_fraction=1.0, frame_questions=True, frame_share=0.5)
    collate = SFTCollator(processor, model.latent_config, system_prompt="interleaved", mode="latent",
                          allow_text_only=True, on_error="raise")
    was_training = model.training
    model.eval()
    pred_all, own_all, gold_all, present_all, k_all = [], [], [], [], []
    try:
        for start in range(0, n, batch_size):
            items = [sampler.item("chain", i).example for i in range(start, min(n, start + batch_size))]
            batch = collate(items)
            batch.pop("ids")
            batch.pop("labels", None)
            gold = torch.cat(model.latent_targets(batch.pop("pixel_values_latent"),
                                                  batch.pop("image_grid_thw_latent")))
            _, mask = model.embed_with_latents(batch["input_ids"], gold)
            hidden = model(**batch, latent_vectors=gold, hidden_only=True).hidden_states
            pred = model.predicted_latents(hidden, mask)
            own = pred
            for _ in range(int(mask.sum(dim=1).max())):  # slot p of a row is exact after p passes
                own_hidden = model(**batch, latent_vectors=own, hidden_only=True).hidden_states
                own = model.predicted_latents(own_hidden, mask)
            own_all.append(own.float())
            anchors = question_anchors(model, batch["input_ids"], batch["pixel_values"], batch["image_grid_thw"])
            pred_all.append(pred.float())
            gold_all.append(gold.float())
            present_all.append(slot_anchors(mask, anchors).float())
            k_all.append(span_positions(mask))
    finally:
        model.train(was_training)
    pred, own, gold, present, k = (torch.cat(x) for x in (pred_all, own_all, gold_all, present_all, k_all))
    positions = int(k.max()) + 1
    means = torch.stack([gold[k == j].mean(dim=0) for j in range(positions)])
    errors = {"model": ((pred - gold) ** 2).mean(-1), "slot_mean": ((means[k] - gold) ** 2).mean(-1),
              "present": ((present - gold) ** 2).mean(-1), "own": ((own - gold) ** 2).mean(-1)}
    out: dict[str, Any] = {"n_chains": n, "n_slots": int(k.numel())}
    for name, err in errors.items():
        by_position = [float(err[k == j].mean()) for j in range(positions)]
        side = int(round(positions ** 0.5))
        rows = ({row: float(np.mean(by_position[i * side:(i + 1) * side])) for i, row in enumerate(ROWS)}
                if side * side == positions and side == len(ROWS) else {})
        out[name] = {"by_position": by_position, "by_row": rows, "all": float(err.mean())}
    return out
