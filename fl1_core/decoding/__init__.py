"""Latent decoding (docs/PAPER.md#decoding): the batched decode loop over a static KV cache, its prefill shared by a
prompt's samples, decoding a list of prompts batch by batch, and teacher-forced replay of what was decoded.

- :mod:`.latent_loop` — :func:`generate_with_latents`, the one decode loop (greedy or sampled; RL rollouts,
  evaluation, held-out scoring, the audit, curation);
- :mod:`.prefill` — prefill once per prompt into a preallocated cache, the fixed-shape (CUDA-graph ready) step;
- :mod:`.token_embedding` — token embeddings without peft's per-call copy of the embedding matrix;
- :mod:`.batches` — :func:`decode_batches`, a list of prompts through the one prompt path and the one loop;
- :mod:`.replay` — :func:`replay`, one teacher-forced pass that re-scores a decode.
"""

from ..tokens import count_latent_spans
from .batches import DecodedBatch, decode_batches, decoded_texts
from .latent_loop import LatentGeneration, generate_with_latents, sample_next_token, span_counts_of
from .replay import ReplayOutput, replay

__all__ = [
    "DecodedBatch",
    "LatentGeneration",
    "ReplayOutput",
    "count_latent_spans",
    "decode_batches",
    "decoded_texts",
    "generate_with_latents",
    "replay",
    "sample_next_token",
    "span_counts_of",
]
