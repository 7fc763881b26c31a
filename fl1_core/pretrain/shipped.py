"""Making and shipping the world base: the card of a finished pretraining run (recipe, data, CPU minutes, first
losses, held-out metrics), its human-readable model card, and the copy into ``fl1_core/assets/world_base/``. Reading
and checking a shipped base is :mod:`fl1_core.world_base`.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch

from ..runs import atomic_write_json, atomic_write_text
from ..world_base import CARD_FILE, CARD_MD, WORLD_BASE_DIR, file_hashes, tokenizer_fingerprint
from .chain import read_training_log, total_examples, total_steps
from .evaluate import heldout_mcq_by_group, lookup_accuracy, motion_accuracy, read_heldout, scene_accuracy
from .following import follow_accuracy
from .imagination import ROWS, imagination_error
from .reading import latent_reading_accuracy


def cpu_vector_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> list[str]:
    """The vector-extension flags (``avx*``, ``amx*``, ``fma``) of this CPU's first ``flags`` line in ``cpuinfo``,
    sorted; ``[]`` where the file is missing (not Linux). With torch's CPU capability they decide which float
    kernels run."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return []
    for line in text.splitlines():
        if line.startswith("flags"):
            return sorted(f for f in line.split(":", 1)[1].split() if f.startswith(("avx", "amx")) or f == "fma")
    return []


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
    origin = (f"continued from `{start}` (whose own card is there; its first phases were trained from random init) on"
              if start else "trained from random init on")
    imagination = [p for p in phases if any(p.get("tasks", {}).get(t, 0) > 0 for t in ("latent_layout", "chain"))]
    share = max((p.get("frame_share", 0) if p.get("frame_questions") else 0) for p in imagination) if imagination else 0
    follows = any(p.get("tasks", {}).get("follow_reading", 0) > 0 for p in phases)
    sampled = max((p.get("scheduled_sampling_p", 0) for p in imagination), default=0)
    trains = {p.get("scheduled_sampling_loss", "ce") for p in imagination if p.get("scheduled_sampling_p", 0) > 0}
    what = ("the alignment of each slot after the model's own earlier predictions" if trains == {"alignment"} else
            "the text after the model's own predictions" if trains == {"ce"} else "both")
    feedback = ("trained by the alignment loss and, with probability up to "
                f"{sampled:g} per span, by scheduled sampling ({what})" if sampled > 0 else
                "trained by the alignment loss on gold frames (no scheduled sampling)")
    lines = [
        "# World base: the tiny Qwen3-VL pretrained on the synthetic future world",
        "",
        "The stand-in for Qwen3-VL-8B-Instruct in the workbook's embedded default: a `Qwen3VLForConditionalGeneration`"
        f" with the sizes below, {origin} a procedural stream of world clips (seeds disjoint from "
        "every generated world's train and test clips) to see (scene, motion and change descriptions, helped by an "
        "auxiliary cell head on the merged vision tokens) and to read (option look-up, world questions in MCQ and "
        "free-form, with and without reasoning, with future frames as hints, over images and videos)"
        + ("; then to imagine: read a frame given as its embeddings at latent slots, answer world questions in the "
           f"full interleaved chain format ({100 * share:.0f} % of them frame-needing), and feed back latents through "
           f"a projection head, {feedback}" if imagination else "")
        + ("; and to conclude what its layout reading says (the follow_reading task: the reading without pictures, "
           "then the conclusion, which must copy the asked object's place)" if follows else "") + ".",
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
    imagined = card.get("metrics", {}).get("imagination_mse")
    if imagined:
        lines += ["", f"## Imagination: alignment MSE per slot row ({imagined['n_chains']} chains, "
                  "fl1_core.pretrain.imagination)", "", "| prediction or baseline | top | middle | bottom | all |",
                  "|---|---|---|---|---|"]
        for name in ("model", "own", "slot_mean", "present"):
            rows = imagined[name]["by_row"]
            lines.append(f"| {name} | " + " | ".join(f"{rows.get(r, float('nan')):.3f}" for r in ROWS)
                         + f" | {imagined[name]['all']:.3f} |")
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
    from ..evaluation.heldout import CHAIN_PREFIX

    scene = scene_accuracy(model, processor, n=200)
    motion = motion_accuracy(model, processor, n=200)
    mcq = heldout_mcq_by_group(model, processor, world_dir, limit=eval_mcq)
    chain = heldout_mcq_by_group(model, processor, world_dir, limit=eval_mcq, assistant_prefix=CHAIN_PREFIX)
    reading = latent_reading_accuracy(model, processor, n=200)
    follow = follow_accuracy(model, processor, n=200)
    return {
        "imagination_mse": imagination_error(model, processor, n=64),
        "layout_reading_image": reading["image"]["exact"],
        "layout_reading_latent_slots": reading["latent"]["exact"],
        "layout_reading_shuffled_slots": reading["shuffled"]["exact"],
        "conclusion_follows_gold_reading_text": follow["text"]["all"],
        "conclusion_follows_gold_reading_chain": follow["chain"]["all"],
        "conclusion_follows_gold_reading_chain_asked_listed_earlier": follow["chain"]["earlier"],
        "heldout_mcq_frame_needing": mcq["frame"],
        "concluded_answer_frame_needing": mcq["concluded_text"]["frame"],
        "chain_route_heldout_mcq_all": chain["all"],
        "chain_route_concluded_answer_all": chain["concluded_text"]["all"],
        "chain_route_concluded_answer_vision_dependent": chain["concluded_text"]["vision"],
        "chain_route_concluded_answer_frame_needing": chain["concluded_text"]["frame"],
        "chain_route_movers_read_right": chain["movers_read"],
        "scene_exact": scene["exact"],
        "scene_colour_slots": scene["colour_slots"],
        "motion_movers": motion["movers"],
        "option_lookup": lookup_accuracy(model, processor, read_heldout(world_dir)),
        "heldout_mcq_all": mcq["all"],
        "heldout_mcq_text_solvable": mcq["text"],
        "heldout_mcq_vision_dependent": mcq["vision"],
        "concluded_answer_text_solvable": mcq["concluded_text"]["text"],
        "concluded_answer_vision_dependent": mcq["concluded_text"]["vision"],
        "heldout_mcq_format_valid": mcq["format_valid"],
        "heldout_mcq_letters": mcq["letters"],
    }


def training_threads(log: list[dict[str, Any]]) -> int:
    """The torch thread count the run trained with, from its log rows; raises when the log does not record one or
    records several (a run resumed with another count, whose losses are not reproducible from one command)."""
    counts = {row.get("threads") for row in log}
    if None in counts:
        raise ValueError("the training log does not record its thread count (a run logged before 2026-12-05); "
                         "re-run `fl1 pretrain` to ship it")
    if len(counts) != 1:
        raise ValueError(f"the run trained with several thread counts {sorted(counts)}; re-run it with one")
    return int(counts.pop())


def card_from_run(run_dir: str | Path, world_dir: str | Path, *, first_steps: int = 20) -> dict[str, Any]:
    """Card fields of a finished pretraining run: recipe, data, the command and thread count it trained with, CPU
    minutes, first losses, held-out metrics."""
    from ..data.world import GENERATOR_VERSION
    from ..model import load_future_l1

    run_dir = Path(run_dir)
    recipe = json.loads((run_dir / "recipe.json").read_text())
    log = read_training_log(run_dir)
    if len(log) < total_steps(recipe):
        raise ValueError(f"{run_dir}: the log has {len(log)} of {total_steps(recipe)} steps; finish the run first")
    threads = training_threads(log)
    model, processor = load_future_l1(run_dir / "final")
    world = json.loads((Path(world_dir) / "world.json").read_text())
    seed = recipe["phases"][0]["seed"] if "phases" in recipe else recipe["seed"]
    return {
        "recipe": recipe,
        "command": f"fl1 pretrain --out {run_dir} --threads {threads} && fl1 ship-base {run_dir}",
        "threads": threads,
        # the SIMD kernels torch chose (AVX512, AVX2, ...) and the CPU's vector extensions (oneDNN also picks AMX or
        # VNNI kernels by them): float sums, hence losses, are bit-exact only where both are the same
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_vector_flags": cpu_vector_flags(),
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
