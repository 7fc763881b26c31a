"""The SFT loop (SPEC §3, stage 2) on ``accelerate``: latent SFT and the text-only SFT baseline.

One loop for one CPU process, ``accelerate launch`` (DDP / FSDP / DeepSpeed ZeRO-2, ``configs/accelerate/``) and
``notebook_launcher``:

* optimizer step s consumes a global batch of ``G = per_device_batch_size × gradient_accumulation_steps × P`` examples
  (P processes) from a seeded per-epoch permutation ``perm_e = default_rng([seed, e]).permutation(n)``; process p takes
  micro-batch m of step s from ``perm_e[pos + (m·P + p)·b : … + b]`` with ``pos = (s mod steps_per_epoch)·G``;
  ``steps_per_epoch = ⌊n / G⌋`` (the remainder of an epoch is dropped, so every process always has data);
* loss per micro-batch = CE + λ·MSE (:class:`~fl1_core.model.FutureL1Model`); the gradient of a step is the mean over
  its micro-batches (``accelerator.backward`` divides by the accumulation count) and over processes (DDP);
* AdamW (decoupled weight decay on ≥2-D weights only), gradient clipping to ``max_grad_norm``, cosine schedule with
  linear warmup over ``⌈warmup_ratio · total_steps⌉`` steps (``get_cosine_schedule_with_warmup``), stepped once per
  optimizer step; vision tower + merger frozen by default;
* metrics every optimizer step to ``<out>/metrics.jsonl``; checkpoints every ``save_every`` steps and at the end in
  ``<out>/checkpoints/step-XXXXXXXX`` written atomically (:func:`fl1_core.runs.atomic_directory`) with model,
  optimizer, scheduler, RNG states and the data-order state; the final model in ``<out>/final``
  (:func:`fl1_core.model.save_future_l1`).

Resume: running the same call again continues from the newest complete checkpoint; ``metrics.jsonl`` is cut back to
that step, so on CPU a killed-and-resumed run ends with bit-identical weights and the same metrics rows as an
uninterrupted one (apart from the wall-clock fields in :data:`TIMING_KEYS`). A resume whose settings would change
the result (:func:`result_affecting`) is refused with :class:`ResumeMismatchError`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import re
import shutil
import time
from contextlib import nullcontext
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from .config import ConfigBase, LatentConfig
from .data.collator import CollateError, PromptExample, SFTCollator, SFTExample, build_prompt_inputs
from .data.examples import sft_example, text_only_prompt
from .data.formats import Reject, SFTRecord, load_sft_records, write_rejects
from .data.frames import clear_reader_cache
from .model import FutureL1Model, load_future_l1, save_future_l1
from .adapters import LoraSettings, apply_lora, has_lora, merge_lora, save_trained
from .answers import is_correct, reference_letter
from .placement import autocast, scalar, upcast_trainable
from .runs import atomic_directory, atomic_write_json, append_jsonl, read_jsonl, write_jsonl

logger = logging.getLogger(__name__)

Mode = Literal["latent", "text"]

#: metrics fields that depend on wall-clock time (not reproducible between runs; everything else is)
TIMING_KEYS = ("tokens_per_s", "step_time_s")
#: SFTConfig fields that may change between a run and its resume (they do not change the result)
HARMLESS_KEYS = frozenset(
    {"save_every", "keep_checkpoints", "log_every", "progress_bar", "dataloader_workers", "gradient_checkpointing"}
)
CHECKPOINT_DIR = "checkpoints"
STATE_FILE = "trainer_state.json"
_CKPT_RE = re.compile(r"^step-(\d{8})$")


# ---------------------------------------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------------------------------------


@dataclass
class SFTConfig(ConfigBase):
    """Settings of one SFT run. Global batch = ``per_device_batch_size × gradient_accumulation_steps × processes``.

    - ``num_epochs`` passes over the data, or exactly ``max_steps`` optimizer steps if set (epochs repeat as needed);
    - ``lr(s) = learning_rate · s / w`` for ``s < w = ⌈warmup_ratio·S⌉``, then
      ``learning_rate · ½(1 + cos(π (s − w)/(S − w)))`` (``lr_scheduler="cosine"``) or constant;
    - ``mixed_precision``: ``"auto"`` = bf16 on a bf16-capable GPU, fp32 (``"no"``) on CPU;
    - ``latent_lambda``: λ of ``loss = CE + λ·MSE`` written into the model's LatentConfig (``None`` keeps the model's);
    - ``save_every``: checkpoint interval in optimizer steps (0 = only at the end); ``keep_checkpoints`` newest kept;
    - ``on_error="skip"``: bad records go to ``<out>/rejects.jsonl``; ``validate_examples`` decodes and checks every
      example once before training so a bad record never reaches a batch; ``cache_examples`` keeps decoded frames
      in memory (right for the world; turn off for 50K real records and use ``dataloader_workers``).
    """

    learning_rate: float = 1e-5
    lr_scheduler: Literal["cosine", "constant"] = "cosine"
    warmup_ratio: float = 0.1
    weight_decay: float = 0.1
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-8
    max_grad_norm: float = 1.0
    num_epochs: int = 1
    max_steps: int | None = None
    per_device_batch_size: int = 1
    gradient_accumulation_steps: int = 16
    mixed_precision: Literal["auto", "no", "bf16", "fp16"] = "auto"
    gradient_checkpointing: bool = False
    freeze_vision: bool = True
    latent_lambda: float | None = None  # None: the model's LatentConfig λ (default 0.2); a value overrides it
    system_prompt: str = "interleaved"
    max_length: int | None = None
    seed: int = 0
    save_every: int = 100
    keep_checkpoints: int = 2
    log_every: int = 10
    progress_bar: bool = True
    on_error: Literal["raise", "skip"] = "skip"
    validate_examples: bool = True
    cache_examples: bool = True
    dataloader_workers: int = 0
    lora: dict | None = None  # LoRA settings (fl1_core.adapters.LoraSettings fields, {} = defaults); None → full
    lora_merge: bool = False  # with LoRA: save final/ merged into a full checkpoint instead of an adapter folder

    def __post_init__(self) -> None:
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ValueError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if self.per_device_batch_size < 1 or self.gradient_accumulation_steps < 1:
            raise ValueError("per_device_batch_size and gradient_accumulation_steps must be >= 1")
        if self.num_epochs < 1 and self.max_steps is None:
            raise ValueError(f"num_epochs must be >= 1, got {self.num_epochs}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1 or None, got {self.max_steps}")
        if self.lr_scheduler not in ("cosine", "constant"):
            raise ValueError(f"lr_scheduler must be 'cosine' or 'constant', got {self.lr_scheduler!r}")
        if self.mixed_precision not in ("auto", "no", "bf16", "fp16"):
            raise ValueError(f"mixed_precision must be auto/no/bf16/fp16, got {self.mixed_precision!r}")
        if self.on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {self.on_error!r}")
        if self.save_every < 0 or self.keep_checkpoints < 1:
            raise ValueError("save_every must be >= 0 and keep_checkpoints >= 1")

    @classmethod
    def gpu_release(cls, **overrides: Any) -> "SFTConfig":
        """The release's hyper-parameters (SPEC §3): AdamW lr 1e-5, cosine, warmup 0.1, wd 0.1, 1 epoch, bf16,
        gradient checkpointing, λ = 0.2, per-device batch 1 × grad-accum 16 × 8 GPUs = global batch 128 (launch with
        ``accelerate launch --config_file configs/accelerate/zero2.yaml``)."""
        base = dict(
            learning_rate=1e-5, lr_scheduler="cosine", warmup_ratio=0.1, weight_decay=0.1, num_epochs=1,
            per_device_batch_size=1, gradient_accumulation_steps=16, mixed_precision="bf16",
            gradient_checkpointing=True, latent_lambda=0.2, max_grad_norm=1.0, save_every=200,
            cache_examples=False, dataloader_workers=4,
        )
        base.update(overrides)
        return cls(**base)

    @classmethod
    def cpu_world(cls, **overrides: Any) -> "SFTConfig":
        """The world preset: the tiny model learns the format and the easy questions in ~1–2 min on 2 CPU cores
        (480 records: 60 steps / epoch of batch 8; 3 epochs; lr 2e-3 with 5 % warmup, fp32)."""
        base = dict(
            learning_rate=2e-3, lr_scheduler="cosine", warmup_ratio=0.05, weight_decay=0.01, num_epochs=3,
            per_device_batch_size=8, gradient_accumulation_steps=1, mixed_precision="no",
            gradient_checkpointing=False, latent_lambda=0.2, max_grad_norm=1.0, save_every=60, log_every=20,
        )
        base.update(overrides)
        return cls(**base)


def result_affecting(config: SFTConfig) -> dict[str, Any]:
    """The settings whose change between a run and its resume would change the result (all but HARMLESS_KEYS)."""
    return {k: v for k, v in config.to_dict().items() if k not in HARMLESS_KEYS}


# ---------------------------------------------------------------------------------------------------------------------
# Errors and results
# ---------------------------------------------------------------------------------------------------------------------


class NonFiniteLossError(FloatingPointError):
    """The loss (or gradient norm) became NaN/inf; the run stopped before the optimizer step."""


class ResumeMismatchError(ValueError):
    """A resume was asked with settings that differ from the checkpoint's in a way that would change the result."""


@dataclass
class StepInfo:
    """What a callback sees after every optimizer step (metrics row already written, checkpoint saved if any)."""

    step: int
    total_steps: int
    metrics: dict[str, Any]
    checkpoint: Path | None


@dataclass
class SFTResult:
    """Outcome of :func:`train_sft`."""

    out_dir: Path
    final_dir: Path
    total_steps: int
    resumed_from_step: int | None
    num_examples: int
    num_rejects: int
    wall_time_s: float
    metrics: list[dict[str, Any]] = field(repr=False)
    model: FutureL1Model | None = field(default=None, repr=False)

    @property
    def final_loss(self) -> float | None:
        return self.metrics[-1]["loss"] if self.metrics else None


# ---------------------------------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------------------------------


class ExampleSource(Dataset):
    """SFT examples by index, from SFT records (decoded lazily, optionally cached) or from ready ``SFTExample``\\ s.

    ``mode="text"`` never decodes future frames (the text-only baseline keeps the thoughts, drops the frames).
    """

    def __init__(self, items: Sequence[SFTRecord] | Sequence[SFTExample], mode: Mode, cache: bool = True):
        self.items = list(items)
        self.mode = mode
        self.cache: dict[int, SFTExample] | None = {} if cache else None

    def __len__(self) -> int:
        return len(self.items)

    def item_id(self, index: int) -> str:
        return str(self.items[index].id)

    def __getitem__(self, index: int) -> SFTExample:
        if self.cache is not None and index in self.cache:
            return self.cache[index]
        item = self.items[index]
        if isinstance(item, SFTExample):
            ex = item if self.mode == "latent" else dataclasses.replace(item, future_frames=[])
        else:
            ex = sft_example(item, with_future=self.mode == "latent")
        if self.cache is not None:
            self.cache[index] = ex
        return ex

    def subset(self, indices: Sequence[int]) -> "ExampleSource":
        out = ExampleSource([self.items[i] for i in indices], self.mode, cache=self.cache is not None)
        if self.cache is not None:
            out.cache = {j: self.cache[i] for j, i in enumerate(indices) if i in self.cache}
        return out

    def fingerprint(self) -> str:
        """sha256 over the content of every item in order (records: fields; examples: text and image pixels)."""
        h = hashlib.sha256(self.mode.encode())
        for item in self.items:
            if isinstance(item, SFTExample):
                h.update(json.dumps([item.id, item.question, item.thoughts, item.answer]).encode())
                frames = item.question_images + (item.future_frames if self.mode == "latent" else [])
                for img in frames:
                    h.update(f"{img.size}{img.mode}".encode())
                    h.update(img.tobytes())
            else:
                fields = [item.id, item.video, list(item.image), list(item.reasoning_image), item.human, item.gpt,
                          item.answer, list(item.image_paths), list(item.reasoning_image_paths)]
                h.update(json.dumps(fields).encode())
        return h.hexdigest()


_FIELD_RE = re.compile(r"field '([^']+)'")


def validate_examples(source: ExampleSource, collator: SFTCollator, rank: int = 0, processes: int = 1
                      ) -> tuple[list[int], list[Reject]]:
    """Decode the examples ``i ≡ rank (mod processes)`` once and apply the collator's checks; returns (good
    indices, rejects) of that shard. :func:`train_sft` gathers the shards, so each process opens 1/P of the videos."""
    good, rejects = [], []
    for i in range(rank, len(source), processes):
        try:
            ex = source[i]
            collator.check(ex)  # the collator's own per-example rules
            good.append(i)
        except Exception as err:  # noqa: BLE001 - any decoding/check failure makes the record a reject
            if source.cache is not None:
                source.cache.pop(i, None)
            m = _FIELD_RE.search(str(err))
            reason = str(err) if isinstance(err, CollateError) else f"{type(err).__name__}: {err}"
            rejects.append(Reject(source.item_id(i), m.group(1) if m else "<frames>", reason, position=i, source="sft"))
    return good, rejects


def epoch_permutation(seed: int, epoch: int, n: int) -> np.ndarray:
    """The data order of one epoch: ``default_rng([seed, epoch]).permutation(n)``."""
    return np.random.default_rng([seed, epoch]).permutation(n)


def micro_batch_indices(
    seed: int, n: int, step: int, steps_per_epoch: int, batch: int, accumulation: int, processes: int, rank: int
) -> list[list[int]]:
    """Example indices of the micro-batches of optimizer step ``step`` (0-based) for process ``rank``."""
    perm = epoch_permutation(seed, step // steps_per_epoch, n)
    pos = (step % steps_per_epoch) * batch * accumulation * processes
    return [perm[pos + (m * processes + rank) * batch :][:batch].tolist() for m in range(accumulation)]


def _fresh_readers(worker_id: int) -> None:
    """DataLoader worker start: drop any decord reader inherited from the parent (each worker opens its own)."""
    clear_reader_cache()


def _batch_stream(source: ExampleSource, collator: SFTCollator, cfg: SFTConfig, start: int, total: int,
                  steps_per_epoch: int, processes: int, rank: int):
    """Collated micro-batches from step ``start`` on, epoch by epoch (a DataLoader with workers if configured)."""
    from torch.utils.data import DataLoader

    step = start
    while step < total:
        end = min(total, (step // steps_per_epoch + 1) * steps_per_epoch)
        index_lists = [
            idx for s in range(step, end)
            for idx in micro_batch_indices(cfg.seed, len(source), s, steps_per_epoch, cfg.per_device_batch_size,
                                           cfg.gradient_accumulation_steps, processes, rank)
        ]
        if cfg.dataloader_workers > 0:
            clear_reader_cache()  # decord readers opened by validation must not be shared with forked workers
            yield from DataLoader(source, batch_sampler=index_lists, collate_fn=collator,
                                  num_workers=cfg.dataloader_workers, worker_init_fn=_fresh_readers)
        else:
            for idx in index_lists:
                yield collator([source[i] for i in idx])
        step = end


# ---------------------------------------------------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------------------------------------------------


def checkpoint_dirs(out_dir: str | Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first (temp ``.step-*.tmp-*`` dirs are never listed)."""
    root = Path(out_dir) / CHECKPOINT_DIR
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and _CKPT_RE.match(p.name) and (p / STATE_FILE).is_file()]
    return sorted(found, key=lambda p: int(_CKPT_RE.match(p.name).group(1)))


def latest_checkpoint(out_dir: str | Path) -> Path | None:
    """The newest complete checkpoint directory of a run, or ``None``."""
    dirs = checkpoint_dirs(out_dir)
    return dirs[-1] if dirs else None


def model_fingerprint(model: torch.nn.Module, sample: int = 4096) -> str:
    """A cheap identity of the initial weights: per parameter, its name, shape, fp64 sum and first values."""
    h = hashlib.sha256()
    for name, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
        t = p.detach()
        h.update(f"{name}{tuple(t.shape)}{t.dtype}{float(t.double().sum()):.10e}".encode())
        h.update(t.reshape(-1)[:sample].float().cpu().numpy().tobytes())
    return h.hexdigest()


def _check_resume(saved: dict, run_info: dict, ckpt: Path) -> None:
    problems = []
    old_cfg, new_cfg = saved["config"], run_info["config"]
    for key in sorted(set(old_cfg) | set(new_cfg)):
        if key in HARMLESS_KEYS:
            continue
        if old_cfg.get(key) != new_cfg.get(key):
            problems.append(f"{key}: checkpoint {old_cfg.get(key)!r} → now {new_cfg.get(key)!r}")
    for key in ("mode", "num_processes", "data_hash", "num_examples", "model_fingerprint", "latent_config", "total_steps"):
        if saved.get(key) != run_info.get(key):
            old, new = saved.get(key), run_info.get(key)
            if key in ("data_hash", "model_fingerprint"):
                old, new = str(old)[:12], str(new)[:12]
            problems.append(f"{key}: checkpoint {old!r} → now {new!r}")
    if problems:
        raise ResumeMismatchError(
            f"refusing to resume from {ckpt}: these settings differ from the checkpoint's and would change the "
            "result:\n  " + "\n  ".join(problems) + "\nUse a new output directory, or restore the settings. (Harmless "
            f"settings that may change: {sorted(HARMLESS_KEYS)}.)"
        )


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


def _to_device(batch: dict, device: torch.device) -> dict:
    return {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}


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
    (thoughts kept, future frames removed, CE only). ``rejects`` (e.g. from the loader) are written to
    ``<out>/rejects.jsonl`` together with the examples that fail validation. Returns an :class:`SFTResult`; the trained
    model is also saved to ``<out>/final`` (``load_future_l1`` + ``generate_with_latents`` ready).
    """
    from accelerate import Accelerator
    from accelerate.utils import DistributedType, broadcast_object_list, set_seed
    from tqdm.auto import tqdm
    from transformers import get_constant_schedule_with_warmup, get_cosine_schedule_with_warmup

    if mode not in ("latent", "text"):
        raise ValueError(f"mode must be 'latent' or 'text', got {mode!r}")
    t_start = time.perf_counter()
    out_dir = Path(out_dir)
    cfg = config
    if accelerator is None:
        accelerator = Accelerator(
            gradient_accumulation_steps=cfg.gradient_accumulation_steps,
            mixed_precision=_mixed_precision(cfg.mixed_precision),
        )
    main = accelerator.is_main_process
    n_proc = accelerator.num_processes
    rank = accelerator.process_index
    if main:
        out_dir.mkdir(parents=True, exist_ok=True)

    # ---- model set-up (before anything is loaded or prepared)
    if cfg.latent_lambda is not None and model.latent_config.latent_lambda != cfg.latent_lambda:
        model.latent_config = model.latent_config.replace(latent_lambda=cfg.latent_lambda)
        model._sync_config()
    fingerprint = model_fingerprint(model)
    model.freeze_vision(cfg.freeze_vision)
    if cfg.lora is not None:
        apply_lora(model, LoraSettings.from_dict(cfg.lora))  # adapters already there are merged first
    elif has_lora(model):
        merge_lora(model)  # full fine-tuning of an adapter checkpoint: fold its adapters in first
    upcast_trainable(model)  # fp32 master weights: a bf16-loaded checkpoint would lose updates below bf16 resolution
    if cfg.gradient_checkpointing:
        model.base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})

    # ---- data
    collator = SFTCollator(
        processor, model.latent_config, system_prompt=cfg.system_prompt, mode=mode, max_length=cfg.max_length,
        on_error=cfg.on_error,
    )
    source = ExampleSource(records, mode, cache=cfg.cache_examples)
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
    total_steps = cfg.max_steps if cfg.max_steps is not None else cfg.num_epochs * steps_per_epoch
    run_info = {
        "config": cfg.to_dict(),
        "mode": mode,
        "num_processes": n_proc,
        "num_examples": n,
        "data_hash": source.fingerprint(),
        "model_fingerprint": fingerprint,
        "latent_config": model.latent_config.to_dict(),
        "total_steps": total_steps,
        "steps_per_epoch": steps_per_epoch,
        "global_batch": global_batch,
    }

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
    wrapped, optimizer = accelerator.prepare(model, optimizer)
    accelerator.register_for_checkpointing(scheduler)
    # frozen bf16 weights beside fp32 trainable ones need autocast when accelerate adds none (CPU, "no")
    mixed_forward = autocast(model, accelerator.device) if accelerator.mixed_precision == "no" else nullcontext()
    trainable = [p for p in wrapped.parameters() if p.requires_grad]

    # ---- resume
    start_step, resumed_from = 0, None
    ckpt = latest_checkpoint(out_dir)
    metrics_path = out_dir / "metrics.jsonl"
    if ckpt is not None:
        saved = json.loads((ckpt / STATE_FILE).read_text())
        _check_resume(saved["run"], run_info, ckpt)
        accelerator.load_state(str(ckpt))
        start_step = resumed_from = int(saved["step"])
        logger.info("resuming from %s (step %d of %d)", ckpt, start_step, total_steps)
    if main:
        rows = [r for r in read_jsonl(metrics_path) if int(r.get("step", 0)) <= start_step]
        if metrics_path.exists():
            write_jsonl(metrics_path, rows)
        atomic_write_json(out_dir / "run.json", run_info)
    accelerator.wait_for_everyone()

    # ---- train
    wrapped.train()
    if cfg.freeze_vision:
        accelerator.unwrap_model(wrapped).base.model.visual.eval()
    bar = tqdm(total=total_steps, initial=start_step, desc=f"SFT ({mode})", disable=not (main and cfg.progress_bar),
               dynamic_ncols=True)
    samples = start_step * global_batch
    stream = _batch_stream(source, collator, cfg, start_step, total_steps, steps_per_epoch, n_proc, rank)
    try:
        for step in range(start_step, total_steps):
            epoch = step // steps_per_epoch
            lr = scheduler.get_last_lr()[0]
            t0 = time.perf_counter()
            sums = torch.zeros(5, dtype=torch.float64)  # loss, ce, latent, latent pairs, tokens
            grad_norm = None
            for m in range(cfg.gradient_accumulation_steps):
                batch = next(stream)
                batch.pop("ids", None)
                batch = _to_device(batch, accelerator.device)
                with accelerator.accumulate(wrapped), mixed_forward:
                    out = wrapped(**batch)
                    loss = out.loss
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
                         float(out.num_latent_pairs), float(batch["attention_mask"].sum())],
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
                "epoch": round((step + 1) / steps_per_epoch, 4),
                "loss": float(stats[0] / n_micro),
                "ce_loss": float(stats[1] / n_micro),
                "latent_loss": float(stats[2] / n_micro),
                "lr": lr,
                "grad_norm": grad_norm,
                "latent_pairs": int(stats[3]),
                "tokens": int(stats[4]),
                "samples": samples,
                "tokens_per_s": float(stats[4]) / dt,
                "step_time_s": dt,
            }
            if main:
                append_jsonl(metrics_path, row)
            bar.update(1)
            bar.set_postfix(loss=f"{row['loss']:.3f}", lr=f"{lr:.2e}", tok_s=f"{row['tokens_per_s']:.0f}")
            if cfg.log_every and (step + 1) % cfg.log_every == 0:
                logger.info("step %d/%d loss %.4f ce %.4f latent %.4f lr %.2e gnorm %s", step + 1, total_steps,
                            row["loss"], row["ce_loss"], row["latent_loss"], lr, grad_norm)
            saved_ckpt = None
            if (cfg.save_every and (step + 1) % cfg.save_every == 0) or step + 1 == total_steps:
                saved_ckpt = _save_checkpoint(accelerator, out_dir, step + 1, epoch, run_info, cfg, broadcast_object_list)
            for cb in callbacks:
                cb(StepInfo(step + 1, total_steps, row, saved_ckpt))
    finally:
        bar.close()
        stream.close()

    final_dir = out_dir / "final"
    unwrapped = accelerator.unwrap_model(wrapped)
    unwrapped.eval()
    _save_final(accelerator, wrapped, processor, final_dir, DistributedType, merge=cfg.lora_merge)
    metrics = read_jsonl(metrics_path) if main else []
    wall = time.perf_counter() - t_start
    if main:
        atomic_write_json(out_dir / "result.json", {
            "final_dir": str(final_dir), "total_steps": total_steps, "resumed_from_step": resumed_from,
            "num_examples": n, "num_rejects": len(all_rejects), "wall_time_s": wall,
            "final_loss": metrics[-1]["loss"] if metrics else None,
        })
    accelerator.wait_for_everyone()
    return SFTResult(out_dir, final_dir, total_steps, resumed_from, n, len(all_rejects), wall, metrics, unwrapped)


def _save_checkpoint(accelerator, out_dir: Path, step: int, epoch: int, run_info: dict, cfg: SFTConfig,
                     broadcast_object_list) -> Path:
    """``accelerator.save_state`` (model, optimizer, scheduler, RNG of every process) + trainer state, atomically."""
    final = out_dir / CHECKPOINT_DIR / f"step-{step:08d}"
    state = {
        "step": step,
        "epoch": epoch,
        "position_in_epoch": (step % run_info["steps_per_epoch"]) * run_info["global_batch"],
        "data_order": "numpy default_rng([seed, epoch]).permutation(num_examples)",
        "run": run_info,
    }

    def write(tmp: Path) -> None:
        holder = [str(tmp)]
        if accelerator.num_processes > 1:
            broadcast_object_list(holder)
        accelerator.save_state(holder[0])
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            cfg.save(Path(holder[0]) / "sft_config.json")
            atomic_write_json(Path(holder[0]) / STATE_FILE, state)  # written last: marks the checkpoint complete

    if accelerator.is_main_process:
        with atomic_directory(final) as tmp:
            write(tmp)
        for old in checkpoint_dirs(out_dir)[: -cfg.keep_checkpoints]:
            shutil.rmtree(old, ignore_errors=True)
    else:
        write(Path("."))
    accelerator.wait_for_everyone()
    return final


def _save_final(accelerator, wrapped, processor, final_dir: Path, DistributedType, merge: bool = False) -> None:
    """The trained model as a Future-L1 checkpoint (gathered from FSDP / ZeRO shards when needed); with LoRA an
    adapter folder, or merged on request (:func:`fl1_core.adapters.save_trained`)."""
    unwrapped = accelerator.unwrap_model(wrapped)
    if has_lora(unwrapped):
        if accelerator.is_main_process:
            with atomic_directory(final_dir) as tmp:
                save_trained(unwrapped, processor, tmp, merge=merge)
    elif accelerator.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED):
        full = accelerator.get_state_dict(wrapped)
        if accelerator.is_main_process:
            base_sd = {k[len("base."):]: v for k, v in full.items() if k.startswith("base.")}
            with atomic_directory(final_dir) as tmp:
                unwrapped._sync_config()
                unwrapped.base.save_pretrained(tmp, state_dict=base_sd)
                if unwrapped.latent_head is not None:
                    head = {k[len("latent_head."):]: v for k, v in full.items() if k.startswith("latent_head.")}
                    torch.save(head, tmp / "latent_head.pt")
                processor.save_pretrained(tmp)
    elif accelerator.is_main_process:
        with atomic_directory(final_dir) as tmp:
            save_future_l1(unwrapped, processor, tmp)
    accelerator.wait_for_everyone()


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
    latent_config: LatentConfig | None = None,
    exclude_ids: Sequence[str] = (),
    callbacks: Sequence[Callable[[StepInfo], None]] = (),
) -> SFTResult:
    """Load the base checkpoint and the SFT records (bad records → ``<out>/rejects.jsonl`` with ``on_error="skip"``),
    drop ``exclude_ids`` (e.g. held-out prompts) and run :func:`train_sft`. Re-running the same call resumes.
    A world base built for another tokenizer or world version is refused (:func:`check_base_compatible`)."""
    from .pretrain.shipped import check_base_compatible

    model, processor = load_future_l1(init_checkpoint_dir, latent_config=latent_config)
    check_base_compatible(model, processor, Path(data_path).parent)
    # with validate_examples every example is decoded later, 1/P per process: skip opening every video here too
    loaded = load_sft_records(data_path, on_error=config.on_error, check_videos=not config.validate_examples)
    excluded = set(exclude_ids)
    records = [r for r in loaded.records if r.id not in excluded]
    return train_sft(model, processor, records, config, out_dir, mode, rejects=loaded.rejects, callbacks=callbacks)


@dataclass
class FormatReport:
    """Greedy ``generate_with_latents`` on held-out prompts: format-valid rate (``format_reward``), spans per response,
    answer exact-match rate and a few sample outputs."""

    n: int
    format_valid_rate: float
    mean_spans: float
    mean_latents_per_span: float
    answer_accuracy: float
    samples: list[str] = field(default_factory=list, repr=False)


def format_report(
    model: FutureL1Model,
    processor,
    records: Sequence[SFTRecord],
    n: int = 32,
    max_new_tokens: int = 256,
    *,
    batch_size: int = 16,
    system_prompt: str = "interleaved",
    latent_config: LatentConfig | None = None,
) -> FormatReport:
    """Greedy-decode the first ``n`` records' prompts (question frames + question) and score the outputs.

    format_valid_rate = mean ``format_reward(text)``; mean_spans = mean number of closed latent spans per response.
    ``latent_config`` overrides the model's decoding budget (e.g. ``budget_mode="fixed"``).
    """
    from .decoding import generate_with_latents
    from .rewards import format_reward

    records = list(records)[:n]
    was_training = model.training
    model.eval()
    valid, spans, latents, correct, samples = [], [], [], [], []
    for i in range(0, len(records), batch_size):
        chunk = records[i : i + batch_size]
        prompts: list[PromptExample] = [text_only_prompt(r) for r in chunk]
        inputs = build_prompt_inputs(processor, prompts, system_prompt=system_prompt)
        inputs = _to_device(inputs, model.device)
        gen = generate_with_latents(model, inputs, max_new_tokens=max_new_tokens, latent_config=latent_config)
        for rec, text, counts in zip(chunk, gen.texts, gen.span_counts):
            valid.append(format_reward(text))
            spans.append(len(counts))
            latents.extend(counts)
            correct.append(float(is_correct(text, rec.answer, mcq=reference_letter(rec.answer) is not None)))
            if len(samples) < 4:
                samples.append(text)
    model.train(was_training)
    k = max(len(valid), 1)
    return FormatReport(
        n=len(valid),
        format_valid_rate=sum(valid) / k,
        mean_spans=sum(spans) / k,
        mean_latents_per_span=(sum(latents) / len(latents)) if latents else 0.0,
        answer_accuracy=sum(correct) / k,
        samples=samples,
    )


def split_holdout(records: Sequence[SFTRecord], fraction: float = 0.1, seed: int = 0) -> tuple[list, list]:
    """Split records by clip (``meta.clip_id``, else ``video``) so no clip is in both parts: (train, held-out)."""
    def clip(r: SFTRecord) -> str:
        return str((r.meta or {}).get("clip_id") or r.video or r.id)

    clips = sorted({clip(r) for r in records})
    order = np.random.default_rng([seed, 7]).permutation(len(clips))
    held = {clips[i] for i in order[: max(1, int(round(fraction * len(clips))))]}
    return [r for r in records if clip(r) not in held], [r for r in records if clip(r) in held]
