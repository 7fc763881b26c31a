"""The environment `accelerate launch --config_file configs/accelerate/fsdp.yaml` gives its processes, for tests that
start the processes with torchrun on CPU (gloo): `accelerate launch --cpu` would start only one."""

from __future__ import annotations

import os
from pathlib import Path

FSDP_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "accelerate" / "fsdp.yaml"


def fsdp_env(num_processes: int = 2) -> dict[str, str]:
    """``os.environ`` plus what accelerate's launcher derives from the shipped FSDP config, on the CPU in fp32."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils.launch import prepare_multi_gpu_env

    parser = launch_command_parser()
    args = parser.parse_args(["--config_file", str(FSDP_CONFIG), "--num_processes", str(num_processes), "unused.py"])
    args, _, _ = _validate_launch_command(args)
    env = {**os.environ, **prepare_multi_gpu_env(args)}
    env.update({"ACCELERATE_USE_CPU": "1", "ACCELERATE_MIXED_PRECISION": "no", "OMP_NUM_THREADS": "1",
                "FL1_DEVICE": "cpu"})
    return env
