"""What every notebook of the workbook calls first, and where a run's stages write.

:func:`notebook_setup` sets up logging, the run folder (a :class:`RunLayout`) and the data folder;
:func:`ensure_world` generates the synthetic world when it is missing; :func:`repo_path` resolves a notebook
parameter path against the checkout. Executing the notebooks is :mod:`fl1_core.notebook_runner`'s job.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .run_summary import CHECKPOINT_LABELS
from .runs import atomic_write_json, repo_path


@dataclass(frozen=True)
class RunLayout:
    """Where each stage of a run writes (one convention for every notebook and the CLI)."""

    root: Path

    @property
    def world_base(self) -> Path:
        """Where ``base_model="retrain"`` pretrains the world base from scratch."""
        return self.root / "world_base"

    @property
    def base_pointer(self) -> Path:
        return self.root / "base_model.json"

    @property
    def base_model(self) -> Path:
        """The base checkpoint of this run: the one notebook 02 chose (shipped world base, re-trained base or a
        given checkpoint), recorded in ``base_model.json``."""
        if not self.base_pointer.exists():
            raise FileNotFoundError(f"{self.base_pointer}: no base model recorded for this run; notebook 02 "
                                    "(curation) chooses it")
        return Path(json.loads(self.base_pointer.read_text())["path"])

    def set_base_model(self, path: str | Path, source: str) -> None:
        """Record the base checkpoint every later notebook of the run starts from."""
        atomic_write_json(self.base_pointer, {"path": str(Path(path).resolve()), "source": source})

    @property
    def curation(self) -> Path:
        return self.root / "curation"

    @property
    def curated_sft(self) -> Path:
        return self.curation / "sft_curated.json"

    def sft(self, mode: str) -> Path:
        return self.root / "sft" / mode

    def sft_model(self, mode: str) -> Path:
        return self.sft(mode) / "final"

    def rl(self, mode: str) -> Path:
        return self.root / "rl" / mode

    def rl_model(self, mode: str) -> Path:
        return self.rl(mode) / "final"

    def checkpoint(self, name: str) -> Path:
        """The model folder of checkpoint ``name`` (a key of :data:`fl1_core.run_summary.CHECKPOINT_LABELS`:
        ``base``, ``text_sft``, ``pause_sft``, ``sft_init`` (latent SFT), ``grpo``, ``dapo``, ``la-dapo``)."""
        sft = {"text_sft": "text", "pause_sft": "pause", "sft_init": "latent"}
        if name == "base":
            return self.base_model
        if name in sft:
            return self.sft_model(sft[name])
        if name in ("grpo", "dapo", "la-dapo"):
            return self.rl_model(name)
        raise KeyError(f"unknown checkpoint {name!r}; one of {[k for k in CHECKPOINT_LABELS if k != 'base_chain']}")

    def checkpoints(self, names=None, *, existing: bool = True) -> dict[str, Path]:
        """``{name: model folder}`` for ``names`` (default: every checkpoint, in stage order); with ``existing`` only
        those that were trained (their ``config.json`` exists)."""
        names = [k for k in CHECKPOINT_LABELS if k != "base_chain"] if names is None else list(names)
        found = {name: self.checkpoint(name) for name in names}
        return {n: p for n, p in found.items() if not existing or (p / "config.json").exists()}

    def eval(self, model_name: str, benchmark: str) -> Path:
        return self.root / "eval" / model_name / benchmark

    @property
    def metrics(self) -> Path:
        path = self.root / "metrics"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def read_metric(self, name: str) -> Any:
        """The JSON of ``metrics/<name>``, or None when that stage has not written it."""
        path = self.root / "metrics" / name
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None

    @property
    def figures(self) -> Path:
        path = self.root / "figures"
        path.mkdir(parents=True, exist_ok=True)
        return path


def notebook_setup(run_dir: str | Path, data_dir: str | Path, *, seed: int | None = None,
                   log_level: int = logging.WARNING) -> tuple[RunLayout, Path]:
    """The one setup call of every notebook: logging at ``log_level``, the run folder (``runs/scratch`` when empty,
    created), the data folder resolved against the repository, and ``torch.manual_seed(seed)`` when a seed is given.
    Returns (the run's :class:`RunLayout`, the data folder)."""
    logging.basicConfig(level=log_level)
    root = repo_path(run_dir or "runs/scratch")
    root.mkdir(parents=True, exist_ok=True)
    if seed is not None:
        import torch

        torch.manual_seed(int(seed))
    return RunLayout(root), repo_path(data_dir)


def ensure_world(data_dir: str | Path, seed: int = 0, size: str = "default", regenerate: bool = False) -> dict[str, Any]:
    """Generate the synthetic world into ``data_dir`` unless it already holds this seed and size; return its manifest."""
    from .data.world import WorldConfig, generate_world

    data_dir = repo_path(data_dir)
    config = WorldConfig.small() if size == "small" else WorldConfig()
    manifest_file = data_dir / "world.json"
    current = json.loads(manifest_file.read_text()) if manifest_file.exists() else {}
    if regenerate or current.get("seed") != seed or current.get("config") != config.to_dict():
        generate_world(data_dir, seed=seed, config=config)
        current = json.loads(manifest_file.read_text())
    return current
