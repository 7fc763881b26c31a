"""Configuration dataclasses that round-trip to dict / JSON / YAML, and the settings every stage shares.

- :class:`ConfigBase`: ``to_dict`` / ``from_dict`` (unknown keys are an error), JSON / YAML files, ``replace``.
- The shared settings, one name per idea: :class:`RunConfig` (``seed``), :class:`OptimizerConfig` (AdamW,
  clipping, a frozen vision tower, bookkeeping intervals: SFT, RL, pretraining), :class:`FineTuneConfig` (the run
  loop of SFT and RL: epochs or ``max_steps``, checkpoints, trackers, memory, LoRA, ``latent`` overrides) and
  :class:`SamplingConfig` (how answers are drawn: RL rollouts, curation probes, evaluation).
- :func:`paper_setting`: a field whose default is the paper's value says so in its help text, with the section of
  docs/PAPER.md it comes from.
- ``LatentConfig`` is the one place the latent mechanism is configured. It is written into every checkpoint's
  ``config.json`` under the single key :data:`CONFIG_KEY` and read back by the same name at inference, so a training
  and a decoding run can never disagree about the latent budget (the release's train/infer key mismatch). A stage
  changes it in one way only: its config's ``latent`` mapping, applied by :meth:`LatentConfig.overridden`.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

from .tokens import SYSTEM_PROMPTS

CONFIG_KEY = "future_l1"

T = TypeVar("T", bound="ConfigBase")


_PAPER_REF = re.compile(r"docs/PAPER\.md#[a-z0-9-]+")


def paper_setting(default: Any, ref: str, help: str = "") -> Any:
    """A dataclass field whose default is the paper's value: its ``help`` metadata ends with ``"paper: <default>,
    <ref>"``, ``ref`` naming the section of docs/PAPER.md by its anchor, as TRL's config fields carry their help."""
    if not _PAPER_REF.fullmatch(ref):
        raise ValueError(f"paper_setting: ref must name a section of docs/PAPER.md by its anchor, got {ref!r}")
    note = f"paper: {default!r}, {ref}"
    meta = {"help": f"{help} ({note})" if help else note, "paper": default, "paper_ref": ref}
    if isinstance(default, (list, dict, set)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


@dataclasses.dataclass
class ConfigBase:
    """Dataclass mix-in: ``to_dict`` / ``from_dict`` (unknown keys are an error) and JSON / YAML files."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls: type[T], data: dict[str, Any] | None) -> T:
        data = dict(data or {})
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"{cls.__name__}: unknown setting(s) {unknown}; known: {sorted(names)}")
        return cls(**data)

    def replace(self: T, **changes: Any) -> T:
        return dataclasses.replace(self, **changes)

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

    @classmethod
    def paper_values(cls) -> dict[str, tuple[Any, str]]:
        """``{field: (paper value, its docs/PAPER.md reference)}`` of the fields declared with :func:`paper_setting`."""
        return {f.name: (f.metadata["paper"], f.metadata["paper_ref"]) for f in dataclasses.fields(cls)
                if "paper" in f.metadata}


# ---------------------------------------------------------------------------------------------------------------------
# Settings every stage shares (one name per idea)
# ---------------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class RunConfig(ConfigBase):
    """Every stage: ``seed``, of which every random draw of the run is a function."""

    seed: int = 0

    def __post_init__(self) -> None:
        """Checks of the shared settings; every subclass calls ``super().__post_init__()`` (cooperative)."""


@dataclasses.dataclass
class OptimizerConfig(RunConfig):
    """AdamW with decoupled weight decay, gradient clipping to ``max_grad_norm``, an optionally frozen vision tower
    and the bookkeeping intervals (SFT, RL, pretraining). Paper values live with each stage's defaults."""

    learning_rate: float = 1e-5
    weight_decay: float = 0.01
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-8
    max_grad_norm: float = 1.0
    freeze_vision: bool = False
    save_every: int = 100  # checkpoint interval in optimizer steps
    log_every: int = 10

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        if not (0.0 <= self.adam_beta1 < 1.0 and 0.0 <= self.adam_beta2 < 1.0) or self.adam_epsilon <= 0:
            raise ValueError("need 0 <= adam_beta1, adam_beta2 < 1 and adam_epsilon > 0, got "
                             f"{self.adam_beta1}, {self.adam_beta2}, {self.adam_epsilon}")
        if self.weight_decay < 0 or self.max_grad_norm < 0:
            raise ValueError(f"weight_decay and max_grad_norm must be >= 0, got {self.weight_decay}, {self.max_grad_norm}")


@dataclasses.dataclass
class FineTuneConfig(OptimizerConfig):
    """The run loop of SFT and RL: ``num_epochs`` passes over the data, or exactly ``max_steps`` optimizer steps when
    set; ``keep_checkpoints`` newest checkpoints kept; progress bar and experiment trackers (``report_to``:
    ``"tensorboard"``, ``"wandb"``, …, None = off); activation checkpointing; LoRA adapters (``lora``:
    :class:`fl1_core.adapters.LoraSettings` fields, ``{}`` = defaults, None = full fine-tuning; ``lora_merge``: save
    ``final/`` merged into a full checkpoint); ``latent``: overrides of the model's :class:`LatentConfig`
    (:meth:`LatentConfig.overridden`; e.g. ``{"latent_lambda": 0.2}``, ``{"loose_cap": 64}``)."""

    num_epochs: float = 1.0
    max_steps: int | None = None
    keep_checkpoints: int = 2
    progress_bar: bool = True
    report_to: str | None = None
    gradient_checkpointing: bool = False
    lora: dict | None = None
    lora_merge: bool = False
    latent: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.max_steps is not None and self.max_steps < 0:
            raise ValueError(f"max_steps must be >= 0 or None, got {self.max_steps}")
        if self.num_epochs <= 0 and self.max_steps is None:
            raise ValueError(f"num_epochs must be > 0, got {self.num_epochs}")
        if self.keep_checkpoints < 1:
            raise ValueError(f"keep_checkpoints must be >= 1, got {self.keep_checkpoints}")
        check_latent_overrides(self.latent, type(self).__name__)

    @classmethod
    def for_hardware(cls, hardware: str, **overrides: Any):
        """The stage's hardware preset by name: ``"cpu"`` → ``cls.cpu_world``, ``"gpu"`` → ``cls.gpu_release``."""
        presets = {"cpu": "cpu_world", "gpu": "gpu_release"}
        if hardware not in presets:
            raise ValueError(f"unknown hardware {hardware!r}; expected 'cpu' or 'gpu'")
        return getattr(cls, presets[hardware])(**overrides)


@dataclasses.dataclass
class SamplingConfig(RunConfig):
    """How a model's answers are drawn: ``temperature`` and nucleus ``top_p`` over at most ``max_new_tokens`` new
    tokens, after the ``system_prompt`` variant of :mod:`fl1_core.tokens` (RL rollouts, curation probes,
    evaluation)."""

    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 2048
    system_prompt: str = "interleaved"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.temperature <= 0 or not 0 < self.top_p <= 1:
            raise ValueError(f"need temperature > 0 and 0 < top_p <= 1, got {self.temperature}, {self.top_p}")
        if self.max_new_tokens is not None and self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        check_system_prompt(self)


def check_system_prompt(config: Any) -> None:
    """Refuse a ``system_prompt`` that names no variant of :data:`fl1_core.tokens.SYSTEM_PROMPTS`."""
    if config.system_prompt not in SYSTEM_PROMPTS:
        raise ValueError(f"{type(config).__name__}.system_prompt must be one of {sorted(SYSTEM_PROMPTS)}, got "
                         f"{config.system_prompt!r}")


# ---------------------------------------------------------------------------------------------------------------------
# The latent mechanism
# ---------------------------------------------------------------------------------------------------------------------


# what the scheduled-sampling pass (own predictions at the latent slots) trains: the text after them, or the
# imagination (FutureL1Model.forward's own_latent_loss)
SAMPLING_LOSSES = ("ce", "alignment")


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
    - ``latent_anchor``: ``"none"`` (Future-L1) → a slot's prediction is ``project(h)``. ``"last_image"`` (the
      workbook's, docs/PAPER.md#deviations) → the prediction is a change from the last question image:
      ``ŝ_k = e_k + project(h)``, with ``e_k`` the k-th merged token of the last question image and k the slot's
      index in its span (the same cell of the frame grid); the alignment loss compares ``ŝ_k`` with the gold, and
      decoding feeds ``ŝ_k``. Needs image question frames of as many merged tokens as a span holds.
    - ``latent_token_id`` etc.: token ids, filled in when the tokens are added to a tokenizer.

    Paper values (docs/PAPER.md#latent-sft, docs/PAPER.md#decoding), in each field's help: K cap 32, λ = 0.2 with MSE,
    no head, loose decoding with a cap of 64 (the effect of the release's key defect). ``pooled_latent_tokens``,
    ``latent_input`` and the pooled fixed budget are the workbook's (docs/PAPER.md#deviations).
    """

    max_latent_token: int = paper_setting(32, "docs/PAPER.md#latent-sft", "K cap per span")
    pooled_latent_tokens: int | None = None
    budget_mode: Literal["fixed", "loose"] = paper_setting("loose", "docs/PAPER.md#decoding",
                                                           "how released checkpoints decode")
    loose_cap: int | None = None
    loose_multiplier: float = paper_setting(2.0, "docs/PAPER.md#decoding", "round(32 × 2) = 64 latents per span")
    force_initial_latent: bool = False
    projection_head: bool = paper_setting(False, "docs/PAPER.md#latent-sft", "off in the release")
    head_dim: int = paper_setting(2048, "docs/PAPER.md#latent-sft", "projection head width")
    latent_loss: Literal["mse", "sim"] = paper_setting("mse", "docs/PAPER.md#latent-sft")
    latent_lambda: float = paper_setting(0.2, "docs/PAPER.md#latent-sft",
                                         "the release script's λ (its code's default is 0.1)")
    latent_input: Literal["hidden", "pause"] = "hidden"
    latent_anchor: Literal["none", "last_image"] = "none"
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
        if self.latent_anchor not in ("none", "last_image"):
            raise ValueError(f"latent_anchor must be 'none' or 'last_image', got {self.latent_anchor!r}")
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

    def overridden(self, overrides: Mapping[str, Any] | None) -> "LatentConfig":
        """This config with a stage's ``latent`` overrides applied (the token ids cannot be overridden)."""
        if not overrides:
            return self
        check_latent_overrides(overrides, "latent")
        return self.replace(**overrides)


#: LatentConfig settings a stage may override (its ``latent`` mapping); the token ids belong to the tokenizer
LATENT_OVERRIDABLE: tuple[str, ...] = tuple(
    f.name for f in dataclasses.fields(LatentConfig) if f.name not in ("latent_token_id", "latent_start_id", "latent_end_id")
)


def check_latent_overrides(overrides: Mapping[str, Any], owner: str) -> None:
    """Refuse ``latent`` overrides that name no overridable :class:`LatentConfig` setting."""
    unknown = sorted(set(overrides) - set(LATENT_OVERRIDABLE))
    if unknown:
        raise ValueError(f"{owner}.latent: unknown LatentConfig setting(s) {unknown}; known: {list(LATENT_OVERRIDABLE)}")
