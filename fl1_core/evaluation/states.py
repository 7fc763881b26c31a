"""Hidden-state groups for the latent t-SNE figure (docs/PAPER.md#paper-numbers): prompt text states, prompt vision states and the
latent vectors of each span index, from one greedy decode per prompt."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..data.collator import PromptExample
from ..decoding import decode_batches


@torch.no_grad()
def collect_state_groups(
    model,
    processor,
    prompts: Sequence[PromptExample],
    *,
    max_new_tokens: int = 96,
    batch_size: int = 8,
    max_spans: int = 3,
    per_prompt_tokens: int = 8,
    system_prompt: str = "interleaved",
) -> dict[str, np.ndarray]:
    """``{"prompt text": [N,H], "prompt vision": [M,H], "latent span 1": …, "latent span k": …}``.

    Prompt states are the final post-norm hidden states of a prompt's text tokens and vision tokens (up to
    ``per_prompt_tokens`` of each per prompt, evenly spaced, so every prompt counts equally); latent groups hold the
    vectors fed at the latent positions of span 1, 2, … (span ``max_spans`` and later ones share the group ``latent span {max_spans}+``).
    """
    groups: dict[str, list[np.ndarray]] = {"prompt text": [], "prompt vision": []}
    batches = decode_batches(model, processor, prompts, batch_size=batch_size, system_prompt=system_prompt,
                             max_new_tokens=max_new_tokens)
    for batch in batches:
        inputs, gen = batch.inputs, batch.generation
        hidden = model(**inputs, hidden_only=True).hidden_states.float()
        types = inputs.get("mm_token_type_ids", torch.zeros_like(inputs["input_ids"]))
        valid = inputs["attention_mask"].bool()
        for row in range(hidden.shape[0]):
            for name, mask in (("prompt text", valid[row] & (types[row] == 0)), ("prompt vision", valid[row] & (types[row] > 0))):
                idx = mask.nonzero().squeeze(-1).cpu().numpy()
                if idx.size:
                    take = idx[np.linspace(0, idx.size - 1, min(per_prompt_tokens, idx.size)).round().astype(int)]
                    groups[name].append(hidden[row, take].cpu().numpy())
        for vectors, counts in zip(gen.latents, gen.span_counts):
            offset = 0
            for k, c in enumerate(counts):
                name = f"latent span {k + 1}" if k + 1 < max_spans else f"latent span {max_spans}+"
                groups.setdefault(name, []).append(vectors[offset : offset + c].cpu().numpy())
                offset += c
    return {k: np.concatenate(v) for k, v in groups.items() if v and sum(len(x) for x in v)}
