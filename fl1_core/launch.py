"""Run an ``fl1`` command from a notebook: in this process, or under ``accelerate launch`` on several GPUs.

It sits above :mod:`fl1_core.cli` (which uses :mod:`fl1_core.notebook_runner`), so the CLI and the notebook runner
do not import each other.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

from .cli import main as cli_main
from .runs import repo_path

logger = logging.getLogger(__name__)


def launch_cli(args: list[str], num_processes: int = 1, accelerate_config: str | Path | None = None) -> None:
    """Run ``fl1 <args>`` in this process (1 process) or under ``accelerate launch`` (several processes / GPUs).

    Notebooks use this for heavy cells so the same cell runs on a laptop and on an 8-GPU server.
    """
    if num_processes <= 1:
        code = cli_main(args)
    else:
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(num_processes)]
        if accelerate_config:
            cmd += ["--config_file", str(repo_path(accelerate_config))]
        cmd += ["-m", "fl1_core.cli", *args]
        logger.info("launching: %s", " ".join(cmd))
        code = subprocess.run(cmd, check=False).returncode
    if code != 0:
        raise RuntimeError(f"fl1 {' '.join(args)} failed with exit code {code}")
