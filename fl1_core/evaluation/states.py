"""Hidden-state groups for the latent t-SNE figure (docs/PAPER.md#paper-numbers): prompt text states, prompt vision states and the
latent vectors of each span index, from one decode per prompt."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..data.collator import PromptExample, build_prompt_inputs
from ..decoding import generate_with_latents


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
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """``{"prompt text": [N,H], "prompt vision": [M,H], "latent span 1": …, "latent span k": …}``.

    Prompt states are the final post-norm hidden states of a prompt's text tokens and vision tokens (up to
    ``per_prompt_tokens`` of each per prompt, evenly spaced, so every prompt counts equally); latent groups hold the
    vectors fed at the latent positions of span 1, 2, … (span ``max_spans`` and later ones share the group ``latent span {max_spans}+``).
    """
    rng = np.random.default_rng(seed)
    groups: dict[str, list[np.ndarray]] = {"prompt text": [], "prompt vision": []}
    for start in range(0, len(prompts), batch_size):
        chunk = list(prompts[start : start + batch_size])
        inputs = build_prompt_inputs(processor, chunk, system_prompt)
        inputs = {k: v.to(model.device) if torch.is_tensor(v) else v for k, v in inputs.items()}
        hidden = model(**inputs, hidden_only=True).hidden_states.float()
        types = inputs.get("mm_token_type_ids", torch.zeros_like(inputs["input_ids"]))
        valid = inputs["attention_mask"].bool()
        for row in range(hidden.shape[0]):
            for name, mask in (("prompt text", valid[row] & (types[row] == 0)), ("prompt vision", valid[row] & (types[row] > 0))):
                idx = mask.nonzero().squeeze(-1).cpu().numpy()
                if idx.size:
                    take = idx[np.linspace(0, idx.size - 1, min(per_prompt_tokens, idx.size)).round().astype(int)]
                    groups[name].append(hidden[row, take].cpu().numpy())
        gen = generate_with_latents(model, inputs, max_new_tokens=max_new_tokens, seed=int(rng.integers(1 << 31)))
        for vectors, counts in zip(gen.latents, gen.span_counts):
            offset = 0
            for k, c in enumerate(counts):
                name = f"latent span {k + 1}" if k + 1 < max_spans else f"latent span {max_spans}+"
                groups.setdefault(name, []).append(vectors[offset : offset + c].cpu().numpy())
                offset += c
    return {k: np.concatenate(v) for k, v in groups.items() if v and sum(len(x) for x in v)}
