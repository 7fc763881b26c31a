"""The shipped world base: a checkpoint in the repository with a model card, used like a downloaded model.

``fl1_core/assets/world_base/`` holds a Future-L1 checkpoint (safetensors, config, tokenizer, processor) written by
:func:`fl1_core.pretrain.pretrain_world_base`, plus ``card.json`` (machine-readable: recipe, seed, data, steps, the
sha256 of every file, held-out metrics, the losses of the first steps, the command that reproduces it) and
``MODEL_CARD.md`` (the same for people). :func:`world_base_path` verifies the files against the card before anyone
loads them, and :func:`check_base_compatible` refuses a base built for another tokenizer or world version.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

from ..runs import atomic_write_json, atomic_write_text, sha256_file

WORLD_BASE_DIR = Path(__file__).resolve().parents[1] / "assets" / "world_base"
CARD_FILE = "card.json"
CARD_MD = "MODEL_CARD.md"
META_KEY = "world_base"  # config.json key holding the base's tokenizer fingerprint and world version
RECREATE = ("re-create it with `fl1 pretrain --out runs/world_base` followed by "
            "`fl1 ship-base runs/world_base` (about 90 minutes on 2 CPU cores), or restore the files with "
            "`git checkout -- fl1_core/assets/world_base`")


class WorldBaseError(RuntimeError):
    """The shipped base is missing or does not match its card."""


class IncompatibleBaseError(ValueError):
    """A base model was built for another tokenizer or world version than the data it is asked to train on."""


def tokenizer_fingerprint(tokenizer) -> str:
    """sha256 of the sorted ``token → id`` vocabulary (added tokens included): equal iff the same tokenizer ids."""
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])
    return hashlib.sha256(json.dumps(vocab, ensure_ascii=False).encode("utf-8")).hexdigest()


@lru_cache(maxsize=1)
def current_tokenizer_fingerprint() -> str:
    """Fingerprint of the tokenizer this code builds for the tiny model (the one every world base must use)."""
    from ..tiny import build_tokenizer, default_corpus

    return tokenizer_fingerprint(build_tokenizer(default_corpus()))


def base_metadata(tokenizer) -> dict[str, str]:
    """What a world base records about itself in ``config.json[world_base]``."""
    from ..data.world import GENERATOR_VERSION

    return {"world_generator": GENERATOR_VERSION, "tokenizer_sha256": tokenizer_fingerprint(tokenizer)}


def check_base_compatible(model, processor, data_dir: str | Path | None) -> None:
    """Refuse a world base whose tokenizer or world version differs from this code's and the data's.

    Only bases that carry ``config.json[world_base]`` are checked (a real Qwen3-VL checkpoint carries none). The
    world version is compared with ``<data_dir>/world.json`` when the data is a generated world.
    """
    meta = getattr(model.config, META_KEY, None)
    if not meta:
        return
    have = tokenizer_fingerprint(processor.tokenizer)
    if meta.get("tokenizer_sha256") != have:
        raise IncompatibleBaseError(
            f"the base's tokenizer differs from the one it was trained with (config says "
            f"{str(meta.get('tokenizer_sha256'))[:12]}…, files give {have[:12]}…); {RECREATE}")
    if have != current_tokenizer_fingerprint():
        raise IncompatibleBaseError(
            f"the base was built with another tokenizer ({have[:12]}…) than this code builds "
            f"({current_tokenizer_fingerprint()[:12]}…), so its token ids mean other words; {RECREATE}")
    world_json = Path(data_dir) / "world.json" if data_dir is not None else None
    if world_json is not None and world_json.exists():
        generator = json.loads(world_json.read_text()).get("generator")
        if generator != meta.get("world_generator"):
            raise IncompatibleBaseError(
                f"the base was trained for world version {meta.get('world_generator')!r} but {data_dir} is version "
                f"{generator!r}; regenerate the data with `fl1 world` or {RECREATE}")


def file_hashes(directory: str | Path) -> dict[str, str]:
    """sha256 of every file under ``directory`` except the card files, by relative path."""
    directory = Path(directory)
    return {str(p.relative_to(directory)): sha256_file(p) for p in sorted(directory.rglob("*"))
            if p.is_file() and p.name not in (CARD_FILE, CARD_MD)}


def verify_world_base(directory: str | Path = WORLD_BASE_DIR) -> dict[str, Any]:
    """Check every file of a shipped base against its card; returns the card or raises :class:`WorldBaseError`."""
    directory = Path(directory)
    card_path = directory / CARD_FILE
    if not card_path.exists():
        raise WorldBaseError(f"no world base at {directory} (missing {CARD_FILE}); {RECREATE}")
    card = json.loads(card_path.read_text())
    have = file_hashes(directory)
    missing = sorted(set(card["sha256"]) - set(have))
    changed = sorted(k for k in card["sha256"] if k in have and have[k] != card["sha256"][k])
    if missing or changed:
        raise WorldBaseError(f"the world base at {directory} does not match its card (missing: {missing}, "
                             f"sha256 mismatch: {changed}); {RECREATE}")
    return card


def world_base_path(directory: str | Path = WORLD_BASE_DIR) -> Path:
    """The verified shipped base directory (what ``make demo`` starts from)."""
    verify_world_base(directory)
    return Path(directory)


def ship_world_base(run_dir: str | Path, card_fields: dict[str, Any], dest: str | Path = WORLD_BASE_DIR) -> Path:
    """Copy ``<run_dir>/final`` (and the run's recipe, step log and evaluations under ``training/``) to ``dest`` and
    write its card (``card_fields`` + the sha256 of every file)."""
    src = Path(run_dir) / "final"
    if not (src / "config.json").exists():
        raise FileNotFoundError(f"{src}: no finished world base (run `fl1 pretrain --out {run_dir}` to the end)")
    dest = Path(dest)
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(src, dest)
    (dest / "training").mkdir()
    for name in ("recipe.json", "log.jsonl", "eval.jsonl"):
        if (Path(run_dir) / name).exists():
            shutil.copy2(Path(run_dir) / name, dest / "training" / name)
    card = {**card_fields, "sha256": file_hashes(dest)}
    atomic_write_json(dest / CARD_FILE, card)
    atomic_write_text(dest / CARD_MD, model_card_markdown(card))
    return dest


def model_card_markdown(card: dict[str, Any]) -> str:
    """The human-readable model card."""
    recipe = card.get("recipe", {})
    phases = recipe.get("phases", [recipe])
    start = phases[0].get("init_from")
    origin = (f"continued from `{start}` (phases 1–2, whose own card is there: trained from random init to see and to "
              "read) on" if start else "trained from random init on")
    imagination = any(p.get("tasks", {}).get(t, 0) > 0 for p in phases for t in ("latent_layout", "chain"))
    lines = [
        "# World base: the tiny Qwen3-VL pretrained on the synthetic future world",
        "",
        "The stand-in for Qwen3-VL-8B-Instruct in the workbook's embedded default: a `Qwen3VLForConditionalGeneration`"
        f" with the sizes below, {origin} a procedural stream of world clips (seeds disjoint from "
        "every generated world's train and test clips) to see (scene, motion and change descriptions, helped by an "
        "auxiliary cell head on the merged vision tokens) and to read (option look-up, world questions in MCQ and "
        "free-form, with and without reasoning, with future frames as hints, over images and videos)"
        + ("; then to imagine: read a frame given as its embeddings at latent slots, answer world questions in the "
           "full interleaved chain format (half of them frame-needing), and feed back latents through a projection "
           "head, trained with scheduled sampling on its own predictions." if imagination else "."),
        "",
        f"- **Reproduce:** `{card.get('command', '')}`",
        f"- **Seed:** {phases[0].get('seed')} · **steps:** {sum(p.get('steps', 0) for p in phases)} · **batch:** "
        f"{'/'.join(str(p.get('batch_size')) for p in phases)} · **threads:** {card.get('threads')} · **CPU minutes:**"
        f" {card.get('cpu_minutes', 0):.1f} · **step wall-clock minutes:** {card.get('step_wall_minutes', 0):.1f}",
        f"- **Parameters:** {card.get('parameters', 0) / 1e6:.2f} M · **tokenizer sha256:** "
        f"`{card.get('tokenizer_sha256', '')[:16]}…` · **world generator:** {card.get('world_generator')}",
        f"- **Data:** {card.get('data', '')}",
        "",
        "## Held-out metrics (Wilson 95 % CIs)",
        "",
        "| measure | n | accuracy | 95 % CI |",
        "|---|---|---|---|",
    ]
    for name, m in card.get("metrics", {}).items():
        if isinstance(m, dict) and "accuracy" in m:
            lo, hi = m["ci95"]
            lines.append(f"| {name} | {m['n']} | {100 * m['accuracy']:.1f} % | [{100 * lo:.1f}, {100 * hi:.1f}] |")
    if len(card.get("phases", [])) > 1:
        lines += ["", "## Phases", "", "| phase | steps | CPU minutes | step wall-clock minutes |", "|---|---|---|---|"]
        lines += [f"| {p['phase']} | {p['steps']} | {p['cpu_minutes']:.1f} | {p['step_wall_minutes']:.1f} |"
                  for p in card["phases"]]
    lines += ["", "## Recipe", "", "```json", json.dumps(recipe, indent=1), "```", "",
              "## Files (sha256)", ""]
    lines += [f"- `{k}`: `{v}`" for k, v in card.get("sha256", {}).items()]
    lines += ["", f"Losses of the first {len(card.get('first_losses', []))} steps (checked by the tests): "
              + ", ".join(f"{x:.6f}" for x in card.get("first_losses", []))]
    return "\n".join(lines) + "\n"


def _phase_summary(log: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Steps, CPU minutes and summed step wall-clock minutes of each phase (one entry for a one-phase run)."""
    out: list[dict[str, Any]] = []
    for row in log:
        name = row.get("phase", "all")
        if not out or out[-1]["phase"] != name:
            out.append({"phase": name, "steps": 0, "cpu_minutes": 0.0, "step_wall_minutes": 0.0, "_cpu0": 0.0})
            out[-1]["_cpu0"] = out[-2]["_cpu_end"] if len(out) > 1 else 0.0
        out[-1]["steps"] += 1
        out[-1]["step_wall_minutes"] += row["wall_s"] / 60.0
        out[-1]["_cpu_end"] = row["cpu_s"]
    for p in out:
        p["cpu_minutes"] = (p.pop("_cpu_end") - p.pop("_cpu0")) / 60.0
    return out


def final_metrics(model, processor, world_dir: str | Path, eval_mcq: int | None = None) -> dict[str, Any]:
    """Held-out measures of a finished base (full held-out MCQ set unless ``eval_mcq``)."""
    from ..rl.heldout import CHAIN_PREFIX
    from .evaluate import heldout_mcq_by_group, lookup_accuracy, read_heldout, scene_accuracy
    from .reading import latent_reading_accuracy

    scene = scene_accuracy(model, processor, n=200)
    mcq = heldout_mcq_by_group(model, processor, world_dir, limit=eval_mcq)
    chain = heldout_mcq_by_group(model, processor, world_dir, limit=eval_mcq, assistant_prefix=CHAIN_PREFIX)
    reading = latent_reading_accuracy(model, processor, n=200)
    return {
        "layout_reading_image": reading["image"]["exact"],
        "layout_reading_latent_slots": reading["latent"]["exact"],
        "layout_reading_shuffled_slots": reading["shuffled"]["exact"],
        "heldout_mcq_frame_needing": mcq["frame"],
        "concluded_answer_frame_needing": mcq["concluded_text"]["frame"],
        "chain_route_heldout_mcq_all": chain["all"],
        "chain_route_concluded_answer_all": chain["concluded_text"]["all"],
        "chain_route_concluded_answer_vision_dependent": chain["concluded_text"]["vision"],
        "chain_route_concluded_answer_frame_needing": chain["concluded_text"]["frame"],
        "scene_exact": scene["exact"],
        "scene_colour_slots": scene["colour_slots"],
        "option_lookup": lookup_accuracy(model, processor, read_heldout(world_dir)),
        "heldout_mcq_all": mcq["all"],
        "heldout_mcq_text_solvable": mcq["text"],
        "heldout_mcq_vision_dependent": mcq["vision"],
        "concluded_answer_text_solvable": mcq["concluded_text"]["text"],
        "concluded_answer_vision_dependent": mcq["concluded_text"]["vision"],
        "heldout_mcq_format_valid": mcq["format_valid"],
        "heldout_mcq_letters": mcq["letters"],
    }


def card_from_run(run_dir: str | Path, world_dir: str | Path, *, threads: int, command: str,
                  first_steps: int = 20) -> dict[str, Any]:
    """Card fields of a finished pretraining run: recipe, data, CPU minutes, first losses, held-out metrics."""
    from ..data.world import GENERATOR_VERSION
    from ..model import load_future_l1
    from ..runs import read_jsonl

    from .chain import read_training_log, total_examples, total_steps

    run_dir = Path(run_dir)
    recipe = json.loads((run_dir / "recipe.json").read_text())
    log = read_training_log(run_dir)
    if len(log) < total_steps(recipe):
        raise ValueError(f"{run_dir}: the log has {len(log)} of {total_steps(recipe)} steps; finish the run first")
    model, processor = load_future_l1(run_dir / "final")
    world = json.loads((Path(world_dir) / "world.json").read_text())
    seed = recipe["phases"][0]["seed"] if "phases" in recipe else recipe["seed"]
    return {
        "recipe": recipe,
        "command": command,
        "threads": threads,
        # the SIMD kernels torch chose (AVX512, AVX2, ...): float sums, hence losses, are bit-exact only on the same
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_minutes": log[-1]["cpu_s"] / 60.0,
        "step_wall_minutes": sum(r["wall_s"] for r in log) / 60.0,
        "phases": _phase_summary(log),
        "parameters": sum(p.numel() for p in model.parameters()),
        "tokenizer_sha256": tokenizer_fingerprint(processor.tokenizer),
        "world_generator": GENERATOR_VERSION,
        "data": (f"procedural stream of world clips (seed {seed}, streams 1000-1001: never a generated "
                 f"world's clips), {total_examples(recipe)} examples; held-out metrics on the world "
                 f"of seed {world['seed']} ({world_dir}: test clips) and on unseen stream clips"),
        "first_losses": [row["loss"] for row in log[:first_steps]],
        "metrics": final_metrics(model, processor, world_dir),
    }
