"""Stage 0 — the base model for the synthetic world (docs/PAPER.md#embedded-default).

On real data this stage is skipped: the base is a checkpoint path (Qwen3-VL-8B-Instruct) that
:func:`fl1_core.model.load_future_l1` opens directly. On the world there is no pretrained VLM, so the tiny Qwen3-VL
is trained from scratch, WITHOUT latents, to play that role: a base that follows the output format
(``<reason>…</reason>`` … ``<answer>…</answer>``), can already answer some questions (the text-solvable kinds), and
reads extra images, so that visual-gain curation (P_v − P_t) and latent SFT start from a sensible model.

Each world SFT record becomes one training example of one of four variants (chosen by a seeded draw):

* ``reason``: question frames + question → plain-text reasoning (the record's thoughts) + answer (collator text mode);
* ``direct``: question frames + question → ``<answer>…</answer>`` only, so the base sometimes answers without reasoning;
* ``hinted``: question frames + the record's future frames as extra images + the hint sentence of
  :func:`fl1_core.data.examples.hinted_prompt` → reasoning + answer (a general VLM can read extra images);
* ``caption``: question frames + "Describe the scene at the end of the video." → the first sentence of THOUGHT 0
  (the observed state: which body moves where), a caption of the observed frames.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import ConfigBase
from .data.collator import SFTExample
from .data.examples import hinted_prompt, sft_example
from .data.formats import Reject, SFTRecord, load_sft_records
from .runs import atomic_write_json
from .sft import SFTConfig, split_holdout, train_sft

logger = logging.getLogger(__name__)

CAPTION_QUESTION = "Describe the scene at the end of the video."
VARIANTS = ("reason", "direct", "hinted", "caption")


@dataclass
class BaseMix(ConfigBase):
    """Share of each stage-0 variant (normalised) and the share of clips held out from stage 0 entirely."""

    reason: float = 0.5
    direct: float = 0.25
    hinted: float = 0.15
    caption: float = 0.10
    holdout_clip_fraction: float = 0.0

    def weights(self) -> np.ndarray:
        w = np.array([self.reason, self.direct, self.hinted, self.caption], dtype=np.float64)
        if (w < 0).any() or w.sum() <= 0:
            raise ValueError(f"BaseMix weights must be >= 0 with a positive sum, got {w.tolist()}")
        return w / w.sum()


def stage0_config(**overrides) -> SFTConfig:
    """The CPU preset for stage 0 (from scratch: higher lr, more epochs than SFT from a base)."""
    base = dict(learning_rate=3e-3, num_epochs=4, warmup_ratio=0.05, latent_lambda=None, save_every=100)
    base.update(overrides)
    return SFTConfig.cpu_world(**base)


def _caption(thought0: str) -> str:
    first = thought0.split(". ")[0].strip()
    return first if first.endswith(".") else first + "."


def base_examples(
    records: Sequence[SFTRecord], mix: BaseMix | None = None, seed: int = 0
) -> tuple[list[SFTExample], dict[str, int], list[Reject]]:
    """One stage-0 example per record (variant drawn with ``default_rng([seed, 11])``).

    Returns (examples, count per variant, rejects: records whose frames cannot be decoded)."""
    mix = mix or BaseMix()
    rng = np.random.default_rng([seed, 11])
    choice = rng.choice(len(VARIANTS), size=len(records), p=mix.weights())
    out: list[SFTExample] = []
    rejects: list[Reject] = []
    counts = dict.fromkeys(VARIANTS, 0)
    for rec, c in zip(records, choice):
        variant = VARIANTS[int(c)]
        try:
            ex = sft_example(rec, with_future=variant == "hinted")
        except Exception as err:  # noqa: BLE001 - undecodable frames: reject the record, keep the others
            rejects.append(Reject(rec.id, "video", f"{type(err).__name__}: {err}", position=rec.position, source="sft"))
            continue
        counts[variant] += 1
        if variant == "reason":
            out.append(dataclasses.replace(ex, future_frames=[]))
        elif variant == "direct":
            out.append(dataclasses.replace(ex, id=f"{rec.id}#direct", thoughts=[], future_frames=[]))
        elif variant == "hinted":
            p = hinted_prompt(rec)
            out.append(SFTExample(id=f"{rec.id}#hinted", question=p.question, thoughts=list(ex.thoughts),
                                  answer=ex.answer, question_images=p.question_images))
        else:
            out.append(SFTExample(id=f"{rec.id}#caption", question=CAPTION_QUESTION, thoughts=[],
                                  answer=_caption(ex.thoughts[0] if ex.thoughts else ex.answer),
                                  question_images=ex.question_images))
    return out, counts, rejects


def train_base_model(
    world_dir: str | Path,
    out_dir: str | Path,
    config: SFTConfig | None = None,
    seed: int = 0,
    mix: BaseMix | None = None,
) -> Path:
    """Build the tiny Future-L1 model from scratch (``seed``) and train it on the world without latents.

    Returns ``<out>/final`` (a Future-L1 checkpoint: ``load_future_l1`` / ``generate_with_latents`` work on it).
    Re-running resumes like :func:`fl1_core.sft.train_sft`. With ``mix.holdout_clip_fraction > 0`` the records of a
    share of clips are left out and their ids written to ``<out>/heldout_ids.json``.
    """
    from .tiny import build_tiny_future_l1

    world_dir, out_dir = Path(world_dir), Path(out_dir)
    mix = mix or BaseMix()
    cfg = (config or stage0_config()).replace(seed=seed)
    loaded = load_sft_records(world_dir / "sft.json", on_error=cfg.on_error)
    records = list(loaded.records)
    if mix.holdout_clip_fraction > 0:
        records, held = split_holdout(records, mix.holdout_clip_fraction, seed)
        atomic_write_json(out_dir / "heldout_ids.json", [r.id for r in held])
    examples, counts, bad = base_examples(records, mix, seed)
    logger.info("stage 0: %d examples %s", len(examples), counts)
    model, processor = build_tiny_future_l1(seed=seed)
    result = train_sft(model, processor, examples, cfg, out_dir, mode="text", rejects=list(loaded.rejects) + bad)
    atomic_write_json(out_dir / "stage0.json", {"mix": mix.to_dict(), "variants": counts, "seed": seed,
                                                "final_dir": str(result.final_dir)})
    return result.final_dir
