"""Perception targets and the auxiliary cell head of world pretraining.

A 96x96 world frame becomes a 3x3 grid of merged vision tokens (16-px patches, 2x2 merge): token ``i*3+j`` covers
the 32x32 cell in row ``i``, column ``j``. A random ViT keeps a small object's colour as a tiny perturbation of the
cell's feature (cosine to an empty cell ≈ 0.9, notes/world-base-facts.md §5) that next-token training alone does not
amplify. The cell head is a linear read-out trained on every merged token to predict what its cell contains; its
gradient makes the vision tower and merger put the content of each cell in the token itself, which the language
model can then attend to.

Target per cell (``CELL_CHANNELS`` values in [0, 1]): for each colour and each shape, ``min(1, 4 · coverage)``
where coverage is the share of the cell's pixels covered by an object of that colour / shape, then the lamp
(on / off, where the cell shows it).

    L_cell = mean over tokens and channels of BCE(head(token), target)
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data.world.config import WorldConfig
from ..data.world.physics import Simulation

SHAPE_NAMES = ("ball", "box")
COVERAGE_GAIN = 4.0


def cell_channels(colors: dict[str, tuple[int, int, int]] | None = None) -> list[str]:
    """Names of the target channels: one per colour, one per shape, then ``lamp_on`` and ``lamp_off``."""
    names = list((colors or WorldConfig().colors).keys())
    return [f"color:{c}" for c in names] + [f"shape:{s}" for s in SHAPE_NAMES] + ["lamp_on", "lamp_off"]


def body_masks(sim: Simulation, frame: int) -> list[np.ndarray]:
    """Boolean pixel mask of each body at ``frame`` (the renderer's geometry; later bodies are drawn on top)."""
    sc = sim.scene
    yy, xx = np.mgrid[0 : sc.height, 0 : sc.width].astype(np.float32) + 0.5
    masks = []
    taken = np.zeros((sc.height, sc.width), dtype=bool)
    out: list[np.ndarray] = [None] * len(sc.bodies)  # type: ignore[list-item]
    for i in reversed(range(len(sc.bodies))):
        b = sc.bodies[i]
        x, y = float(sim.states[frame, i, 0]), float(sim.states[frame, i, 1])
        if b.shape == "ball":
            m = (xx - x) ** 2 + (yy - y) ** 2 <= b.r**2
        else:
            m = (np.abs(xx - x) <= b.r) & (np.abs(yy - y) <= b.r)
        out[i] = m & ~taken
        taken |= m
    masks.extend(out)
    return masks


def cell_targets(sim: Simulation, frame: int, colors: list[str], cell: int = 32) -> np.ndarray:
    """Targets of every cell of ``frame``: float32 [rows * cols, len(cell_channels)], raster order."""
    sc = sim.scene
    rows, cols = sc.height // cell, sc.width // cell
    n_ch = len(colors) + len(SHAPE_NAMES) + 2
    planes = np.zeros((n_ch, sc.height, sc.width), dtype=np.float32)
    for b, m in zip(sc.bodies, body_masks(sim, frame)):
        planes[colors.index(b.color)] += m
        planes[len(colors) + SHAPE_NAMES.index(b.shape)] += m
    if sc.switch_side is not None:
        cx, cy, r = sc.lamp
        yy, xx = np.mgrid[0 : sc.height, 0 : sc.width].astype(np.float32) + 0.5
        lamp = (xx - cx) ** 2 + (yy - cy) ** 2 <= r**2
        on = sim.light_on_frame is not None and frame >= sim.light_on_frame
        planes[len(colors) + len(SHAPE_NAMES) + (0 if on else 1)] += lamp
    cov = planes[:, : rows * cell, : cols * cell].reshape(n_ch, rows, cell, cols, cell).mean(axis=(2, 4))
    return np.minimum(1.0, COVERAGE_GAIN * cov).reshape(n_ch, rows * cols).T.copy()


class CellHead(nn.Module):
    """Linear read-out of cell contents from a merged vision token: [N, hidden] → [N, channels] logits."""

    def __init__(self, hidden_size: int, channels: int):
        super().__init__()
        self.proj = nn.Linear(hidden_size, channels)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.proj(tokens)


def cell_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``L_cell = mean BCE(logits, targets)`` over tokens and channels (soft targets in [0, 1])."""
    return F.binary_cross_entropy_with_logits(logits.float(), targets.float())


class VisionTap:
    """Records the merged vision tokens of every ``visual`` forward (image pass order) through a forward hook."""

    def __init__(self, visual: nn.Module):
        self.tokens: list[torch.Tensor] = []
        self._handle = visual.register_forward_hook(self._hook)

    def _hook(self, module, args, output) -> None:
        self.tokens.append(output.pooler_output)

    def pop(self) -> torch.Tensor | None:
        out = torch.cat(self.tokens, 0) if self.tokens else None
        self.tokens = []
        return out

    def remove(self) -> None:
        self._handle.remove()
