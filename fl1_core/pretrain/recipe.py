"""The recipe of world pretraining: model sizes, optimisation and curriculum shares, as one config."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..config import SAMPLING_LOSSES, OptimizerConfig
from ..tiny import TinySizes
from .tasks import LOOKUP_WAYS, QA_VARIANTS, TASKS, WAYS


def _default_tasks() -> dict[str, float]:
    return {"scene": 0.15, "motion": 0.1, "change": 0.1, "lookup": 0.15, "qa": 0.4, "video": 0.1}


def _default_variants() -> dict[str, float]:
    return {"reason": 0.5, "direct": 0.3, "hinted": 0.2}


def _default_ways() -> dict[str, float]:
    return dict(zip(("hard", "easy", "recall"), LOOKUP_WAYS))


@dataclass
class PretrainRecipe(OptimizerConfig):
    """Everything that decides the world base. Same recipe + same seed → the same weights on CPU.

    Learning rate: linear warm-up over ``warmup_steps``, then cosine from ``learning_rate`` down to
    ``min_lr_ratio · learning_rate`` at ``steps``. Loss per step: ``CE + cell_weight · L_cell`` (the cell head's
    BCE, on steps whose examples carry images). Each step draws ONE task by ``tasks`` shares (a homogeneous batch).
    AdamW, clipping, ``seed``, ``freeze_vision`` and the ``save_every`` / ``log_every`` intervals:
    :class:`~fl1_core.config.OptimizerConfig` (β₂ = 0.95 here, as in language-model pretraining).
    """

    init_from: str | None = None  # a Future-L1 checkpoint to continue from (a second phase); None = random init
    steps: int = 4000
    batch_size: int = 16
    learning_rate: float = 2e-3
    adam_beta2: float = 0.95
    min_lr_ratio: float = 0.1
    warmup_steps: int = 100
    cell_weight: float = 1.0
    tasks: dict[str, float] = field(default_factory=_default_tasks)
    qa_variants: dict[str, float] = field(default_factory=_default_variants)
    mcq_fraction: float = 0.5
    lookup_ways: dict[str, float] = field(default_factory=_default_ways)  # shares of the look-up task's ways
    # imagination: frame-needing kinds in the question tasks, their share of the chain task, a latent projection head
    # of width head_dim, and scheduled sampling of the latent tasks (own predictions fed at a span with prob p);
    # freeze_vision keeps the latent targets stable, as in SFT
    frame_questions: bool = False
    frame_share: float = 0.5
    projection_head: bool = False
    head_dim: int = 256
    scheduled_sampling_p: float = 0.0
    scheduled_sampling_ramp: float = 0.3  # p rises linearly from 0 over this share of the steps
    # what the pass with own predictions trains: "ce" (the text reads them) or "alignment" (the slots after them
    # predict their gold embeddings; FutureL1Model.forward's own_latent_loss)
    scheduled_sampling_loss: str = "ce"
    # counterfactual readings in the chain task (fl1_core.data.counterfactual_reading): with this probability a
    # frame-needing chain's reading moves the asked object and the conclusion follows; 0 = off
    reading_swap_p: float = 0.0
    # tokenizer: pre-tokenisation ("word" = Qwen's, "phrase" = the world's phrases as tokens) and BPE budget
    pretokenizer: str = "word"
    vocab_size: int = 2048
    # sizes of the tiny Qwen3-VL
    hidden_size: int = 128
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    intermediate_size: int = 384
    vision_hidden_size: int = 64
    vision_depth: int = 2
    vision_heads: int = 4
    # bookkeeping
    save_every: int = 250
    keep_checkpoints: int = 2  # newest checkpoints kept (>= 1); older ones go only once a newer one is complete
    eval_every: int = 500

    def __post_init__(self) -> None:
        super().__post_init__()
        unknown = sorted(set(self.tasks) - set(TASKS))
        if unknown:
            raise ValueError(f"PretrainRecipe.tasks: unknown task(s) {unknown}; known: {list(TASKS)}")
        bad = sorted(set(self.qa_variants) - set(QA_VARIANTS))
        if bad:
            raise ValueError(f"PretrainRecipe.qa_variants: unknown variant(s) {bad}; known: {list(QA_VARIANTS)}")
        odd = sorted(set(self.lookup_ways) - set(WAYS))
        if odd:
            raise ValueError(f"PretrainRecipe.lookup_ways: unknown way(s) {odd}; known: {list(WAYS)}")
        if any(v < 0 for v in self.tasks.values()) or sum(self.tasks.values()) <= 0:
            raise ValueError(f"PretrainRecipe.tasks: shares must be >= 0 with a positive sum, got {self.tasks}")
        if self.steps < 1 or self.batch_size < 1 or self.keep_checkpoints < 1:
            raise ValueError("PretrainRecipe: steps, batch_size and keep_checkpoints must be >= 1, got "
                             f"{self.steps}, {self.batch_size}, {self.keep_checkpoints}")
        for name in ("frame_share", "scheduled_sampling_p", "scheduled_sampling_ramp", "reading_swap_p"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"PretrainRecipe.{name} must be in [0, 1], got {getattr(self, name)}")
        if self.scheduled_sampling_loss not in SAMPLING_LOSSES:
            raise ValueError(f"PretrainRecipe.scheduled_sampling_loss must be one of {SAMPLING_LOSSES}, "
                             f"got {self.scheduled_sampling_loss!r}")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError("PretrainRecipe: hidden_size must be a multiple of num_attention_heads")

    def sizes(self) -> TinySizes:
        return TinySizes(
            vocab_size=self.vocab_size,
            pretokenizer=self.pretokenizer,
            hidden_size=self.hidden_size,
            intermediate_size=self.intermediate_size,
            num_hidden_layers=self.num_hidden_layers,
            num_attention_heads=self.num_attention_heads,
            num_key_value_heads=self.num_key_value_heads,
            head_dim=self.hidden_size // self.num_attention_heads,
            vision_depth=self.vision_depth,
            vision_hidden_size=self.vision_hidden_size,
            vision_intermediate_size=2 * self.vision_hidden_size,
            vision_heads=self.vision_heads,
        )

    def task_of_step(self, step: int) -> str:
        """The task of 0-based ``step``: a draw by ``tasks`` shares from ``default_rng([seed, 2000, step])``."""
        names = [t for t in TASKS if self.tasks.get(t, 0) > 0]
        p = np.array([self.tasks[t] for t in names], dtype=np.float64)
        return names[int(np.random.default_rng([self.seed, 2000, int(step)]).choice(len(names), p=p / p.sum()))]

    def lr_at(self, step: int) -> float:
        """``lr(s) = lr·(s+1)/warmup`` for s < warmup, else ``lr·(m + (1−m)·½(1+cos(π·(s−w)/(S−w))))``."""
        if step < self.warmup_steps:
            return self.learning_rate * (step + 1) / self.warmup_steps
        span = max(1, self.steps - self.warmup_steps)
        progress = min(1.0, (step - self.warmup_steps) / span)
        m = self.min_lr_ratio
        return self.learning_rate * (m + (1 - m) * 0.5 * (1 + np.cos(np.pi * progress)))

    def own_latent_p_at(self, step: int) -> float:
        """Scheduled-sampling probability of 0-based ``step``: ``p·min(1, (s+1)/(ramp·S))`` (p at once when ramp = 0)."""
        ramp = self.scheduled_sampling_ramp * self.steps
        return self.scheduled_sampling_p * (1.0 if ramp <= 0 else min(1.0, (step + 1) / ramp))

    def result_affecting(self) -> dict[str, Any]:
        """The settings that change the weights (bookkeeping intervals left out): compared on resume."""
        d = self.to_dict()
        for k in ("save_every", "keep_checkpoints", "eval_every", "log_every"):
            d.pop(k)
        return d
