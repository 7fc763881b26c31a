"""World pretraining in phases: phase k+1 continues from phase k's final weights; :func:`pretrain_world_base` runs a
recipe (one phase) or a chain.

A chain is a list of named :class:`PretrainRecipe` phases. The first phase starts from random init (or its own
``init_from``); the chain sets every later phase's ``init_from`` to the previous phase's ``final``. A chain file
lists the phases, each a recipe file (path relative to the chain file) or inline settings::

    phases:
      - {name: perception, recipe: phases/perception.yaml}
      - {name: reading, recipe: phases/reading.yaml}

Run layout: ``<out>/phase-1-perception/``, ``<out>/phase-2-reading/`` (each a resumable
:func:`~fl1_core.pretrain.train.train_phase` folder), then ``<out>/final`` (the last phase's weights),
``<out>/recipe.json`` (the chain), and ``<out>/log.jsonl`` / ``<out>/eval.jsonl``: every phase's rows with the
phase name and the step counted over the whole chain.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..runs import atomic_directory, atomic_write_json, read_jsonl, write_jsonl
from .recipe import PretrainRecipe
from .train import train_phase


@dataclass
class RecipeChain:
    """Named pretraining phases run one after the other (``steps`` = the sum of the phases' steps)."""

    names: list[str]
    phases: list[PretrainRecipe]

    def __post_init__(self) -> None:
        if not self.phases or len(self.names) != len(self.phases):
            raise ValueError(f"RecipeChain: {len(self.names)} names for {len(self.phases)} phases (need >= 1 each)")
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"RecipeChain: phase names must differ, got {self.names}")
        late = [n for n, p in zip(self.names[1:], self.phases[1:]) if p.init_from]
        if late:
            raise ValueError(f"RecipeChain: phase(s) {late} set init_from; a later phase always starts from the "
                             "previous phase's final weights")

    @property
    def steps(self) -> int:
        return sum(p.steps for p in self.phases)

    @property
    def seed(self) -> int:
        return self.phases[0].seed

    def replace(self, **changes: Any) -> RecipeChain:
        """The same chain with ``changes`` applied to every phase (e.g. ``steps=2`` for a smoke run)."""
        return RecipeChain(list(self.names), [p.replace(**changes) for p in self.phases])

    def to_dict(self) -> dict[str, Any]:
        return {"phases": [{"name": n, **p.to_dict()} for n, p in zip(self.names, self.phases)]}

    @classmethod
    def from_dict(cls, data: dict[str, Any], base_dir: str | Path | None = None) -> RecipeChain:
        """From ``{"phases": [{"name": ..., "recipe": <file>} | {"name": ..., <settings>}]}``."""
        names, phases = [], []
        for i, entry in enumerate(data.get("phases") or []):
            entry = dict(entry)
            names.append(str(entry.pop("name", f"phase{i + 1}")))
            file = entry.pop("recipe", None)
            if file is not None:
                path = Path(base_dir or ".") / file
                if not path.exists():
                    raise FileNotFoundError(f"RecipeChain: phase {names[-1]!r} names {path}, which does not exist")
                settings = {**_read_settings(path), **entry}
            else:
                settings = entry
            phases.append(PretrainRecipe.from_dict(settings))
        unknown = sorted(set(data) - {"phases"})
        if unknown:
            raise ValueError(f"RecipeChain: unknown key(s) {unknown}; a chain file holds only 'phases'")
        return cls(names, phases)

    def phase_dirs(self, out_dir: str | Path) -> list[Path]:
        return [Path(out_dir) / f"phase-{i + 1}-{n}" for i, n in enumerate(self.names)]

    def runnable(self, out_dir: str | Path) -> list[tuple[str, Path, PretrainRecipe]]:
        """(name, folder, recipe with ``init_from`` filled in) of each phase of a run into ``out_dir``."""
        dirs = self.phase_dirs(out_dir)
        out = [(self.names[0], dirs[0], self.phases[0])]
        for name, folder, recipe, prev in zip(self.names[1:], dirs[1:], self.phases[1:], dirs):
            out.append((name, folder, recipe.replace(init_from=str(prev / "final"))))
        return out


def _read_settings(path: Path) -> dict[str, Any]:
    text = path.read_text()
    return (yaml.safe_load(text) if path.suffix in (".yaml", ".yml") else json.loads(text)) or {}


def load_recipe(path: str | Path) -> PretrainRecipe | RecipeChain:
    """A recipe file: a chain when it has ``phases``, else one :class:`PretrainRecipe`."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no recipe file {path}")
    data = _read_settings(path)
    return RecipeChain.from_dict(data, path.parent) if "phases" in data else PretrainRecipe.from_dict(data)


def recipe_from_dict(data: dict[str, Any]) -> PretrainRecipe | RecipeChain:
    """The inverse of ``to_dict`` for both kinds (a card's or a run's ``recipe.json``)."""
    return RecipeChain.from_dict(data) if "phases" in data else PretrainRecipe.from_dict(data)


def total_steps(recipe: dict[str, Any]) -> int:
    """Steps of a recipe dict of either kind."""
    return sum(p["steps"] for p in recipe["phases"]) if "phases" in recipe else int(recipe["steps"])


def total_examples(recipe: dict[str, Any]) -> int:
    phases = recipe["phases"] if "phases" in recipe else [recipe]
    return sum(p["steps"] * p["batch_size"] for p in phases)


def combined_rows(chain: RecipeChain, out_dir: str | Path, name: str) -> list[dict[str, Any]]:
    """Every phase's ``name`` rows (``log.jsonl`` or ``eval.jsonl``) in order, each with ``phase``, its step over
    the whole chain and the CPU seconds / minutes counted from the chain's start."""
    rows, offset, cpu_before = [], 0, 0.0
    for phase_name, folder, recipe in chain.runnable(out_dir):
        phase_rows = read_jsonl(folder / name)
        for r in phase_rows:
            row = {**r, "phase": phase_name, "phase_step": r["step"], "step": r["step"] + offset}
            if "cpu_s" in r:
                row["cpu_s"] = r["cpu_s"] + cpu_before
            if "cpu_minutes" in r:
                row["cpu_minutes"] = r["cpu_minutes"] + cpu_before / 60.0
            rows.append(row)
        log = read_jsonl(folder / "log.jsonl")
        cpu_before += log[-1]["cpu_s"] if log else 0.0
        offset += recipe.steps
    return rows


def run_chain(chain: RecipeChain, out_dir: str | Path, *, max_steps: int | None = None, **train_kwargs) -> Path:
    """Run (or resume) every phase of ``chain`` into ``out_dir``; returns ``<out>/final``.

    Finished phases are skipped (their folders resume at their last step). ``max_steps`` counts over the whole
    chain and stops early without writing ``final``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "recipe.json", chain.to_dict())
    left = chain.steps if max_steps is None else max_steps
    last = None
    for _name, folder, recipe in chain.runnable(out):
        if left <= 0:
            return out / "final"
        last = train_phase(recipe, folder, max_steps=min(left, recipe.steps), **train_kwargs)
        left -= recipe.steps
        if not (last / "config.json").exists():
            return out / "final"
    for name in ("log.jsonl", "eval.jsonl"):
        write_jsonl(out / name, combined_rows(chain, out, name))
    with atomic_directory(out / "final") as tmp:
        shutil.copytree(last, tmp, dirs_exist_ok=True)
    return out / "final"


def pretrain_world_base(recipe: PretrainRecipe | RecipeChain, out_dir: str | Path, **kwargs) -> Path:
    """Train (or resume) the world base of a recipe or a chain of phases into ``out_dir``; returns ``<out>/final``.

    Keywords as :func:`~fl1_core.pretrain.train.train_phase` (``max_steps`` counts over a whole chain)."""
    if isinstance(recipe, RecipeChain):
        return run_chain(recipe, out_dir, **kwargs)
    return train_phase(recipe, out_dir, **kwargs)


def read_training_log(out_dir: str | Path) -> list[dict[str, Any]]:
    """The per-step log of a run folder of either kind (a chain's phases combined, even before it finishes)."""
    out = Path(out_dir)
    recipe = recipe_from_dict(json.loads((out / "recipe.json").read_text()))
    if isinstance(recipe, RecipeChain):
        return combined_rows(recipe, out, "log.jsonl")
    return read_jsonl(out / "log.jsonl")
