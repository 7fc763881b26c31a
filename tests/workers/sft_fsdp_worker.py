"""Run 2 SFT optimizer steps of the tiny model in 1 process (python) or 2 (torchrun, gloo, FSDP2); used by
test_fsdp_sft.

    python sft_fsdp_worker.py MODEL_DIR SFT_JSON OUT_DIR ACCUMULATION
    <env of `accelerate launch --config_file configs/accelerate/fsdp.yaml`> torchrun --nproc_per_node 2 \\
        sft_fsdp_worker.py MODEL_DIR SFT_JSON OUT_DIR ACCUMULATION

Both runs see the same global batch (2 examples × ACCUMULATION × processes) in the same micro-batches. Besides the
usual run folder, the worker writes OUT_DIR/fsdp.json (main process): how the model was sharded.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch


def _accelerator(cfg):
    """The Accelerator ``train_sft`` would build (:func:`fl1_core.distributed.accelerator_settings`). accelerate turns
    an FSDP launch into FSDP only on accelerator devices; on the CPU it sets up plain multi-CPU data parallelism, so
    here its state is switched to FSDP with the plugin of the settings: ``prepare`` then shards the model through
    accelerate's FSDP2 path (``fsdp2_prepare_model``) exactly as on GPUs, over gloo."""
    from accelerate import Accelerator
    from accelerate.utils import DistributedType
    from fl1_core.distributed import accelerator_settings, fsdp_launched

    settings = accelerator_settings(cfg.mixed_precision, cfg.gradient_accumulation_steps)
    acc = Accelerator(**settings)
    if fsdp_launched() and acc.distributed_type == DistributedType.MULTI_CPU:
        from accelerate.state import PartialState

        PartialState().distributed_type = acc.state.distributed_type = DistributedType.FSDP  # both singletons
        acc.state.fsdp_plugin = settings["fsdp_plugin"]
    return acc


def main() -> None:
    model_dir, data, out, accumulation = sys.argv[1:5]
    torch.set_num_threads(1)
    from fl1_core.data.formats import load_sft_records
    from fl1_core.model import load_future_l1
    from fl1_core.sft import SFTConfig, train_sft
    from fl1_core.sharding import describe_sharding

    model, processor = load_future_l1(model_dir, device=None)
    records = list(load_sft_records(data).records)[:12]
    cfg = SFTConfig.cpu_world(per_device_batch_size=2, gradient_accumulation_steps=int(accumulation), max_steps=2,
                              save_every=1, learning_rate=3e-3, warmup_ratio=0.0, progress_bar=False)
    result = train_sft(model, processor, records, cfg, out, mode="latent", accelerator=_accelerator(cfg))
    info = describe_sharding(result.model)
    if int(torch.distributed.get_rank() if torch.distributed.is_initialized() else 0) == 0:
        Path(out, "fsdp.json").write_text(json.dumps(info))


if __name__ == "__main__":
    main()
