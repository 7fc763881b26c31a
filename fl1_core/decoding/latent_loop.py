"""Interleaved latent decoding (docs/PAPER.md#decoding) over a preallocated KV cache: the one batched decode loop of the library.

Per row, a vectorised state machine (no per-row Python work per step):

* text mode: the sampled token is emitted and its embedding is the next input; emitting ``<|latent_start|>``
  enters latent mode with a fresh budget;
* latent mode: the sampled token is discarded and ``<|latent|>`` is emitted; the next input embedding is
  ``model.latent_feed(hidden)`` (the final post-norm hidden state, through the projection head if the model has one;
  the ``<|latent|>`` embedding for the pause control), plus the slot's cell of the row's last question image for an
  anchored model (:mod:`fl1_core.latent_anchor`). The span closes — ``<|latent_end|>`` is emitted and embedded —
  when the budget is spent (both modes) or, in loose mode, when the sampled token is ``<|latent_end|>``;
* finished rows (after an EOS) emit padding and are ignored.

What a step costs is only the model: the prompt is prefilled once and shared by its samples
(:func:`~fl1_core.decoding.prefill.prefill_shared`), keys and values go into a preallocated cache written in place,
records go into preallocated buffers, the step is CUDA-graph ready (:func:`~fl1_core.decoding.prefill.step_function`)
and the host is asked whether every row has finished only every ``check_every`` steps. Only public ``transformers``
APIs are used (its cache classes, and the language model's forward with ``inputs_embeds``, ``past_key_values``,
``attention_mask`` and 4-row ``position_ids`` built as ``generate`` builds them), so greedy decoding without latents
reproduces ``model.generate`` token for token.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..config import LatentConfig
from ..latent_anchor import check_decode_budget, question_anchors, step_anchors
from ..model import FutureL1Model
from .prefill import COMPILE_BUCKET, decode_step, prefill_shared, sample_counts, step_function
from .token_embedding import decoding_embeddings


@dataclass
class LatentGeneration:
    """Result of :func:`generate_with_latents` for B rows (the samples of each prompt, consecutive) and T new steps.

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
    num_samples: int | Sequence[int] = 1,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_p: float = 1.0,
    seed: int | None = None,
    eos_token_id: int | list[int] | None = None,
    return_logits: bool = False,
    tokenizer=None,
    suppress_token_ids: list[int] | None = None,
    latent_intervention=None,
    check_every: int = 16,
    compile_step: bool = False,
) -> LatentGeneration:
    """Batched interleaved latent decoding (docs/PAPER.md#decoding) of the P left-padded prompts in processor ``inputs``.

    ``num_samples`` rows per prompt (an int, or one count per prompt): the prompt is prefilled once (vision tower
    included) and its samples start from copies of its cache; row ``sum(counts[:p]) + j`` is sample j of prompt p.

    Termination: the loop runs at most ``max_new_tokens`` steps and asks the host whether every row has finished
    only every ``check_every`` steps (one sync per ``check_every`` steps; ``0`` = never, a fixed budget). Steps
    after the last row finished emit padding; the result is cut to ``T = max(lengths)``, as if the loop had stopped
    at once. ``compile_step`` compiles the step with CUDA graphs when the model is on CUDA (eager elsewhere).

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
    counts = sample_counts(num_samples, inputs["input_ids"].shape[0])
    eos = _eos_ids(model, eos_token_id)
    pad_id = model.base.generation_config.pad_token_id
    pad_id = int(eos[0]) if pad_id is None else int(pad_id)
    if suppress_token_ids is None:
        suppress_token_ids = [model.config.image_token_id, model.config.video_token_id]
    suppressed = torch.tensor(suppress_token_ids, dtype=torch.long, device=device)
    generator = None if seed is None else torch.Generator(device=device).manual_seed(seed)
    step_fn = step_function(device, compile_step)
    head = model.base.lm_head

    anchors = None  # [R, K, H]: each row's last question image, when predictions are changes from it
    if model.anchored:
        anchors = question_anchors(model, inputs["input_ids"], inputs.get("pixel_values"), inputs.get("image_grid_thw"))
        anchors = anchors.repeat_interleave(torch.tensor(counts, device=anchors.device), dim=0)
        check_decode_budget(anchors, budget, loose)

    with decoding_embeddings(model) as embed:
        state = prefill_shared(model, inputs, counts, max_new_tokens,
                               bucket=1 if step_fn is decode_step else COMPILE_BUCKET)
        hidden, cache = state.hidden, state.cache
        rows = hidden.shape[0]
        language_model = model.base.model.language_model

        def zeros(dtype: torch.dtype, *shape: int) -> torch.Tensor:
            return torch.zeros(rows, *shape, dtype=dtype, device=device)

        in_latent, finished = zeros(torch.bool), zeros(torch.bool)
        budget_left, lengths, fed_count = zeros(torch.long), zeros(torch.long), zeros(torch.long)
        sequences = torch.full((rows, max_new_tokens), pad_id, dtype=torch.long, device=device)
        latent_mask, forced_mask = zeros(torch.bool, max_new_tokens), zeros(torch.bool, max_new_tokens)
        logprob_buf = zeros(torch.float32, max_new_tokens)
        vectors = None  # [R, T, H] in the dtype of what is fed, allocated at the first step
        logits_buf = zeros(torch.float32, max_new_tokens, head.out_features) if return_logits else None
        latent_fill, end_fill = torch.full_like(lengths, latent_id), torch.full_like(lengths, end_id)
        pad_fill, budget_fill = torch.full_like(lengths, pad_id), torch.full_like(lengths, budget)
        no_force = zeros(torch.bool)

        for step in range(max_new_tokens):
            logits = head(hidden)
            if suppressed.numel():
                logits = logits.index_fill(-1, suppressed, float("-inf"))
            token, logprobs = sample_next_token(
                logits, do_sample=do_sample, temperature=temperature, top_p=top_p, generator=generator
            )
            forced_start = no_force
            if step == 0 and cfg.force_initial_latent:
                forced_start = token != start_id
                token = torch.full_like(token, start_id)

            sampled_end = token == end_id
            exit_now = in_latent & ((budget_left <= 0) | (sampled_end & loose))
            forced_end = exit_now & ~(sampled_end & loose)
            active = ~finished
            emit_latent = in_latent & ~exit_now & active
            emitted = torch.where(in_latent & ~exit_now, latent_fill, token)
            emitted = torch.where(exit_now, end_fill, emitted)
            emitted = torch.where(finished, pad_fill, emitted)

            entering = active & ~in_latent & (emitted == start_id)
            in_latent = (in_latent & ~exit_now) | entering
            budget_left = torch.where(entering, budget_fill, budget_left - emit_latent.long())

            fed_latent = model.latent_feed(hidden)
            if anchors is not None:  # slot index in the span: budget_left was just counted down for this slot
                fed_latent = fed_latent + step_anchors(anchors, budget - budget_left - 1).to(fed_latent.dtype)
            if latent_intervention is not None:
                fed_latent = latent_intervention(fed_latent, fed_count).to(fed_latent.dtype)
            fed_count += emit_latent.long()

            sequences[:, step] = emitted
            latent_mask[:, step] = emit_latent
            forced_mask[:, step] = active & (emit_latent | forced_end | forced_start)
            logprob_buf[:, step] = logprobs.gather(-1, emitted.unsqueeze(-1)).squeeze(-1)
            if vectors is None:
                vectors = zeros(fed_latent.dtype, max_new_tokens, fed_latent.shape[-1])
            vectors[:, step] = fed_latent
            if logits_buf is not None:
                logits_buf[:, step] = logits
            lengths += active.long()
            finished |= active & torch.isin(emitted, eos)
            if step == max_new_tokens - 1:
                break
            if check_every and (step + 1) % check_every == 0 and bool(finished.all()):  # one sync per check_every
                break
            next_embeds = torch.where(emit_latent.unsqueeze(-1), fed_latent.to(hidden.dtype), embed(emitted))
            window = cache.set_window(state.prompt_width + step + 1)  # the slots written after this step
            hidden = step_fn(language_model, next_embeds, state.last_position + (step + 1), state.step_mask(window),
                             cache)

    width = int(lengths.max())
    sequences, latent_mask = sequences[:, :width], latent_mask[:, :width]
    host_seq, host_len = sequences.cpu(), lengths.cpu().tolist()
    latents = [vectors[i, :width][latent_mask[i]].float() for i in range(rows)]
    tok = tokenizer or getattr(model, "processor", None)
    tok = getattr(tok, "tokenizer", tok)
    ids = [host_seq[i, : host_len[i]].tolist() for i in range(rows)]
    return LatentGeneration(
        sequences=sequences,
        lengths=lengths,
        texts=[tok.decode(r, skip_special_tokens=False) if tok is not None else "" for r in ids],
        latents=latents,
        latent_mask=latent_mask,
        span_counts=[span_counts_of(r, start_id, latent_id, end_id) for r in ids],
        forced_mask=forced_mask[:, :width],
        logprobs=logprob_buf[:, :width],
        step_logits=logits_buf[:, :width] if logits_buf is not None else None,
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
