"""The SFT format report (greedy decoding of held-out prompts) and the hold-out split."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..config import LatentConfig
from ..data.examples import rl_prompt, text_only_prompt
from ..data.records import RLRecord, SFTRecord
from ..model import FutureL1Model
from ..answers import is_correct, reference_letter


logger = logging.getLogger(__name__)

@dataclass
class FormatReport:
    """Greedy ``generate_with_latents`` on held-out prompts: format-valid rate (``format_reward``), spans per response,
    answer exact-match rate and a few sample outputs."""

    n: int
    format_valid_rate: float
    mean_spans: float
    mean_latents_per_span: float
    answer_accuracy: float
    samples: list[str] = field(default_factory=list, repr=False)


def _held_out_prompt(record: SFTRecord | RLRecord):
    """An SFT record's question without its future hints, or an RL-format record's prompt."""
    return text_only_prompt(record) if isinstance(record, SFTRecord) else rl_prompt(record)


def format_report(
    model: FutureL1Model,
    processor,
    records: Sequence[SFTRecord | RLRecord],
    n: int = 32,
    max_new_tokens: int = 256,
    *,
    batch_size: int = 16,
    system_prompt: str = "interleaved",
    latent_config: LatentConfig | None = None,
) -> FormatReport:
    """Greedy-decode the first ``n`` records' prompts (question frames + question) and score the outputs. Records
    are SFT records (their question without the future hints) or RL-format records (held-out MCQ items).

    format_valid_rate = mean ``format_reward(text)``; mean_spans = mean number of closed latent spans per response.
    ``latent_config`` overrides the model's decoding budget (e.g. ``budget_mode="fixed"``).
    """
    from ..decoding import decode_batches
    from ..rewards import format_reward

    records = list(records)[:n]
    batches = decode_batches(model, processor, records, prompt_of=_held_out_prompt, batch_size=batch_size,
                             system_prompt=system_prompt, max_new_tokens=max_new_tokens, latent_config=latent_config)
    outs = [(text, counts) for b in batches for text, counts in zip(b.generation.texts, b.generation.span_counts)]
    valid, spans, latents, correct, samples = [], [], [], [], []
    for rec, (text, span_counts) in zip(records, outs):
        valid.append(format_reward(text))
        spans.append(len(span_counts))
        latents.extend(span_counts)
        correct.append(float(is_correct(text, rec.answer, mcq=reference_letter(rec.answer) is not None)))
        if len(samples) < 4:
            samples.append(text)
    k = max(len(valid), 1)
    return FormatReport(
        n=len(valid),
        format_valid_rate=sum(valid) / k,
        mean_spans=sum(spans) / k,
        mean_latents_per_span=(sum(latents) / len(latents)) if latents else 0.0,
        answer_accuracy=sum(correct) / k,
        samples=samples,
    )


def split_holdout(records: Sequence[SFTRecord], fraction: float = 0.1, seed: int = 0) -> tuple[list, list]:
    """Split records by clip (``meta.clip_id``, else ``video``) so no clip is in both parts: (train, held-out)."""
    def clip(r: SFTRecord) -> str:
        return str((r.meta or {}).get("clip_id") or r.video or r.id)

    clips = sorted({clip(r) for r in records})
    order = np.random.default_rng([seed, 7]).permutation(len(clips))
    held = {clips[i] for i in order[: max(1, int(round(fraction * len(clips))))]}
    return [r for r in records if clip(r) not in held], [r for r in records if clip(r) in held]

