"""SFT checkpoints: folder naming, discovery, the model fingerprint, the resume check, saving state and the
final model (gathered from FSDP / ZeRO shards, or a LoRA adapter folder)."""

from __future__ import annotations

import logging
from pathlib import Path

from ..model_files import save_model_folder
from ..adapters import has_lora, save_trained
from ..runs import atomic_directory, atomic_write_json

from .config import HARMLESS_KEYS, Mode, ResumeMismatchError, SFTConfig  # noqa: F401  (Mode re-exported)

logger = logging.getLogger(__name__)


# the one checkpoint layout and fingerprint of every stage (re-exported: their earlier home)
from ..checkpointing import (  # noqa: E402,F401
    CHECKPOINT_DIR, STATE_FILE, checkpoint_dirs, checkpoint_path, latest_checkpoint, model_fingerprint, prune_checkpoints,
)


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



def _save_checkpoint(accelerator, out_dir: Path, step: int, epoch: int, run_info: dict, cfg: SFTConfig,
                     broadcast_object_list) -> Path:
    """``accelerator.save_state`` (model, optimizer, scheduler, RNG of every process) + trainer state, atomically."""
    final = checkpoint_path(out_dir, step)
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
        prune_checkpoints(out_dir, cfg.keep_checkpoints)
    else:
        write(Path("."))
    accelerator.wait_for_everyone()
    return final


def _save_final(accelerator, wrapped, processor, final_dir: Path, DistributedType, merge: bool = False) -> None:
    """The trained model as a Future-L1 checkpoint in the dtype its config states (gathered from FSDP / ZeRO shards
    when needed: :func:`fl1_core.model_files.save_model_folder`); with LoRA an adapter folder, or merged on request
    (:func:`fl1_core.adapters.save_trained`)."""
    unwrapped = accelerator.unwrap_model(wrapped)
    if has_lora(unwrapped):
        if accelerator.is_main_process:
            with atomic_directory(final_dir) as tmp:
                save_trained(unwrapped, processor, tmp, merge=merge)
    elif accelerator.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED):
        full = accelerator.get_state_dict(wrapped)  # gathered fp32 master weights
        if accelerator.is_main_process:
            with atomic_directory(final_dir) as tmp:
                save_model_folder(unwrapped, processor, tmp, state_dict=full)
    elif accelerator.is_main_process:
        with atomic_directory(final_dir) as tmp:
            save_model_folder(unwrapped, processor, tmp)
    accelerator.wait_for_everyone()


