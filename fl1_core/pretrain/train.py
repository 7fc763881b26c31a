"""World pretraining: the loop that turns a random tiny Qwen3-VL into the world's base model.

The stand-in for Qwen3-VL-8B-Instruct's pretraining trains *everything* (vision tower, merger, LM) on the
procedural stream of :mod:`fl1_core.pretrain.tasks`, with the auxiliary cell head of
:mod:`fl1_core.pretrain.perception`:

    L = CE(answer tokens) + cell_weight · L_cell(merged vision tokens)

One step = one task drawn by the recipe's shares, ``batch_size`` examples of it. Data is a pure function of
(seed, step), the model is built from the seed, and there is no dropout, so a CPU run is deterministic and a resumed
run continues bit-identically from its last intact checkpoint (``<out>/checkpoints/step-XXXXXXXX``: weights, cell head,
optimizer; the newest ``keep_checkpoints`` are kept, :mod:`fl1_core.checkpoints`).

Writes ``<out>/log.jsonl`` (one row per step: task, loss, ce, cell, lr, seconds), ``<out>/eval.jsonl`` (held-out
measures every ``eval_every`` steps, with the CPU minutes spent training so far) and ``<out>/final`` (a Future-L1
checkpoint: ``load_future_l1`` and ``generate_with_latents`` work on it).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from ..checkpoints import model_fingerprint, resume_from, run_identity, save_checkpoint, save_model
from ..data.collator import SFTCollator
from ..runs import append_jsonl, atomic_directory, atomic_write_json, read_jsonl, write_jsonl
from ..world_base import META_KEY, base_metadata
from .perception import CellHead, VisionTap, cell_channels, cell_loss
from .recipe import PretrainRecipe
from .tasks import LATENT_TASKS, TASKS, TaskSampler

logger = logging.getLogger(__name__)

SYSTEM_OF_TASK = {"scene": "none", "motion": "none", "change": "none", "lookup": "none",
                  "qa": "interleaved", "video": "interleaved", "layout": "none", "latent_layout": "none",
                  "chain": "interleaved", "follow_reading": "interleaved"}


def build_base(recipe: PretrainRecipe):
    """The tiny Future-L1 model of the recipe's sizes (random init, or the checkpoint ``recipe.init_from``, a relative
    path read against the checkout), its processor and a fresh cell head."""
    from ..tiny import build_tiny_future_l1

    if recipe.init_from:
        from ..model import load_future_l1
        from ..runs import repo_path

        model, processor = load_future_l1(repo_path(recipe.init_from))
        if model.config.get_text_config().hidden_size != recipe.hidden_size:
            raise ValueError(f"init_from {recipe.init_from} has hidden size "
                             f"{model.config.get_text_config().hidden_size}, the recipe says {recipe.hidden_size}")
    else:
        model, processor = build_tiny_future_l1(seed=recipe.seed, sizes=recipe.sizes())
    if recipe.projection_head and model.latent_head is None:
        torch.manual_seed(recipe.seed + 3)
        model.add_projection_head(recipe.head_dim)
    if recipe.freeze_vision:
        model.freeze_vision(True)
    torch.manual_seed(recipe.seed + 2)
    head = CellHead(recipe.hidden_size, len(cell_channels()))
    return model, processor, head


def _optimizer(params: list[torch.nn.Parameter], recipe: PretrainRecipe) -> torch.optim.AdamW:
    decay = [p for p in params if p.ndim >= 2]
    rest = [p for p in params if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": recipe.weight_decay}, {"params": rest, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=recipe.learning_rate, betas=(recipe.adam_beta1, recipe.adam_beta2),
                             eps=recipe.adam_epsilon)


def _save_state(out: Path, step: int, model, head, opt, recipe: PretrainRecipe, identity: dict,
                cpu_s: float) -> None:
    save_checkpoint(out, step, identity=identity, progress={"cpu_s": cpu_s}, keep=recipe.keep_checkpoints,
                    tensors={"model.pt": model.state_dict(), "head.pt": head.state_dict(),
                             "optimizer.pt": opt.state_dict()})


def _load_state(out: Path, model, head, opt, identity: dict) -> tuple[int, float]:
    """(step, CPU seconds) of the newest intact checkpoint, loaded into model, head and optimizer; (0, 0) if none."""
    ckpt = resume_from(out, identity)
    if ckpt is None:
        return 0, 0.0
    model.load_state_dict(ckpt.load("model.pt"))
    head.load_state_dict(ckpt.load("head.pt"))
    opt.load_state_dict(ckpt.load("optimizer.pt", weights_only=False))  # its lr may be a numpy float
    logger.info("resuming %s at step %d", out, ckpt.step)
    return ckpt.step, float(ckpt.progress["cpu_s"])


def _truncate_logs(out: Path, step: int) -> None:
    """Drop log rows past the resumed step (a killed run may have logged steps it never checkpointed)."""
    for name in ("log.jsonl", "eval.jsonl"):
        rows = read_jsonl(out / name)
        kept = [r for r in rows if r["step"] <= step]
        if len(kept) != len(rows):
            write_jsonl(out / name, kept)


def collator_key(task: str) -> tuple[str, str]:
    """(system prompt, collator mode) of a task: latent mode for the tasks with frames at latent slots."""
    return SYSTEM_OF_TASK[task], "latent" if task in LATENT_TASKS else "text"


def training_step(model, head, tap: VisionTap, collators: dict[tuple[str, str], SFTCollator], items,
                  recipe: PretrainRecipe, step: int = 0) -> dict[str, torch.Tensor]:
    """Forward one homogeneous batch; returns ``{"loss", "ce", "cell", "latent"}`` (``cell`` is 0 without images,
    ``latent`` the alignment loss, 0 without latent slots). Latent tasks use scheduled sampling with
    ``recipe.own_latent_p_at(step)`` (span draws seeded by (seed, step))."""
    task = items[0].task
    batch = collators[collator_key(task)]([it.example for it in items])
    batch.pop("ids")
    tap.pop()
    if task in LATENT_TASKS and recipe.scheduled_sampling_p > 0:
        gen = torch.Generator().manual_seed(recipe.seed * 1_000_003 + step)
        batch.update(own_latent_p=recipe.own_latent_p_at(step), own_latent_generator=gen,
                     own_latent_loss=recipe.scheduled_sampling_loss)
    out = model(**batch)
    tokens = tap.pop()
    cells = [it.cells for it in items]
    if tokens is not None and all(c is not None for c in cells):
        target = torch.from_numpy(np.concatenate(cells))
        if target.shape[0] != tokens.shape[0]:
            raise RuntimeError(f"{target.shape[0]} cell targets for {tokens.shape[0]} merged vision tokens ({task})")
        lc = cell_loss(head(tokens), target)
    else:
        lc = out.loss.new_zeros(())
    return {"loss": out.loss + recipe.cell_weight * lc, "ce": out.ce_loss, "cell": lc, "latent": out.latent_loss}


def train_phase(
    recipe: PretrainRecipe,
    out_dir: str | Path,
    *,
    world_dir: str | Path | None = None,
    eval_mcq: int | None = 200,
    max_steps: int | None = None,
    progress: bool = True,
) -> Path:
    """Train (or resume) the world base of ``recipe`` into ``out_dir``; returns ``<out>/final``.

    ``world_dir``: a generated world whose ``heldout_mcq.jsonl`` is scored at each evaluation (first ``eval_mcq``
    rows; None skips the MCQ measure). ``max_steps`` stops early (for tests and the reproducibility check) without
    writing ``final``.
    """
    from .evaluate import heldout_mcq_by_group, lookup_accuracy, motion_accuracy, read_heldout, scene_accuracy

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "recipe.json", recipe.to_dict())
    model, processor, head = build_base(recipe)
    params = [p for p in model.parameters() if p.requires_grad] + list(head.parameters())
    opt = _optimizer(params, recipe)
    identity = run_identity("pretrain", recipe.result_affecting(), model_fingerprint=model_fingerprint(model))
    start, cpu_s = _load_state(out, model, head, opt, identity)
    _truncate_logs(out, start)
    sampler = TaskSampler(recipe.seed, qa_variants=recipe.qa_variants, mcq_fraction=recipe.mcq_fraction,
                          lookup_ways=recipe.lookup_ways, frame_questions=recipe.frame_questions,
                          frame_share=recipe.frame_share, reading_swap_p=recipe.reading_swap_p)
    collators = {(s, m): SFTCollator(processor, model.latent_config, system_prompt=s, mode=m, on_error="raise",
                                     allow_text_only=True)
                 for s, m in {collator_key(t) for t in TASKS}}
    tap = VisionTap(model.base.model.visual)
    held = read_heldout(world_dir) if world_dir is not None else []
    end = recipe.steps if max_steps is None else min(recipe.steps, max_steps)

    def evaluate(step: int) -> None:
        model.eval()
        row: dict[str, Any] = {"step": step, "cpu_minutes": cpu_s / 60.0}
        row["scene"] = scene_accuracy(model, processor)
        row["motion"] = motion_accuracy(model, processor)
        if held:
            row["lookup"] = lookup_accuracy(model, processor, held)
            if eval_mcq:
                row["mcq"] = heldout_mcq_by_group(model, processor, world_dir, limit=eval_mcq)
        tap.pop()
        model.train()
        append_jsonl(out / "eval.jsonl", row)
        logger.info("eval @%d: %s", step, json.dumps({k: v for k, v in row.items() if k != "scene"})[:300])

    model.train()
    bar = tqdm(total=end, initial=start, desc="world pretraining", disable=not progress)
    try:
        for step in range(start, end):
            t0, c0 = time.perf_counter(), time.process_time()
            task = recipe.task_of_step(step)
            items = [sampler.item(task, step * recipe.batch_size + j) for j in range(recipe.batch_size)]
            lr = recipe.lr_at(step)
            for g in opt.param_groups:
                g["lr"] = lr
            losses = training_step(model, head, tap, collators, items, recipe, step)
            if not torch.isfinite(losses["loss"]):
                raise FloatingPointError(f"non-finite loss at step {step} ({task}); last checkpoint is kept")
            opt.zero_grad(set_to_none=True)
            losses["loss"].backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(params, recipe.max_grad_norm)
            opt.step()
            cpu_s += time.process_time() - c0
            append_jsonl(out / "log.jsonl", {"step": step + 1, "task": task, "lr": lr, "grad_norm": float(grad_norm),
                                             "wall_s": time.perf_counter() - t0, "cpu_s": cpu_s,
                                             "threads": torch.get_num_threads(),
                                             **{k: float(v.detach()) for k, v in losses.items()}})
            bar.update(1)
            done = step + 1
            if done % recipe.save_every == 0 or done == end:
                _save_state(out, done, model, head, opt, recipe, identity, cpu_s)
            if recipe.eval_every and (done % recipe.eval_every == 0 or done == recipe.steps):
                evaluate(done)
    finally:
        bar.close()
        tap.remove()
    if end < recipe.steps:
        return out / "final"
    setattr(model.base.config, META_KEY, base_metadata(processor.tokenizer))
    final = out / "final"
    with atomic_directory(final) as tmp:
        save_model(model.eval(), processor, tmp)
    return final
