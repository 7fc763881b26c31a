"""The SFT loop (docs/PAPER.md#latent-sft, stage 2) on ``accelerate``: latent SFT and the text-only SFT baseline.

One loop for one CPU process, ``accelerate launch`` (DDP / FSDP / DeepSpeed ZeRO-2, ``configs/accelerate/``) and
``notebook_launcher``:

* optimizer step s consumes a global batch of ``G = per_device_batch_size × gradient_accumulation_steps × P`` examples
  (P processes) from a seeded per-epoch permutation ``perm_e = default_rng([seed, e]).permutation(n)``; process p takes
  micro-batch m of step s from ``perm_e[pos + (m·P + p)·b : … + b]`` with ``pos = (s mod steps_per_epoch)·G``;
  ``steps_per_epoch = ⌊n / G⌋`` (the remainder of an epoch is dropped, so every process always has data);
* loss per micro-batch = CE + λ·MSE (:class:`~fl1_core.model.FutureL1Model`), plus ``init_kl`` · KL(π_init ‖ π_θ) in
  latent mode when set (:func:`fl1_core.losses.init_kl_loss`, :class:`InitReference`); the gradient of a step is the mean over
  its micro-batches (``accelerator.backward`` divides by the accumulation count) and over processes (DDP);
* AdamW (decoupled weight decay on ≥2-D weights only), gradient clipping to ``max_grad_norm``, cosine schedule with
  linear warmup over ``⌈warmup_ratio · total_steps⌉`` steps (``get_cosine_schedule_with_warmup``), stepped once per
  optimizer step; vision tower + merger frozen by default;
* metrics every optimizer step to ``<out>/metrics.jsonl``; checkpoints every ``save_every`` steps and at the end in
  ``<out>/checkpoints/step-XXXXXXXX`` (:func:`fl1_core.checkpoints.save_checkpoint`: atomic, file hashes recorded)
  with model, optimizer, scheduler, RNG states and the data-order state; the final model in ``<out>/final``
  (:func:`fl1_core.checkpoints.save_model`).

Resume: running the same call again continues from the newest intact checkpoint
(:func:`fl1_core.checkpoints.resume_from`; a damaged one is set aside with a warning); ``metrics.jsonl`` is cut back to
that step, so on CPU a killed-and-resumed run ends with bit-identical weights and the same metrics rows as an
uninterrupted one (apart from the wall-clock fields in :data:`TIMING_KEYS`). A resume whose settings would change the
result (:func:`result_affecting`, the mode, the data or the initial model) is refused with
:class:`fl1_core.checkpoints.ResumeMismatchError`.
"""

from __future__ import annotations

import logging
import math
import time
from contextlib import nullcontext
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from ..checkpoints import (
    OneProcess, latest_checkpoint, model_fingerprint, resume_from, run_identity, save_checkpoint, save_model,
    training_state_bytes,
)
from ..data.collator import SFTCollator, SFTExample
from ..distributed import ProcessGroup, accelerator_settings
from ..data.formats import load_sft_records
from ..data.records import Reject, SFTRecord, write_rejects
from ..losses import init_kl_loss
from ..model import FutureL1Model, load_future_l1
from ..reference import InitReference
from ..adapters import LoraSettings, apply_lora, has_lora, merge_lora
from ..metrics import Trackers
from ..placement import autocast, enable_activation_checkpointing, scalar, to_device, upcast_trainable
from ..runs import atomic_directory, atomic_write_json, append_jsonl, read_jsonl, write_jsonl

from .config import Mode, NonFiniteLossError, SFTConfig, SFTResult, StepInfo, data_structure, result_affecting
from .data import ExampleSource, _batch_stream, validate_examples

logger = logging.getLogger(__name__)



# ---------------------------------------------------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------------------------------------------------


def _mixed_precision(value: str) -> str:
    if value != "auto":
        return value
    return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"


def _param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """AdamW groups: decay on ≥2-D weights (matrices, embeddings), none on biases and norm weights."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def save_final_model(accelerator, wrapped, processor, final_dir: Path, merge: bool = False) -> None:
    """The trained model into ``final_dir`` (:func:`fl1_core.checkpoints.save_model`): under FSDP / ZeRO from the
    gathered fp32 state, in the dtype the config states; with LoRA an adapter folder, or merged on request."""
    from accelerate.utils import DistributedType

    unwrapped = accelerator.unwrap_model(wrapped)
    sharded = accelerator.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED)
    full = accelerator.get_state_dict(wrapped) if sharded and not has_lora(unwrapped) else None
    if accelerator.is_main_process:
        with atomic_directory(final_dir) as tmp:
            save_model(unwrapped, processor, tmp, state_dict=full, merge=merge)
    accelerator.wait_for_everyone()


def train_sft(
    model: FutureL1Model,
    processor,
    records: Sequence[SFTRecord] | Sequence[SFTExample],
    config: SFTConfig,
    out_dir: str | Path,
    mode: Mode = "latent",
    *,
    rejects: Sequence[Reject] = (),
    callbacks: Sequence[Callable[[StepInfo], None]] = (),
    accelerator=None,
) -> SFTResult:
    """Train ``model`` in place on ``records`` (SFT records or ready examples); resume if ``out_dir`` has a checkpoint.

    ``mode="latent"``: one latent span per future frame, loss = CE + λ·MSE; ``mode="text"``: the text-only baseline
    (thoughts kept, future frames removed, CE only); ``mode="pause"``: the pause-token control (the latent spans'
    structure and slot count, every slot fed the learned ``<|latent|>`` embedding, CE only; the saved model decodes
    the same way). ``rejects`` (e.g. from the loader) are written to
    ``<out>/rejects.jsonl`` together with the examples that fail validation. Returns an :class:`SFTResult`; the trained
    model is also saved to ``<out>/final`` (``load_future_l1`` + ``generate_with_latents`` ready).
    """
    from accelerate import Accelerator
    from accelerate.utils import DistributedType, set_seed
    from tqdm.auto import tqdm
    from transformers import get_constant_schedule_with_warmup, get_cosine_schedule_with_warmup

    structure = data_structure(mode)  # refuses an unknown mode
    if model.pauses != (mode == "pause"):
        if model.pauses:
            raise ValueError("a pause-token checkpoint (latent_input='pause') trains only in SFT mode 'pause'")
        model.latent_config = model.latent_config.replace(latent_input="pause")
        model._sync_config()
    t_start = time.perf_counter()
    out_dir = Path(out_dir)
    cfg = config
    if accelerator is None:
        accelerator = Accelerator(
            **accelerator_settings(_mixed_precision(cfg.mixed_precision), cfg.gradient_accumulation_steps))
    main = accelerator.is_main_process
    n_proc = accelerator.num_processes
    rank = accelerator.process_index
    if main:
        out_dir.mkdir(parents=True, exist_ok=True)

    # ---- model set-up (before anything is loaded or prepared)
    if model.latent_config.overridden(cfg.latent) != model.latent_config:
        model.latent_config = model.latent_config.overridden(cfg.latent)
        model._sync_config()
    fingerprint = model_fingerprint(model)
    model.freeze_vision(cfg.freeze_vision)
    if cfg.lora is not None:
        apply_lora(model, LoraSettings.from_dict(cfg.lora))  # adapters already there are merged first
    elif has_lora(model):
        merge_lora(model)  # full fine-tuning of an adapter checkpoint: fold its adapters in first
    sampling_p, init_kl_beta = cfg.latent_terms_in(mode)
    init_reference = None
    if init_kl_beta > 0:
        init_reference = InitReference(model, lora=cfg.lora is not None)
    elif cfg.init_kl > 0:
        logger.info("init_kl applies to latent SFT only: the %s control is trained without the KL to the initial "
                    "model", mode)
    upcast_trainable(model)  # fp32 master weights: a bf16-loaded checkpoint would lose updates below bf16 resolution
    if cfg.gradient_checkpointing:
        enable_activation_checkpointing(model.base)

    # ---- data
    collator = SFTCollator(
        processor, model.latent_config, system_prompt=cfg.system_prompt, mode=structure, max_length=cfg.max_length,
        on_error=cfg.on_error, letter_weight=cfg.letter_weight,
    )
    source = ExampleSource(records, structure, cache=cfg.cache_examples)
    all_rejects = list(rejects)
    if cfg.validate_examples:
        good, bad = validate_examples(source, collator, rank, n_proc)
        if n_proc > 1:  # every process needs the same good set: gather the shards
            from accelerate.utils import gather_object

            good = sorted(gather_object(good))
            bad = sorted(gather_object(bad), key=lambda r: r.position if r.position is not None else -1)
        if bad and cfg.on_error == "raise":
            raise ValueError(f"{len(bad)} bad training example(s); first: {bad[0]}")
        all_rejects += bad
        source = source.subset(good) if bad else source
    if main and (all_rejects or (out_dir / "rejects.jsonl").exists()):
        write_rejects(all_rejects, out_dir / "rejects.jsonl")
    if all_rejects:
        logger.warning("%d record(s) rejected; see %s", len(all_rejects), out_dir / "rejects.jsonl")
    n = len(source)
    b = cfg.per_device_batch_size
    global_batch = b * cfg.gradient_accumulation_steps * n_proc
    steps_per_epoch = n // global_batch
    if steps_per_epoch < 1:
        raise ValueError(
            f"{n} usable examples are fewer than one global batch ({b} × {cfg.gradient_accumulation_steps} accumulation"
            f" × {n_proc} processes = {global_batch}); lower the batch size or add data"
        )
    total_steps = cfg.max_steps if cfg.max_steps is not None else math.ceil(cfg.num_epochs * steps_per_epoch)
    identity = run_identity(
        "sft", {**result_affecting(cfg), "mode": mode, "latent_config": model.latent_config.to_dict(),
                "total_steps": total_steps},
        model_fingerprint=fingerprint, data_fingerprint=source.fingerprint(), world_size=n_proc)
    processes = ProcessGroup(accelerator) if n_proc > 1 else OneProcess()

    # ---- optimizer, schedule, accelerate
    set_seed(cfg.seed)
    optimizer = torch.optim.AdamW(
        _param_groups(model, cfg.weight_decay), lr=cfg.learning_rate, betas=(cfg.adam_beta1, cfg.adam_beta2),
        eps=cfg.adam_epsilon,
    )
    warmup = math.ceil(cfg.warmup_ratio * total_steps)
    if cfg.lr_scheduler == "cosine":
        scheduler = get_cosine_schedule_with_warmup(optimizer, warmup, total_steps)
    else:
        scheduler = get_constant_schedule_with_warmup(optimizer, warmup)
    if accelerator.distributed_type == DistributedType.DEEPSPEED:  # no dataloader is prepared: tell DeepSpeed the batch
        ds_config = accelerator.state.deepspeed_plugin.deepspeed_config
        if ds_config.get("train_micro_batch_size_per_gpu") in (None, "auto"):
            ds_config["train_micro_batch_size_per_gpu"] = b
    state_bytes = training_state_bytes(model)  # quoted if the disk fills up while saving
    wrapped, optimizer = accelerator.prepare(model, optimizer)
    accelerator.register_for_checkpointing(scheduler)
    # frozen bf16 weights beside fp32 trainable ones need autocast when accelerate adds none (CPU, "no")
    mixed_forward = autocast(model, accelerator.device) if accelerator.mixed_precision == "no" else nullcontext()
    trainable = [p for p in wrapped.parameters() if p.requires_grad]

    # ---- resume
    start_step, resumed_from = 0, None
    ckpt = resume_from(out_dir, identity, processes)
    metrics_path = out_dir / "metrics.jsonl"
    if ckpt is not None:
        accelerator.load_state(str(ckpt.path))
        start_step = resumed_from = ckpt.step
        logger.info("resuming from %s (step %d of %d)", ckpt.path, start_step, total_steps)
    if main:
        rows = [r for r in read_jsonl(metrics_path) if int(r.get("step", 0)) <= start_step]
        if metrics_path.exists():
            write_jsonl(metrics_path, rows)
        atomic_write_json(out_dir / "run.json", {**identity, "num_examples": n, "steps_per_epoch": steps_per_epoch,
                                                 "global_batch": global_batch})
    accelerator.wait_for_everyone()

    def save(step: int, epoch: int) -> Path:
        """``accelerator.save_state`` (model, optimizer, scheduler, RNG of every process) + the config."""
        def write(folder: Path) -> None:
            accelerator.save_state(str(folder))
            accelerator.wait_for_everyone()
            if main:
                cfg.save(folder / "sft_config.json")

        progress = {"epoch": epoch, "position_in_epoch": (step % steps_per_epoch) * global_batch,
                    "data_order": "numpy default_rng([seed, epoch]).permutation(num_examples)"}
        return save_checkpoint(out_dir, step, identity=identity, progress=progress, write=write,
                               keep=cfg.keep_checkpoints, processes=processes, size_estimate=state_bytes)

    # ---- train
    wrapped.train()
    if cfg.freeze_vision:
        accelerator.unwrap_model(wrapped).base.model.visual.eval()
    trackers = Trackers(cfg.report_to, f"sft-{mode}", out_dir / "trackers", cfg.to_dict(), main)
    bar = tqdm(total=total_steps, initial=start_step, desc=f"SFT ({mode})", disable=not (main and cfg.progress_bar),
               dynamic_ncols=True)
    samples = start_step * global_batch
    stream = _batch_stream(source, collator, cfg, start_step, total_steps, steps_per_epoch, n_proc, rank)
    try:
        for step in range(start_step, total_steps):
            epoch = step // steps_per_epoch
            lr = scheduler.get_last_lr()[0]
            t0 = time.perf_counter()
            sums = torch.zeros(6, dtype=torch.float64)  # loss, ce, latent, latent pairs, tokens, init KL
            grad_norm = None
            for m in range(cfg.gradient_accumulation_steps):
                batch = next(stream)
                batch.pop("ids", None)
                batch = to_device(batch, accelerator.device)
                if sampling_p > 0:
                    seed = ((cfg.seed * 1_000_003 + step) * 64 + m) * 4096 + rank
                    batch.update(own_latent_p=cfg.own_latent_p_at(step, total_steps),
                                 own_latent_generator=torch.Generator().manual_seed(seed),
                                 own_latent_loss=cfg.scheduled_sampling_loss)
                with accelerator.accumulate(wrapped), mixed_forward:
                    out = wrapped(**batch)
                    loss = out.loss
                    init_kl = torch.zeros(())
                    if init_reference is not None:
                        init_kl = init_kl_loss(out.logits, init_reference.logits(batch, out.latent_inputs),
                                               batch["labels"])
                        loss = loss + cfg.init_kl * init_kl
                    # checked on every process BEFORE backward: under DeepSpeed, backward at the accumulation
                    # boundary also steps the engine, so a check after it would come too late
                    bad = not bool(torch.isfinite(loss.detach()))
                    flag = accelerator.reduce(torch.tensor([float(bad)], device=accelerator.device), "sum")
                    if float(flag.sum()) > 0:
                        raise NonFiniteLossError(
                            f"non-finite loss (NaN/inf) at optimizer step {step + 1} (epoch {epoch}, micro-batch "
                            f"{m}); training stopped before the optimizer step. Last good checkpoint: "
                            f"{latest_checkpoint(out_dir) or 'none'}. Lower learning_rate or check the data."
                        )
                    accelerator.backward(loss)
                    sums += torch.tensor(
                        [float(loss.detach()), float(out.ce_loss.detach()), float(out.latent_loss.detach()),
                         float(out.num_latent_pairs), float(batch["attention_mask"].sum()), float(init_kl.detach())],
                        dtype=torch.float64,
                    )
                    if accelerator.sync_gradients:
                        if cfg.max_grad_norm and cfg.max_grad_norm > 0:
                            gn = accelerator.clip_grad_norm_(trainable, cfg.max_grad_norm)
                            if gn is not None:
                                grad_norm = scalar(gn)
                                if not math.isfinite(grad_norm):
                                    raise NonFiniteLossError(
                                        f"non-finite gradient norm at optimizer step {step + 1}; training stopped "
                                        f"before the optimizer step. Last good checkpoint: "
                                        f"{latest_checkpoint(out_dir) or 'none'}"
                                    )
                    optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
            scheduler.step()
            # mean over micro-batches and processes; latent pairs and tokens summed
            stats = accelerator.reduce(sums.to(accelerator.device), "sum").cpu()
            n_micro = cfg.gradient_accumulation_steps * n_proc
            samples += global_batch
            dt = time.perf_counter() - t0
            row = {
                "step": step + 1,
                "data/epoch": round((step + 1) / steps_per_epoch, 4),
                "loss/total": float(stats[0] / n_micro),
                "loss/ce": float(stats[1] / n_micro),
                "loss/latent": float(stats[2] / n_micro),
                **({"loss/init_kl": float(stats[5] / n_micro)} if init_reference is not None else {}),
                "optim/lr": lr,
                "optim/grad_norm": grad_norm,
                "data/latent_pairs": int(stats[3]),
                "data/tokens": int(stats[4]),
                "data/samples": samples,
                "time/tokens_per_s": float(stats[4]) / dt,
                "time/step_s": dt,
            }
            if main:
                append_jsonl(metrics_path, row)
            trackers.log(row, step + 1)
            bar.update(1)
            bar.set_postfix(loss=f"{row['loss/total']:.3f}", lr=f"{lr:.2e}", tok_s=f"{row['time/tokens_per_s']:.0f}")
            if cfg.log_every and (step + 1) % cfg.log_every == 0:
                logger.info("step %d/%d loss %.4f ce %.4f latent %.4f lr %.2e gnorm %s", step + 1, total_steps,
                            row["loss/total"], row["loss/ce"], row["loss/latent"], lr, grad_norm)
            saved_ckpt = None
            if (cfg.save_every and (step + 1) % cfg.save_every == 0) or step + 1 == total_steps:
                saved_ckpt = save(step + 1, epoch)
            for cb in callbacks:
                cb(StepInfo(step + 1, total_steps, row, saved_ckpt))
    finally:
        bar.close()
        trackers.close()
        stream.close()

    final_dir = out_dir / "final"
    unwrapped = accelerator.unwrap_model(wrapped)
    unwrapped.eval()
    save_final_model(accelerator, wrapped, processor, final_dir, merge=cfg.lora_merge)
    metrics = read_jsonl(metrics_path) if main else []
    wall = time.perf_counter() - t_start
    if main:
        atomic_write_json(out_dir / "result.json", {
            "final_dir": str(final_dir), "total_steps": total_steps, "resumed_from_step": resumed_from,
            "num_examples": n, "num_rejects": len(all_rejects), "wall_time_s": wall,
            "final_loss": metrics[-1]["loss/total"] if metrics else None,
        })
    accelerator.wait_for_everyone()
    return SFTResult(out_dir, final_dir, total_steps, resumed_from, n, len(all_rejects), wall, metrics, unwrapped)



# ---------------------------------------------------------------------------------------------------------------------
# Convenience entry points and the format report
# ---------------------------------------------------------------------------------------------------------------------


def run_sft(
    init_checkpoint_dir: str | Path,
    data_path: str | Path,
    out_dir: str | Path,
    config: SFTConfig,
    mode: Mode = "latent",
    *,
    exclude_ids: Sequence[str] = (),
    callbacks: Sequence[Callable[[StepInfo], None]] = (),
) -> SFTResult:
    """Load the base checkpoint and the SFT records (bad records → ``<out>/rejects.jsonl`` with ``on_error="skip"``),
    drop ``exclude_ids`` (e.g. held-out prompts) and run :func:`train_sft`. Re-running the same call resumes.
    A world base built for another tokenizer or world version is refused (:func:`check_base_compatible`)."""
    from ..world_base import check_base_compatible

    model, processor = load_future_l1(init_checkpoint_dir)
    check_base_compatible(model, processor, Path(data_path).parent)
    # with validate_examples every example is decoded later, 1/P per process: skip opening every video here too
    loaded = load_sft_records(data_path, on_error=config.on_error, check_videos=not config.validate_examples)
    excluded = set(exclude_ids)
    records = [r for r in loaded.records if r.id not in excluded]
    return train_sft(model, processor, records, config, out_dir, mode, rejects=loaded.rejects, callbacks=callbacks)


