"""Configuration dataclasses that round-trip to dict / JSON / YAML.

``LatentConfig`` is the one place the latent mechanism is configured. It is written into every checkpoint's
``config.json`` under the single key :data:`CONFIG_KEY` and read back by the same name at inference, so a training
and a decoding run can never disagree about the latent budget (the release's train/infer key mismatch).
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

import yaml

CONFIG_KEY = "future_l1"

T = TypeVar("T", bound="ConfigBase")


@dataclasses.dataclass
class ConfigBase:
    """Dataclass mix-in: ``to_dict`` / ``from_dict`` (unknown keys are an error) and JSON / YAML files.

    ``RENAMED`` maps a setting's earlier name to its one name today; ``from_dict`` and ``replace`` accept the earlier
    name with a warning (saved configs and sweep files keep working)."""

    RENAMED: ClassVar[dict[str, str]] = {}

    @classmethod
    def _current_names(cls, data: dict[str, Any]) -> dict[str, Any]:
        out = dict(data)
        for old, new in cls.RENAMED.items():
            if old in out:
                if new in out:
                    raise ValueError(f"{cls.__name__}: both {old!r} (its earlier name) and {new!r} are set")
                warnings.warn(f"{cls.__name__}: setting {old!r} is now {new!r}", DeprecationWarning, stacklevel=3)
                out[new] = out.pop(old)
        return out

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls: type[T], data: dict[str, Any] | None) -> T:
        data = cls._current_names(dict(data or {}))
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"{cls.__name__}: unknown setting(s) {unknown}; known: {sorted(names)}")
        return cls(**data)

    def replace(self: T, **changes: Any) -> T:
        return dataclasses.replace(self, **self._current_names(changes))

    def save(self, path: str | Path) -> None:
        path = Path(path)
        text = yaml.safe_dump(self.to_dict(), sort_keys=False) if path.suffix in (".yaml", ".yml") else json.dumps(
            self.to_dict(), indent=2
        )
        path.write_text(text)

    @classmethod
    def load(cls: type[T], path: str | Path) -> T:
        path = Path(path)
        text = path.read_text()
        data = yaml.safe_load(text) if path.suffix in (".yaml", ".yml") else json.loads(text)
        return cls.from_dict(data)


@dataclasses.dataclass
class LatentConfig(ConfigBase):
    """The latent mechanism (docs/PAPER.md#latent-sft, docs/PAPER.md#decoding).

    - ``max_latent_token``: K cap per span; future frames are resized to at most ``max_latent_token * 32 * 32``
      pixels (Qwen3-VL: patch 16 × merge 2 = 32 px per merged token), so K = merged tokens of the frame.
    - ``pooled_latent_tokens``: optional fixed budget n: 1-D adaptive average pooling of the raster-flattened merged
      tokens to exactly n latents per span.
    - decoding budget: ``budget_mode="fixed"`` → exactly ``max_latent_token`` latents per span; ``"loose"`` → the span
      ends on a sampled ``<|latent_end|>`` or at the cap = ``loose_cap`` if set, else
      ``round(max_latent_token * loose_multiplier)``.
    - ``force_initial_latent``: the first generated token is forced to ``<|latent_start|>``.
    - ``projection_head``: LayerNorm → Linear(H→head_dim) → SwiGLU(head_dim) → Linear(head_dim→H) applied to MSE
      predictions and to fed-back latents.
    - ``latent_loss``: ``"mse"`` or ``"sim"`` (1 − cosine); total loss = CE + ``latent_lambda`` · latent loss.
    - ``latent_input``: what a latent slot is fed. ``"hidden"`` (Future-L1): the previous position's final hidden
      state (through the head, if any) at decoding and the ground-truth future-frame embedding in SFT.
      ``"pause"`` (the pause-token control): always the learned ``<|latent|>`` token embedding, one constant
      vector, and no alignment loss; the same interleaved structure and slot count, no imagination.
    - ``latent_token_id`` etc.: token ids, filled in when the tokens are added to a tokenizer.

    Paper values (docs/PAPER.md#latent-sft, docs/PAPER.md#decoding): K cap 32, λ = 0.2 with MSE, no head, loose
    decoding with a cap of 64 (the effect of the release's key defect). ``pooled_latent_tokens``, ``latent_input``
    and the pooled fixed budget are the workbook's (docs/PAPER.md#deviations).
    """

    max_latent_token: int = 32  # 32, the release's K cap per span
    pooled_latent_tokens: int | None = None
    budget_mode: Literal["fixed", "loose"] = "loose"  # "loose", how released checkpoints decode
    loose_cap: int | None = None
    loose_multiplier: float = 2.0  # 2.0, the release's: round(32 × 2) = 64 latents per span
    force_initial_latent: bool = False
    projection_head: bool = False  # off in the release
    head_dim: int = 2048  # 2048, the release's head width
    latent_loss: Literal["mse", "sim"] = "mse"  # "mse", the release script's
    latent_lambda: float = 0.2  # the release script's λ (docs/PAPER.md#latent-sft); the one default of the repository
    latent_input: Literal["hidden", "pause"] = "hidden"
    latent_token_id: int | None = None
    latent_start_id: int | None = None
    latent_end_id: int | None = None

    def __post_init__(self) -> None:
        if self.max_latent_token < 1:
            raise ValueError(f"max_latent_token must be >= 1, got {self.max_latent_token}")
        if self.budget_mode not in ("fixed", "loose"):
            raise ValueError(f"budget_mode must be 'fixed' or 'loose', got {self.budget_mode!r}")
        if self.latent_input not in ("hidden", "pause"):
            raise ValueError(f"latent_input must be 'hidden' or 'pause', got {self.latent_input!r}")
        if self.latent_loss not in ("mse", "sim"):
            raise ValueError(f"latent_loss must be 'mse' or 'sim', got {self.latent_loss!r}")
        if self.pooled_latent_tokens is not None and self.pooled_latent_tokens < 1:
            raise ValueError(f"pooled_latent_tokens must be >= 1 or None, got {self.pooled_latent_tokens}")
        if self.loose_cap is not None and self.loose_cap < 1:
            raise ValueError(f"loose_cap must be >= 1 or None, got {self.loose_cap}")

    @property
    def decode_budget(self) -> int:
        """Latents allowed per span at decoding (docs/PAPER.md#decoding). Fixed: exactly as many as a training span holds — the
        pooled budget when ``pooled_latent_tokens`` is set, else ``max_latent_token`` — so decoding never feeds a
        different number of latents than training taught."""
        if self.budget_mode == "fixed":
            return self.pooled_latent_tokens or self.max_latent_token
        if self.loose_cap is not None:
            return self.loose_cap
        return int(round(self.max_latent_token * self.loose_multiplier))

    @property
    def latent_max_pixels(self) -> int:
        """Pixel cap of a future frame: ``max_latent_token × 32 × 32``."""
        return self.max_latent_token * 32 * 32

    def require_token_ids(self) -> tuple[int, int, int]:
        """(latent, start, end) ids; error if the tokens were never added."""
        ids = (self.latent_token_id, self.latent_start_id, self.latent_end_id)
        if any(i is None for i in ids):
            raise ValueError("LatentConfig has no latent token ids: add the latent tokens (fl1_core.tokens) first")
        return ids  # type: ignore[return-value]
