"""Input embeddings for decoding without peft's per-call copy of the embedding matrix.

Under LoRA the three latent-token rows train through peft's trainable tokens, whose embedding computes
``W' = W.index_copy(0, idx, Δ)`` — a full [V, H] copy — at every call (about 1.2 GB for Qwen3-VL-8B in bf16). For
the duration of a decode, :func:`decoding_embeddings` puts in its place a module that looks the base rows up and
overwrites only the trainable ones:

    e(t) = Δ[k]  if t == idx[k]  else  W[t]

which is bitwise what peft returns. Outside peft (or with its adapters disabled or merged) the model's own
embedding is used unchanged.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from ..model import FutureL1Model


class RowOverrideEmbedding(nn.Module):
    """``W[t]``, except the rows ``indices`` that read ``deltas`` (the trainable tokens' current values)."""

    def __init__(self, weight: torch.Tensor, indices: torch.Tensor, deltas: torch.Tensor):
        super().__init__()
        self.base_weight = weight
        self.indices = indices
        self.deltas = deltas.to(weight.dtype)
        self._merged: torch.Tensor | None = None

    @property
    def weight(self) -> torch.Tensor:
        """The merged [V, H] matrix, built once on first use (only a pause-control model reads its row)."""
        if self._merged is None:
            self._merged = self.base_weight.index_copy(0, self.indices, self.deltas)
        return self._merged

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        out = F.embedding(ids, self.base_weight)
        hit = ids.unsqueeze(-1) == self.indices  # [..., k]
        rows = self.deltas[hit.long().argmax(-1)]
        return torch.where(hit.any(-1, keepdim=True), rows, out)


def _trainable_tokens_layer(embedding: nn.Module):
    """peft's trainable-tokens layer inside ``embedding`` (None when peft is not in use)."""
    other = sys.modules.get("peft.utils.other")  # a model can carry peft layers only once peft was imported
    if other is None or not isinstance(embedding, other.TrainableTokensWrapper):
        return None
    return embedding.token_adapter


def fast_embedding(model: FutureL1Model) -> nn.Module:
    """The module decoding embeds tokens with: the model's own embedding, or a :class:`RowOverrideEmbedding` in
    place of an active, unmerged peft trainable-tokens embedding."""
    embedding = model.input_embeddings()
    layer = _trainable_tokens_layer(embedding)
    if layer is None or layer.merged:
        return embedding
    if layer.disable_adapters or not layer.active_adapters:
        return layer.base_layer
    weight = layer.base_layer.weight
    names = [a for a in layer.active_adapters if a in layer.token_indices]
    indices = torch.tensor([i for a in names for i in layer.token_indices[a]], dtype=torch.long, device=weight.device)
    deltas = torch.cat([layer.trainable_tokens_delta[a].detach() for a in names], dim=0)
    return RowOverrideEmbedding(weight.detach(), indices, deltas)


@contextlib.contextmanager
def decoding_embeddings(model: FutureL1Model) -> Iterator[nn.Module]:
    """Within the block the model (prefill included) embeds with :func:`fast_embedding`; yields that module."""
    own = model.input_embeddings()
    fast = fast_embedding(model)
    if fast is own:
        yield own
        return
    model.base.set_input_embeddings(fast)
    try:
        yield fast
    finally:
        model.base.set_input_embeddings(own)
