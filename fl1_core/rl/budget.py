"""The rollout token budget read off the data: how long the answers the SFT stage taught are.

A world RL record carries the chain the generator writes for its question (``meta.reference_thoughts`` and
``meta.reference_spans``). Its length in tokens is that of the SFT-format response, each span counted as
``<|latent_start|>`` + K latents + ``<|latent_end|>`` (K = the decode budget per span):

    budget = ceil(quantile_q({ len(tokens(assistant_text(thoughts_r, [K] · spans_r, answer_r))) : r }))

A budget below it truncates the long chains, and a truncated rollout scores 0, so RL would learn to cut chains
short rather than to answer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from fl1_core.data.collator import assistant_text
from fl1_core.data.records import RLRecord


def reference_response_lengths(records: Sequence[RLRecord], tokenizer: Any, latents_per_span: int) -> list[int]:
    """Token lengths of the reference SFT-format responses of the records that carry one (``meta.reference_*``)."""
    if latents_per_span < 1:
        raise ValueError(f"latents_per_span must be >= 1, got {latents_per_span}")
    texts = []
    for rec in records:
        meta = rec.meta or {}
        thoughts = meta.get("reference_thoughts")
        if thoughts is None:
            continue
        spans = int(meta.get("reference_spans", max(0, len(thoughts) - 1)))
        texts.append(assistant_text(list(thoughts), [latents_per_span] * spans, rec.answer))
    return [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]] if texts else []


def data_token_budget(records: Sequence[RLRecord], tokenizer: Any, latents_per_span: int,
                      quantile: float = 0.99) -> int:
    """``max_new_tokens`` from the data (module docstring); an error when no record carries its reference chain."""
    if not 0.0 < quantile <= 1.0:
        raise ValueError(f"quantile must be in (0, 1], got {quantile}")
    lengths = reference_response_lengths(records, tokenizer, latents_per_span)
    if not lengths:
        raise ValueError("token_budget='data' needs RL records with meta.reference_thoughts (world RL records have "
                         "them); set token_budget='fixed' and max_new_tokens for other data")
    return int(math.ceil(float(np.quantile(lengths, quantile))))
