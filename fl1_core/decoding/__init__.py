"""Latent decoding (docs/PAPER.md#decoding): the batched decode loop over a static KV cache, its prefill shared by a prompt's
samples, greedy decoding of many prompts, and teacher-forced replay of what was decoded.

- :mod:`.latent_loop` — :func:`generate_with_latents`, the one decode loop (RL rollouts, evaluation, held-out
  scoring, the audit, curation);
- :mod:`.prefill` — prefill once per prompt into a preallocated cache, the fixed-shape (CUDA-graph ready) step;
- :mod:`.token_embedding` — token embeddings without peft's per-call copy of the embedding matrix;
- :mod:`.greedy` — :func:`greedy_decode`, batches of prompts decoded greedily;
- :mod:`.replay` — :func:`replay`, one teacher-forced pass that re-scores a decode.
"""

from ..tokens import count_latent_spans
from .greedy import GreedyOutput, greedy_decode
from .latent_loop import LatentGeneration, generate_with_latents, sample_next_token, span_counts_of
from .replay import ReplayOutput, replay

__all__ = [
    "GreedyOutput",
    "LatentGeneration",
    "ReplayOutput",
    "count_latent_spans",
    "generate_with_latents",
    "greedy_decode",
    "replay",
    "sample_next_token",
    "span_counts_of",
]
