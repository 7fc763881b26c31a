"""Interleaved latent decoding over the HF KV cache (docs/PAPER.md#decoding), and teacher-forced replay of what was decoded.

Per row, a vectorised state machine (no per-row Python work per step):

* text mode: the sampled token is emitted and its embedding is the next input; emitting ``<|latent_start|>``
  enters latent mode with a fresh budget;
* latent mode: the sampled token is discarded and ``<|latent|>`` is emitted; the next input embedding is the current
  final post-norm hidden state (through the projection head if the model has one). The span closes — ``<|latent_end|>``
  is emitted and embedded — when the budget is spent (both modes) or, in loose mode, when the sampled token is
  ``<|latent_end|>``;
* finished rows (after an EOS) emit padding and are ignored.

Only public ``transformers`` APIs are used: the Qwen3-VL model forward with ``inputs_embeds``, ``past_key_values``
(a ``DynamicCache``), ``attention_mask`` and explicit 4-row ``position_ids`` (text, t, h, w) built exactly as
``generate`` builds them, so greedy decoding without latents reproduces ``model.generate`` token for token.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers import DynamicCache

from .config import LatentConfig
from .model import FutureL1Model
from .tokens import count_latent_spans

VISION_KEYS = ("pixel_values", "image_grid_thw", "pixel_values_videos", "video_grid_thw")


@dataclass
class LatentGeneration:
    """Result of :func:`generate_with_latents` for a batch of B prompts and T new steps.

    - ``sequences`` [B, T]: emitted token ids (``pad`` after a row finished);
    - ``lengths`` [B]: number of emitted tokens per row (EOS included);
    - ``texts``: decoded new text per row with special tokens kept;
    - ``latents``: per row, the fp32 vectors fed at its ``<|latent|>`` positions, [n_i, H];
    - ``latent_mask`` [B, T]: positions where a latent vector (not a token embedding) was fed;
    - ``span_counts``: per row, the number of latents in each span, in order; a span still open when
      ``max_new_tokens`` ran out is included, so ``sum(span_counts[i]) == len(latents[i])`` always holds
      (:func:`fl1_core.tokens.count_latent_spans` on the text counts closed spans only);
    - ``forced_mask`` [B, T]: positions whose token was not sampled by the policy (``<|latent|>``, a budget-forced
      ``<|latent_end|>``, a forced initial ``<|latent_start|>``);
    - ``logprobs`` [B, T]: log-softmax(logits / temperature) of the emitted token at each step;
    - ``step_logits`` [B, T, V]: raw logits per step (only with ``return_logits=True``).
    """

    sequences: torch.Tensor
    lengths: torch.Tensor
    texts: list[str]
    latents: list[torch.Tensor]
    latent_mask: torch.Tensor
    span_counts: list[list[int]]
    forced_mask: torch.Tensor
    logprobs: torch.Tensor
    step_logits: torch.Tensor | None = None

    @property
    def valid_mask(self) -> torch.Tensor:
        """[B, T] True for emitted (non-padding) positions."""
        steps = torch.arange(self.sequences.shape[1], device=self.sequences.device)
        return steps.unsqueeze(0) < self.lengths.unsqueeze(1)

    @property
    def num_latents(self) -> list[int]:
        return [int(v.shape[0]) for v in self.latents]


def sample_next_token(
    logits: torch.Tensor,
    *,
    do_sample: bool,
    temperature: float,
    top_p: float,
    generator: torch.Generator | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pick the next token per row; return (token [B], log-softmax(logits / temperature) [B, V]).

    Greedy: argmax. Sampling: temperature, then nucleus filtering keeping the smallest prefix of the sorted
    distribution whose mass reaches ``top_p`` (at least one token), then a multinomial draw.
    """
    logits = logits.float()
    logprobs = F.log_softmax(logits / (temperature if do_sample else 1.0), dim=-1)
    if not do_sample:
        return logits.argmax(dim=-1), logprobs
    probs = logprobs.exp()
    if top_p < 1.0:
        sorted_p, order = probs.sort(dim=-1, descending=True)
        before = sorted_p.cumsum(dim=-1) - sorted_p  # mass strictly before each token
        sorted_p = sorted_p.masked_fill(before >= top_p, 0.0)
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_p)
    token = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
    return token, logprobs


def _vision_kwargs(inputs: dict) -> dict:
    return {k: inputs[k] for k in VISION_KEYS if inputs.get(k) is not None}


def _eos_ids(model: FutureL1Model, eos_token_id) -> torch.Tensor:
    eos = eos_token_id if eos_token_id is not None else model.base.generation_config.eos_token_id
    eos = [eos] if isinstance(eos, int) else list(eos or [])
    return torch.tensor(eos, dtype=torch.long, device=model.device)


@torch.no_grad()
def generate_with_latents(
    model: FutureL1Model,
    inputs: dict,
    *,
    max_new_tokens: int,
    latent_config: LatentConfig | None = None,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_p: float = 1.0,
    seed: int | None = None,
    eos_token_id: int | list[int] | None = None,
    return_logits: bool = False,
    tokenizer=None,
    suppress_token_ids: list[int] | None = None,
    latent_intervention=None,
) -> LatentGeneration:
    """Batched interleaved latent decoding (docs/PAPER.md#decoding) from processor ``inputs`` (left-padded prompts).

    ``latent_intervention(fed [B, H], index [B]) -> [B, H]`` replaces the vectors fed at latent slots (``index`` =
    how many latents each row was fed before this one): the audit's causal ablations. ``latents`` records what was
    actually fed.

    ``latent_config`` defaults to ``model.latent_config`` (budget: fixed → exactly ``max_latent_token``; loose →
    ``loose_cap`` or ``round(max_latent_token × loose_multiplier)``). ``seed`` makes sampling reproducible.
    ``suppress_token_ids`` can never be sampled; by default the vision placeholders ``<|image_pad|>`` and
    ``<|video_pad|>`` (a model that emitted one would make a teacher-forced replay read it as a vision slot).
    """
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    if do_sample and temperature <= 0:
        raise ValueError(f"temperature must be > 0 when sampling, got {temperature}")
    cfg = latent_config or model.latent_config
    latent_id, start_id, end_id = cfg.require_token_ids()
    budget, loose = cfg.decode_budget, cfg.budget_mode == "loose"
    device = model.device
    input_ids = inputs["input_ids"].to(device)
    attention_mask = inputs.get("attention_mask")
    attention_mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask.to(device)
    mm_types = inputs.get("mm_token_type_ids")
    vision = {k: v.to(device) for k, v in _vision_kwargs(inputs).items()}
    eos = _eos_ids(model, eos_token_id)
    pad_id = model.base.generation_config.pad_token_id
    pad_id = int(eos[0]) if pad_id is None else int(pad_id)
    if suppress_token_ids is None:
        suppress_token_ids = [model.config.image_token_id, model.config.video_token_id]
    suppressed = torch.tensor(suppress_token_ids, dtype=torch.long, device=device)
    generator = None
    if seed is not None:
        generator = torch.Generator(device=device).manual_seed(seed)

    batch = input_ids.shape[0]
    position_ids = model.position_ids(
        input_ids,
        attention_mask,
        None if mm_types is None else mm_types.to(device),
        vision.get("image_grid_thw"),
        vision.get("video_grid_thw"),
    )
    cache = DynamicCache(config=model.base.config.get_text_config())
    out = model.base.model(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids,
        past_key_values=cache,
        use_cache=True,
        mm_token_type_ids=None if mm_types is None else mm_types.to(device),
        **vision,
    )
    hidden = out.last_hidden_state[:, -1]
    next_pos = position_ids[:, :, -1:]
    embed = model.input_embeddings()

    in_latent = torch.zeros(batch, dtype=torch.bool, device=device)
    budget_left = torch.zeros(batch, dtype=torch.long, device=device)
    finished = torch.zeros(batch, dtype=torch.bool, device=device)
    lengths = torch.zeros(batch, dtype=torch.long, device=device)
    fed_count = torch.zeros(batch, dtype=torch.long, device=device)
    rec_tokens, rec_latent, rec_forced, rec_logp, rec_vec, rec_logits = [], [], [], [], [], []

    for step in range(max_new_tokens):
        logits = model.base.lm_head(hidden)
        if suppressed.numel():
            logits = logits.index_fill(-1, suppressed, float("-inf"))
        token, logprobs = sample_next_token(
            logits, do_sample=do_sample, temperature=temperature, top_p=top_p, generator=generator
        )
        forced_start = torch.zeros_like(finished)
        if step == 0 and cfg.force_initial_latent:
            forced_start = token != start_id
            token = torch.full_like(token, start_id)

        sampled_end = token == end_id
        spent = budget_left <= 0
        exit_now = in_latent & (spent | (sampled_end & loose))
        forced_end = exit_now & ~(sampled_end & loose)
        emit_latent = in_latent & ~exit_now
        emitted = torch.where(emit_latent, torch.full_like(token, latent_id), token)
        emitted = torch.where(exit_now, torch.full_like(token, end_id), emitted)
        emitted = torch.where(finished, torch.full_like(token, pad_id), emitted)
        active = ~finished
        emit_latent &= active

        entering = active & ~in_latent & (emitted == start_id)
        in_latent = (in_latent & ~exit_now) | entering
        budget_left = torch.where(entering, torch.full_like(budget_left, budget), budget_left - emit_latent.long())

        fed_latent = model.latent_feed(hidden)
        if latent_intervention is not None:
            fed_latent = latent_intervention(fed_latent, fed_count).to(fed_latent.dtype)
        fed_count += emit_latent.long()
        next_embeds = torch.where(emit_latent.unsqueeze(-1), fed_latent.to(hidden.dtype), embed(emitted))

        rec_tokens.append(emitted)
        rec_latent.append(emit_latent)
        rec_forced.append(active & (emit_latent | forced_end | forced_start))
        rec_logp.append(logprobs.gather(-1, emitted.unsqueeze(-1)).squeeze(-1))
        rec_vec.append(fed_latent.float())
        if return_logits:
            rec_logits.append(logits.float())
        lengths += active.long()
        finished |= active & torch.isin(emitted, eos)
        if bool(finished.all()) or step == max_new_tokens - 1:
            break

        attention_mask = torch.cat([attention_mask, attention_mask.new_ones(batch, 1)], dim=1)
        next_pos = next_pos + 1
        out = model.base.model(
            inputs_embeds=next_embeds.unsqueeze(1),
            attention_mask=attention_mask,
            position_ids=next_pos,
            past_key_values=cache,
            use_cache=True,
        )
        hidden = out.last_hidden_state[:, -1]

    sequences = torch.stack(rec_tokens, dim=1)
    latent_mask = torch.stack(rec_latent, dim=1)
    vectors = torch.stack(rec_vec, dim=1)
    latents = [vectors[i][latent_mask[i]] for i in range(batch)]
    tok = tokenizer or getattr(model, "processor", None)
    tok = getattr(tok, "tokenizer", tok)
    texts = [
        tok.decode(sequences[i, : int(lengths[i])].tolist(), skip_special_tokens=False) if tok is not None else ""
        for i in range(batch)
    ]
    span_counts = [span_counts_of(sequences[i, : int(lengths[i])].tolist(), start_id, latent_id, end_id) for i in range(batch)]
    return LatentGeneration(
        sequences=sequences,
        lengths=lengths,
        texts=texts,
        latents=latents,
        latent_mask=latent_mask,
        span_counts=span_counts,
        forced_mask=torch.stack(rec_forced, dim=1),
        logprobs=torch.stack(rec_logp, dim=1),
        step_logits=torch.stack(rec_logits, dim=1) if return_logits else None,
    )


def span_counts_of(ids: list[int], start_id: int, latent_id: int, end_id: int) -> list[int]:
    """Latents per span of a generated token sequence, a trailing span left open included."""
    counts, current = [], None
    for t in ids:
        if t == start_id:
            current = 0
        elif t == latent_id and current is not None:
            current += 1
        elif t == end_id and current is not None:
            counts.append(current)
            current = None
    return counts + [current] if current is not None else counts


@dataclass
class ReplayOutput:
    """Teacher-forced re-scoring of generated tokens: per-step log-probs [B, T], final hidden states [B, T, H] at the
    positions that predicted each generated token, the valid-token mask; logits [B, T, V] only when asked
    (``return_logits``), entropy [B, T] only when asked (``with_entropy``)."""

    logprobs: torch.Tensor
    logits: torch.Tensor | None
    hidden_states: torch.Tensor
    mask: torch.Tensor
    entropy: torch.Tensor | None = None


def unwrap_model(model):
    """The :class:`FutureL1Model` inside a DDP / FSDP / torch.compile wrapper (the model itself otherwise)."""
    while hasattr(model, "module") and not isinstance(model, FutureL1Model):
        model = model.module
    return getattr(model, "_orig_mod", model)


def replay(
    model: FutureL1Model,
    inputs: dict,
    generation: LatentGeneration,
    *,
    temperature: float = 1.0,
    replay_latents: bool = True,
    suppress_token_ids: list[int] | None = None,
    return_logits: bool = False,
    with_entropy: bool = False,
    chunk_size: int = 1024,
) -> ReplayOutput:
    """Recompute log-probs of ``generation`` in ONE pass over prompt + generated tokens.

    With ``replay_latents`` the recorded latent vectors are put back as input embeddings at the positions where
    decoding fed them, so every position sees exactly the context it was sampled in (equal to decoding up to
    float error). Without it (the release's behaviour) latent positions see the static ``<|latent|>`` embedding.
    Gradients flow (call under ``torch.no_grad()`` for old/reference log-probs). ``suppress_token_ids`` must match
    the decoding call (default: the vision placeholders), so log-probs are over the distribution that was sampled.

    Log-probs (and ``with_entropy`` the per-token entropy, without gradient) come from
    :func:`fl1_core.losses.token_logprobs`, ``chunk_size`` positions at a time, so the fp32 ``[B, T, V]`` logits are
    never held (about 10 GB for Qwen3-VL-8B at B = 8, T = 2,000). ``return_logits`` also returns them (tests and
    diagnostics on small models only).
    """
    wrapper, model = model, unwrap_model(model)  # a DDP/FSDP wrapper must see the forward to reduce gradients
    device = model.device
    prompt_ids = inputs["input_ids"].to(device)
    prompt_mask = inputs.get("attention_mask")
    prompt_mask = torch.ones_like(prompt_ids) if prompt_mask is None else prompt_mask.to(device)
    new_ids = generation.sequences.to(device)
    new_mask = generation.valid_mask.to(device)
    n_new = new_ids.shape[1]
    mm_types = inputs.get("mm_token_type_ids")
    vision = {k: v.to(device) for k, v in _vision_kwargs(inputs).items()}

    prompt_pos = model.position_ids(
        prompt_ids,
        prompt_mask,
        None if mm_types is None else mm_types.to(device),
        vision.get("image_grid_thw"),
        vision.get("video_grid_thw"),
    )
    steps = torch.arange(1, n_new + 1, device=device).view(1, 1, -1)
    position_ids = torch.cat([prompt_pos, prompt_pos[:, :, -1:] + steps], dim=2)
    ids = torch.cat([prompt_ids, new_ids], dim=1)
    attention_mask = torch.cat([prompt_mask, new_mask.to(prompt_mask.dtype)], dim=1)

    slots, vectors = None, None
    if replay_latents and any(v.numel() for v in generation.latents):
        slots = torch.cat([torch.zeros_like(prompt_mask, dtype=torch.bool), generation.latent_mask.to(device)], dim=1)
        vectors = torch.cat([v for v in generation.latents if v.numel()], dim=0).to(device)
    if suppress_token_ids is None:
        suppress_token_ids = [model.config.image_token_id, model.config.video_token_id]
    out = wrapper(input_ids=ids, attention_mask=attention_mask, position_ids=position_ids, latent_slots=slots,
                  latent_vectors=vectors, score_targets=new_ids,
                  score=dict(temperature=temperature, suppress_token_ids=suppress_token_ids, chunk_size=chunk_size,
                             with_entropy=with_entropy), **vision)
    hidden, logprobs, entropy = out.hidden_states, out.token_logprobs, out.entropy
    head = model.base.lm_head
    logits = None
    if return_logits:
        logits = head(hidden).float()
        if suppress_token_ids:
            logits = logits.index_fill(-1, torch.tensor(suppress_token_ids, device=logits.device), float("-inf"))
    return ReplayOutput(logprobs=logprobs * new_mask, logits=logits, hidden_states=hidden, mask=new_mask,
                        entropy=entropy)


@dataclass
class GreedyOutput:
    """One prompt's greedy decode: its text (special tokens kept) and the latents per span."""

    text: str
    span_counts: list[int]


@torch.no_grad()
def greedy_decode(
    model: FutureL1Model,
    processor,
    prompts: list,
    *,
    system_prompt: str = "interleaved",
    max_new_tokens: int = 256,
    batch_size: int = 16,
    latent_config: LatentConfig | None = None,
    encode=None,
    progress: bool = False,
    desc: str = "greedy decode",
    generate=None,
) -> list[GreedyOutput]:
    """Greedy interleaved decoding of many prompts in batches: the one loop every evaluation uses.

    ``prompts`` are :class:`fl1_core.data.collator.PromptExample` s, turned into tensors by
    :func:`fl1_core.data.collator.build_prompt_inputs` (the one prompt-to-tensor path), or any objects when
    ``encode(batch) -> inputs`` is given (RL records in the rollout format). Inputs move to the model's device; the
    model is put in eval mode and restored. ``generate`` replaces :func:`generate_with_latents` (a caller's own
    reference to it, so tests can script responses). Returns one :class:`GreedyOutput` per prompt, in order.
    """
    from tqdm.auto import tqdm

    from .data.collator import build_prompt_inputs
    from .placement import to_device

    was_training = model.training
    model.eval()
    out: list[GreedyOutput] = []
    bar = tqdm(total=len(prompts), desc=desc, disable=not progress, leave=False)
    try:
        for start in range(0, len(prompts), batch_size):
            part = prompts[start : start + batch_size]
            inputs = encode(part) if encode is not None else build_prompt_inputs(processor, part, system_prompt)
            inputs = to_device(inputs, model.device)
            gen = (generate or generate_with_latents)(model, inputs, max_new_tokens=max_new_tokens,
                                                      latent_config=latent_config, do_sample=False,
                                                      tokenizer=processor.tokenizer)
            counts = getattr(gen, "span_counts", None) or [[] for _ in gen.texts]
            out.extend(GreedyOutput(t, list(c)) for t, c in zip(gen.texts, counts))
            bar.update(len(part))
    finally:
        bar.close()
        model.train(was_training)
    return out


__all__ = [
    "GreedyOutput",
    "greedy_decode",
    "LatentGeneration",
    "ReplayOutput",
    "count_latent_spans",
    "generate_with_latents",
    "replay",
    "sample_next_token",
    "span_counts_of",
]
