"""The shipped world base as every stage reads it: a checkpoint in the repository with a model card, used like a
downloaded model.

``fl1_core/assets/world_base/`` holds a Future-L1 checkpoint (safetensors, config, tokenizer, processor) written by
:func:`fl1_core.pretrain.pretrain_world_base`, plus ``card.json`` (machine-readable: recipe, seed, data, steps, the
sha256 of every file, held-out metrics, the losses of the first steps, the command that reproduces it) and
``MODEL_CARD.md`` (the same for people). :func:`world_base_path` verifies the files against the card before anyone
loads them, and :func:`check_base_compatible` refuses a base built for another tokenizer or world version (SFT and
curation call it on the model they start from). Making and shipping a base is :mod:`fl1_core.pretrain.shipped`.
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from .runs import sha256_file

WORLD_BASE_DIR = Path(__file__).resolve().parent / "assets" / "world_base"
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
    from .tiny import build_tokenizer, default_corpus

    return tokenizer_fingerprint(build_tokenizer(default_corpus()))


def base_metadata(tokenizer) -> dict[str, str]:
    """What a world base records about itself in ``config.json[world_base]``."""
    from .data.world import GENERATOR_VERSION

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
