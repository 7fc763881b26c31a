"""The latent anchor: imagined frames predicted as a change from the last question image (a workbook deviation).

With ``LatentConfig.latent_anchor = "last_image"`` the k-th latent of a span is predicted as

    ŝ_k = e_k + project(h_{t-1}),

where ``e_k`` is the k-th merged vision token of the row's last question image (the same cell of the frame grid as
the k-th gold latent) and ``h_{t-1}`` the hidden state before the slot. The alignment loss compares ``ŝ_k`` with the
gold embedding, scheduled sampling and decoding feed ``ŝ_k``. Predicting nothing (``project(h) = 0``) then imagines
the present, and the model learns only what changes. The release has no anchor (``"none"``, the default); see
docs/PAPER.md#deviations.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pool_tokens(feats: torch.Tensor, n: int | None) -> torch.Tensor:
    """[K, H] merged tokens, or exactly ``n`` after 1-D adaptive average pooling of the raster order (the latent
    targets' ``pooled_latent_tokens``)."""
    if n is None:
        return feats
    return F.adaptive_avg_pool1d(feats.T.unsqueeze(0).float(), n)[0].T.to(feats.dtype)


@torch.no_grad()
def question_anchors(model, input_ids: torch.Tensor, pixel_values: torch.Tensor | None,
                     image_grid_thw: torch.Tensor | None) -> torch.Tensor:
    """[B, K, H]: per row, the merged tokens of its last question image (frozen vision tower + merger, pooled as
    the latent targets are). Raises when a row has no image or the rows' last images differ in token count."""
    image_token = model.config.image_token_id
    per_row = (input_ids == image_token).sum(-1).tolist()
    if pixel_values is None or image_grid_thw is None or not all(per_row):
        raise ValueError("latent_anchor='last_image' needs an image among every prompt's question frames; "
                         f"image tokens per row: {per_row} (a video-only prompt has none: use latent_anchor='none')")
    feats = model.base.model.get_image_features(pixel_values, image_grid_thw).pooler_output
    merge = model.base.config.vision_config.spatial_merge_size
    sizes = [int(t * h * w) // merge**2 for t, h, w in image_grid_thw.tolist()]
    anchors, i = [], 0
    for row, need in enumerate(per_row):
        got = 0
        while got < need and i < len(sizes):
            got, i = got + sizes[i], i + 1
        if got != need:
            raise ValueError(f"row {row}: {need} image tokens do not line up with the images' grids {sizes}")
        anchors.append(pool_tokens(feats[i - 1], model.latent_config.pooled_latent_tokens))
    if len({a.shape for a in anchors}) != 1:
        raise ValueError(f"the rows' last question images have different token counts {[a.shape[0] for a in anchors]}"
                         "; the anchor needs one frame size")
    return torch.stack(anchors).detach()


def span_positions(latent_mask: torch.Tensor) -> torch.Tensor:
    """[N]: for each ``<|latent|>`` slot of ``latent_mask`` [B, T] (row-major), its index within its span."""
    b, t = latent_mask.shape
    starts = latent_mask & ~F.pad(latent_mask[:, :-1], (1, 0), value=False)
    pos = torch.arange(t, device=latent_mask.device).expand(b, t)
    span_start = torch.where(starts, pos, torch.zeros_like(pos)).cummax(dim=1).values
    return (pos - span_start)[latent_mask]


def slot_anchors(latent_mask: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
    """[N, H]: for each ``<|latent|>`` slot of ``latent_mask`` [B, T] (row-major), ``anchors[row, k]`` with k the
    slot's index in its span. Every span must hold exactly the anchor's K tokens (a frame of the same grid);
    raises otherwise."""
    b, t = latent_mask.shape
    ends = latent_mask & ~F.pad(latent_mask[:, 1:], (0, 1), value=False)
    k = span_positions(latent_mask)
    lengths = (k[ends[latent_mask]] + 1).unique().tolist()
    if any(n != anchors.shape[1] for n in lengths):
        raise ValueError(f"latent spans of {lengths} slots against a question image of {anchors.shape[1]} tokens: "
                         "the anchor needs future frames and question images of one grid")
    rows = torch.arange(b, device=latent_mask.device).unsqueeze(1).expand(b, t)[latent_mask]
    return anchors[rows, k]


def check_decode_budget(anchors: torch.Tensor, budget: int, loose: bool) -> None:
    """A fixed decoding budget must equal the anchor's K tokens (one cell per slot); raises otherwise."""
    if not loose and budget != anchors.shape[1]:
        raise ValueError(f"a fixed budget of {budget} latents per span against a question image of "
                         f"{anchors.shape[1]} tokens: the anchor needs one cell per slot")


def step_anchors(anchors: torch.Tensor, slot_index: torch.Tensor) -> torch.Tensor:
    """[R, H]: each decoding row's anchor for its slot ``slot_index`` [R] (clamped to the anchor's K tokens: a loose
    span longer than the frame keeps adding its last cell)."""
    k = slot_index.clamp(0, anchors.shape[1] - 1)
    return anchors[torch.arange(anchors.shape[0], device=anchors.device), k]
