"""The Future-L1 model: a thin composition wrapper around HF ``Qwen3VLForConditionalGeneration`` (docs/PAPER.md#latent-sft).

Nothing in ``transformers`` is patched. The wrapper owns the base model, the :class:`LatentConfig` and the optional
latent projection head, and implements the one-pass teacher-forced latent forward:

* the input embedding at every ``<|latent|>`` position is the ground-truth embedding of a future frame (frozen
  vision encoder + 2x2 merger output, one latent per merged token in raster order, no deepstack at latent slots);
* latent slots are text tokens for M-RoPE (1-D positions);
* loss = CE + λ · MSE (or 1 − cos): CE over supervised assistant tokens except ``<|latent|>``; MSE between the final
  post-norm hidden state at t (through the head if any) and the latent input embedding at t + 1, for every t + 1
  that is a ``<|latent|>`` position.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoProcessor, Qwen3VLForConditionalGeneration, Qwen3VLProcessor

from . import tokens as T
from .checkpoints.adapter_folder import adapter_base_path, is_adapter_dir, load_adapter
from .checkpoints.model_folder import HEAD_FILE
from .config import CONFIG_KEY, SAMPLING_LOSSES, LatentConfig
from .latent_anchor import question_anchors, slot_anchors
from .losses import causal_ce_loss, latent_alignment_loss, latent_sft_loss, token_logprobs

logger = logging.getLogger(__name__)


class LatentProjectionHead(nn.Module):
    """LayerNorm → Linear(H→D) → SwiGLU(D) → Linear(D→H): ``out = W_o (silu(W_g x̂) ⊙ W_u x̂)`` with x̂ = W_i LN(x)."""

    def __init__(self, hidden_size: int, head_dim: int = 2048):
        super().__init__()
        self.norm = nn.LayerNorm(hidden_size)
        self.proj_in = nn.Linear(hidden_size, head_dim)
        self.gate = nn.Linear(head_dim, head_dim)
        self.up = nn.Linear(head_dim, head_dim)
        self.proj_out = nn.Linear(head_dim, hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.proj_in(self.norm(x))
        return self.proj_out(F.silu(self.gate(h)) * self.up(h))


@dataclass
class FutureL1Output:
    """Loss terms (``None`` without labels), logits and final post-norm hidden states of a forward."""

    loss: torch.Tensor | None
    ce_loss: torch.Tensor | None
    latent_loss: torch.Tensor | None
    logits: torch.Tensor | None  # None with hidden_only
    hidden_states: torch.Tensor
    num_latent_pairs: int = 0
    token_logprobs: torch.Tensor | None = None  # replay scoring (``score_targets``): log π(y_t) [B, T]
    entropy: torch.Tensor | None = None  # and, when asked, H_t [B, T] (no gradient)
    latent_inputs: torch.Tensor | None = None  # [N, H] the vectors the (first) teacher-forced pass fed at latent slots


class FutureL1Model(nn.Module):
    """Qwen3-VL + latent reasoning. ``base`` is an unmodified ``Qwen3VLForConditionalGeneration``."""

    def __init__(self, base: Qwen3VLForConditionalGeneration, latent_config: LatentConfig):
        super().__init__()
        latent_config.require_token_ids()
        self.base = base
        self.latent_config = latent_config
        hidden = base.config.get_text_config().hidden_size
        self.latent_head = LatentProjectionHead(hidden, latent_config.head_dim) if latent_config.projection_head else None
        self._sync_config()

    # ------------------------------------------------------------------ basics
    @property
    def config(self):
        return self.base.config

    @property
    def device(self) -> torch.device:
        return next(self.base.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return self.base.lm_head.weight.dtype

    def _sync_config(self) -> None:
        setattr(self.base.config, CONFIG_KEY, self.latent_config.to_dict())

    def input_embeddings(self) -> nn.Embedding:
        return self.base.get_input_embeddings()

    def get_input_embeddings(self) -> nn.Module:
        """The base's token embedding (FSDP auto-wrap looks it up here to shard it as its own unit)."""
        return self.base.get_input_embeddings()

    def get_output_embeddings(self) -> nn.Module:
        """The base's ``lm_head`` (FSDP auto-wrap shards it with the final norm as one unit)."""
        return self.base.get_output_embeddings()

    def project_latent(self, hidden: torch.Tensor) -> torch.Tensor:
        """The vector fed back / compared to the target: the hidden state, through the head if one is used."""
        return self.latent_head(hidden) if self.latent_head is not None else hidden

    @property
    def pauses(self) -> bool:
        """True for the pause-token control (``LatentConfig.latent_input == "pause"``)."""
        return self.latent_config.latent_input == "pause"

    @property
    def anchored(self) -> bool:
        """True when predictions are changes from the last question image (``LatentConfig.latent_anchor``)."""
        return self.latent_config.latent_anchor == "last_image" and not self.pauses

    def latent_feed(self, hidden: torch.Tensor) -> torch.Tensor:
        """What decoding feeds at a latent slot given the last hidden states [B, H]: ``project_latent(hidden)``, or
        the ``<|latent|>`` token embedding for every row of a pause-token model."""
        if not self.pauses:
            return self.project_latent(hidden)
        row = self.input_embeddings().weight[self.latent_config.latent_token_id]
        return row.to(hidden.dtype).expand_as(hidden)

    def add_projection_head(self, head_dim: int) -> None:
        """Give a model without one a new (randomly initialised) latent projection head of width ``head_dim``; the
        latent config records it, so the checkpoint reloads with the head."""
        if self.latent_head is not None:
            raise ValueError("the model already has a latent projection head")
        self.latent_config = self.latent_config.replace(projection_head=True, head_dim=head_dim)
        hidden = self.base.config.get_text_config().hidden_size
        self.latent_head = LatentProjectionHead(hidden, head_dim).to(device=self.device, dtype=self.dtype)
        self._sync_config()

    def freeze_vision(self, frozen: bool = True) -> None:
        """Freeze (or unfreeze) the vision tower and merger (docs/PAPER.md#hyperparameters SFT default: frozen)."""
        for p in self.base.model.visual.parameters():
            p.requires_grad_(not frozen)

    # ------------------------------------------------------------ latent targets
    @torch.no_grad()
    def latent_targets(self, pixel_values_latent: torch.Tensor, image_grid_thw_latent: torch.Tensor) -> list[torch.Tensor]:
        """Ground-truth latent embeddings per future frame: frozen vision encoder + merger, raster order.

        Returns one [K_f, H] tensor per frame (K_f = merged tokens, or ``pooled_latent_tokens`` after 1-D adaptive
        average pooling of the raster-flattened tokens). No gradient ever flows into them (constants).
        """
        feats = self.base.model.get_image_features(pixel_values_latent, image_grid_thw_latent).pooler_output
        n = self.latent_config.pooled_latent_tokens
        if n is not None:
            feats = [F.adaptive_avg_pool1d(f.T.unsqueeze(0).float(), n)[0].T.to(f.dtype) for f in feats]
        return [f.detach() for f in feats]

    def embed_with_latents(
        self, input_ids: torch.Tensor, latent_vectors: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Token embeddings with ``latent_vectors`` [N, H] scattered into the ``<|latent|>`` positions (row-major).

        Returns (inputs_embeds, latent_mask). Raises if the number of vectors differs from the number of slots.
        """
        embeds = self.input_embeddings()(input_ids)
        latent_mask = input_ids == self.latent_config.latent_token_id
        n_slots = int(latent_mask.sum())
        n_vec = 0 if latent_vectors is None else latent_vectors.shape[0]
        if n_slots != n_vec:
            raise ValueError(
                f"latent count mismatch: the batch has {n_slots} <|latent|> positions but {n_vec} latent vectors "
                "(future-frame embeddings or recorded latents); each span must hold exactly the frame's merged tokens"
            )
        if n_slots:
            embeds = embeds.masked_scatter(latent_mask.unsqueeze(-1), latent_vectors.to(embeds.dtype))
        return embeds, latent_mask

    # ---------------------------------------------------------------- positions
    def position_ids(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        mm_token_type_ids: torch.Tensor | None = None,
        image_grid_thw: torch.Tensor | None = None,
        video_grid_thw: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """4-row position ids [text, t, h, w] as ``generate`` builds them; latent slots are text (1-D) positions."""
        text = attention_mask.long().cumsum(-1) - 1
        text = text.masked_fill(attention_mask == 0, 0)
        if mm_token_type_ids is not None and (image_grid_thw is not None or video_grid_thw is not None):
            mrope, _ = self.base.model.get_rope_index(
                input_ids,
                mm_token_type_ids=mm_token_type_ids,
                image_grid_thw=image_grid_thw,
                video_grid_thw=video_grid_thw,
                attention_mask=attention_mask,
            )
        else:
            mrope = text.unsqueeze(0).expand(3, -1, -1)
        return torch.cat([text.unsqueeze(0), mrope.to(text.dtype)], dim=0)

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        mm_token_type_ids: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        image_grid_thw: torch.Tensor | None = None,
        pixel_values_videos: torch.Tensor | None = None,
        video_grid_thw: torch.Tensor | None = None,
        pixel_values_latent: torch.Tensor | None = None,
        image_grid_thw_latent: torch.Tensor | None = None,
        latent_vectors: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        label_weights: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        hidden_only: bool = False,
        latent_slots: torch.Tensor | None = None,
        score_targets: torch.Tensor | None = None,
        score: dict | None = None,
        own_latent_p: float = 0.0,
        own_latent_generator: torch.Generator | None = None,
        own_latent_loss: str = "ce",
        **unused,
    ) -> FutureL1Output:
        """One teacher-forced pass (docs/PAPER.md#latent-sft). Latent slots get ``latent_vectors`` if given, else the ground-truth
        future-frame embeddings computed from ``pixel_values_latent``.

        RL replay passes the recorded ``latent_vectors`` with their positions ``latent_slots`` [B, L] (bool), the
        decode's ``position_ids``, and the generated tokens ``score_targets`` [B, T] (the last T tokens, each
        predicted by the position before it); their log-probs come back chunk-wise
        (:func:`fl1_core.losses.token_logprobs`, ``score`` = its keyword arguments), never as ``[B, L, V]`` logits.
        Embedding and scoring inside ``forward`` let a DDP / FSDP wrapper see every parameter the loss uses.
        ``hidden_only`` skips the LM head.

        Scheduled sampling (``own_latent_p`` > 0, latent mode): a second pass feeds, at each span chosen with
        probability ``own_latent_p``, the model's own projected predictions of the first (teacher-forced) pass,
        :meth:`own_latent_inputs`; the CE comes from the second pass, with gradients through the fed predictions, and
        the alignment loss from the first (its targets stay the gold embeddings). With ``own_latent_loss="alignment"``
        (a workbook deviation) the second pass trains the imagination instead: the fed predictions are detached, the
        CE comes from the first pass, and the latent loss is the mean of both passes' alignment losses, so a slot
        learns to predict its gold embedding after the model's own earlier predictions, as decoding feeds them."""
        if own_latent_loss not in SAMPLING_LOSSES:
            raise ValueError(f"own_latent_loss must be one of {SAMPLING_LOSSES}, got {own_latent_loss!r}")
        if latent_slots is not None or score_targets is not None:
            if position_ids is None:
                raise ValueError("FutureL1Model.forward: replay (latent_slots / score_targets) needs position_ids")
            embeds = self.input_embeddings()(input_ids)
            if latent_slots is not None and latent_vectors is not None and latent_vectors.numel():
                embeds = embeds.masked_scatter(latent_slots.unsqueeze(-1), latent_vectors.to(embeds.dtype))
            out = self.base.model(inputs_embeds=embeds, attention_mask=attention_mask, position_ids=position_ids,
                                  pixel_values=pixel_values, image_grid_thw=image_grid_thw,
                                  pixel_values_videos=pixel_values_videos, video_grid_thw=video_grid_thw,
                                  use_cache=False)
            hidden = out.last_hidden_state
            if score_targets is None:
                return FutureL1Output(None, None, None, None, hidden)
            n = score_targets.shape[1]
            hidden = hidden[:, hidden.shape[1] - n - 1 : hidden.shape[1] - 1]
            logp, entropy = token_logprobs(hidden, self.base.lm_head.weight, score_targets, **(score or {}))
            return FutureL1Output(None, None, None, None, hidden, token_logprobs=logp, entropy=entropy)
        if self.pauses:  # pause control: the slots keep the learned <|latent|> embedding; no alignment loss
            embeds = self.input_embeddings()(input_ids)
            latent_mask = torch.zeros_like(input_ids, dtype=torch.bool)
        else:
            if latent_vectors is None and pixel_values_latent is not None:
                targets = self.latent_targets(pixel_values_latent, image_grid_thw_latent)
                latent_vectors = torch.cat(targets, dim=0) if targets else None
            embeds, latent_mask = self.embed_with_latents(input_ids, latent_vectors)
        gold_inputs = latent_vectors if bool(latent_mask.any()) else None
        if position_ids is None:
            position_ids = self.position_ids(input_ids, attention_mask, mm_token_type_ids, image_grid_thw,
                                             video_grid_thw)
        def run(inputs_embeds: torch.Tensor) -> torch.Tensor:
            return self.base.model(
                inputs_embeds=inputs_embeds,
                attention_mask=attention_mask,
                position_ids=position_ids,
                pixel_values=pixel_values,
                image_grid_thw=image_grid_thw,
                pixel_values_videos=pixel_values_videos,
                video_grid_thw=video_grid_thw,
                use_cache=False,
            ).last_hidden_state

        hidden = run(embeds)
        aligned = hidden
        anchors = (question_anchors(self, input_ids, pixel_values, image_grid_thw)
                   if self.anchored and bool(latent_mask.any()) else None)
        own_aligned = None
        if own_latent_p > 0 and bool(latent_mask.any()):
            if own_latent_loss == "ce":
                hidden = run(self.own_latent_inputs(aligned, embeds, latent_mask, own_latent_p, own_latent_generator,
                                                    anchors))
            else:
                with torch.no_grad():
                    fed = self.own_latent_inputs(aligned, embeds, latent_mask, own_latent_p, own_latent_generator,
                                                 anchors)
                own_aligned = run(fed)
        if hidden_only:
            return FutureL1Output(None, None, None, None, hidden, latent_inputs=gold_inputs)
        logits = self.base.lm_head(hidden)
        if labels is None:
            return FutureL1Output(None, None, None, logits, hidden, latent_inputs=gold_inputs)
        ce = causal_ce_loss(logits, labels, label_weights)
        latent_loss, n_pairs = self.latent_alignment_loss(aligned, embeds, latent_mask, anchors)
        if own_aligned is not None:
            latent_loss = 0.5 * (latent_loss + self.latent_alignment_loss(own_aligned, embeds, latent_mask, anchors)[0])
        loss = latent_sft_loss(ce, latent_loss, self.latent_config.latent_lambda)
        return FutureL1Output(loss, ce, latent_loss, logits, hidden, n_pairs, latent_inputs=gold_inputs)

    def own_latent_inputs(
        self,
        hidden: torch.Tensor,
        embeds: torch.Tensor,
        latent_mask: torch.Tensor,
        p: float,
        generator: torch.Generator | None = None,
        anchors: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``embeds`` with the latent slots of randomly chosen spans replaced by the model's own predictions.

        Slot t+1 gets :meth:`predicted_latents` (anchored when ``anchors`` are given), the vector decoding would feed
        there (one extra pass: within a span each prediction follows the gold slots before it, not the model's own).
        A span (a maximal run of latent slots in a row) is chosen with probability ``p`` (one Bernoulli draw per
        span, from ``generator``).
        The predictions keep their graph, so the CE of the next pass trains what produces them."""
        pred = self.predicted_latents(hidden, latent_mask, anchors)
        gold = embeds[latent_mask]
        starts = latent_mask & ~F.pad(latent_mask[:, :-1], (1, 0), value=False)
        span_of_slot = starts.flatten().long().cumsum(0).view_as(latent_mask)[latent_mask] - 1
        n_spans = int(starts.sum())
        draw = torch.rand(n_spans, generator=generator, device="cpu" if generator is None else generator.device)
        chosen = (draw < p).to(latent_mask.device)[span_of_slot].unsqueeze(-1)
        mixed = torch.where(chosen, pred.to(gold.dtype), gold)
        return embeds.masked_scatter(latent_mask.unsqueeze(-1), mixed)

    def predicted_latents(self, hidden: torch.Tensor, latent_mask: torch.Tensor,
                          anchors: torch.Tensor | None = None) -> torch.Tensor:
        """[N, H] the prediction for each latent slot t + 1 (row-major): ``project(hidden@t)``, plus the slot's cell of
        the last question image when ``anchors`` [B, K, H] are given (:mod:`fl1_core.latent_anchor`)."""
        pred = self.project_latent(hidden[:, :-1][latent_mask[:, 1:]])
        if anchors is None:
            return pred
        return pred + slot_anchors(latent_mask, anchors).to(pred.dtype)

    def latent_alignment_loss(
        self, hidden: torch.Tensor, embeds: torch.Tensor, latent_mask: torch.Tensor,
        anchors: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, int]:
        """The pairs of the shift of docs/PAPER.md#latent-sft (the prediction from hidden@t, :meth:`predicted_latents`;
        the detached latent input @t+1) and their loss (:func:`fl1_core.losses.latent_alignment_loss`, MSE or
        1 − cos)."""
        pred_mask = latent_mask[:, 1:]  # t + 1 is a latent slot
        if not bool(pred_mask.any()):
            return hidden.new_zeros(()), 0
        pred = self.predicted_latents(hidden, latent_mask, anchors)
        target = embeds[:, 1:][pred_mask].detach()
        return latent_alignment_loss(pred, target, self.latent_config.latent_loss), int(pred_mask.sum())


def add_latent_tokens(processor: Qwen3VLProcessor, base: Qwen3VLForConditionalGeneration) -> dict[str, int]:
    """Add the three latent tokens (ordinary added tokens) if missing; grow the embeddings, new rows = mean row."""
    tok = processor.tokenizer
    missing = [t for t in T.LATENT_TOKENS if t not in tok.get_vocab()]
    if missing:
        tok.add_tokens(missing, special_tokens=False)
    ids = {t: tok.convert_tokens_to_ids(t) for t in T.LATENT_TOKENS}
    emb = base.get_input_embeddings()
    if max(ids.values()) >= emb.num_embeddings:
        old = emb.num_embeddings
        base.resize_token_embeddings(len(tok), mean_resizing=True)
        logger.info("resized embeddings %d → %d for latent tokens", old, base.get_input_embeddings().num_embeddings)
    return {"latent_token_id": ids[T.LATENT_TOKEN], "latent_start_id": ids[T.LATENT_START], "latent_end_id": ids[T.LATENT_END]}


def default_attn_implementation(device: str | torch.device | None = "auto") -> str:
    """flash-attention 2 when the model will run on CUDA and flash-attn is installed, else PyTorch SDPA."""
    from .placement import attn_implementation_for, resolve_device

    return attn_implementation_for(resolve_device(device))


def load_future_l1(
    path: str | Path,
    *,
    dtype: torch.dtype | str | None = None,
    device: str | torch.device | None = "auto",
    attn_implementation: str | None = None,
) -> tuple[FutureL1Model, Qwen3VLProcessor]:
    """Load any Qwen3-VL checkpoint directory (the tiny one or Qwen3-VL-8B-Instruct) as a Future-L1 model.

    A Future-L1 checkpoint brings its latent config (``config.json[future_l1]``); a plain Qwen3-VL checkpoint gets the
    latent tokens added and the default :class:`LatentConfig`. A stage changes it through its config's ``latent``
    overrides (:meth:`LatentConfig.overridden`).

    ``device``: ``"auto"`` (default) picks the accelerator when there is one, ``None`` leaves the model on the CPU
    (:func:`fl1_core.placement.resolve_device`); the attention kernel follows the device (FA2 only on CUDA).
    ``dtype``: ``"auto"`` (default) keeps the checkpoint's dtype; a bf16 load should be followed by
    :func:`fl1_core.placement.upcast_trainable` before training. A directory with ``adapter_config.json`` is a LoRA
    adapter folder (:mod:`fl1_core.checkpoints.adapter_folder`): its base is loaded and the adapter applied.
    Folders are written by :func:`fl1_core.checkpoints.save_model`.
    """
    from .placement import attn_implementation_for, resolve_device

    target = resolve_device(device)
    path = Path(path)
    if is_adapter_dir(path) and not (path / "config.json").exists():
        model, processor = load_future_l1(adapter_base_path(path), dtype=dtype, device=device,
                                          attn_implementation=attn_implementation)
        return load_adapter(model, path), processor
    if not (path / "config.json").exists():
        raise FileNotFoundError(f"{path}: no config.json — expected a local Qwen3-VL checkpoint directory")
    processor = AutoProcessor.from_pretrained(path)
    processor.tokenizer.padding_side = "left"  # batched decoding appends to the right end of every row
    base = Qwen3VLForConditionalGeneration.from_pretrained(
        path, dtype=dtype or "auto", attn_implementation=attn_implementation or attn_implementation_for(target)
    )
    stored = getattr(base.config, CONFIG_KEY, None)
    ids = add_latent_tokens(processor, base)
    if stored is not None:
        stored_ids = {k: stored[k] for k in ids}
        if stored_ids != ids:
            raise ValueError(f"{path}: latent token ids in config {stored_ids} differ from the tokenizer's {ids}")
        cfg = LatentConfig.from_dict(stored)
    else:
        cfg = LatentConfig().replace(**ids)
    model = FutureL1Model(base, cfg)
    head_file = path / HEAD_FILE
    if model.latent_head is not None:
        if head_file.exists():
            model.latent_head.load_state_dict(torch.load(head_file, map_location="cpu", weights_only=True))
        elif stored is not None and stored.get("projection_head"):
            raise FileNotFoundError(f"{head_file}: the checkpoint's latent config enables projection_head but its "
                                    "trained head is missing (copy latent_head.pt back; a random head would be used)")
        else:
            logger.info("%s: a new (random) latent projection head, trained from scratch", path)
        model.latent_head.to(dtype=model.dtype)
    if target is not None:
        model.to(target)
    model.processor = processor
    model.source_path = path.resolve()  # the base of LoRA adapters trained on this model
    return model, processor
