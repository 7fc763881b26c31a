"""The KL reference π_ref of a LoRA RL run: the initial (SFT) model, without a second copy of it.

Under LoRA the adapters hold only part of what trains: ``lm_head`` and the latent head train in full
(:func:`fl1_core.adapters.fully_trained_parameters`). Switching the adapters off therefore gives the base weights
*with the current heads*, a reference that moves with every update. :class:`LoraReference` keeps a frozen copy of
exactly the fully trained tensors as they were at RL start, in the dtype they were loaded in (bf16 on a GPU: 1.2 GB
for Qwen3-VL-8B's ``lm_head``, against 16 GB for a second model), and swaps it in for the reference pass:

    log π_ref(y_t) = replay(model | adapters off, W_full ← W_full(RL start))

The latent token rows need no copy: peft keeps their trained values apart, and with the adapters off the embedding
rows are the ones loaded. The copy is taken from the model passed to the trainer, which a resume must give again
(the trainer checks its fingerprint), so a resumed run compares against the same reference.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from fl1_core.adapters import adapters_disabled, fully_trained_parameters


class LoraReference:
    """Frozen copies of a LoRA model's fully trained tensors, taken at construction (call it right after
    :func:`fl1_core.adapters.apply_lora`, before any update and before the fp32 upcast)."""

    def __init__(self, model: torch.nn.Module) -> None:
        params = fully_trained_parameters(model)
        self.names = sorted(params)
        self._pairs = [(params[n], params[n].detach().clone()) for n in self.names]

    @property
    def nbytes(self) -> int:
        """Bytes held by the frozen copies."""
        return sum(frozen.numel() * frozen.element_size() for _, frozen in self._pairs)

    def frozen(self, name: str) -> torch.Tensor:
        """The frozen copy of parameter ``name`` (as the model names it)."""
        return self._pairs[self.names.index(name)][1]

    @contextlib.contextmanager
    def active(self, model: torch.nn.Module) -> Iterator[torch.nn.Module]:
        """Within the block ``model`` computes π_ref: adapters off and the frozen tensors in place of the trained
        ones (their storage is swapped, not copied; the trained values come back on exit, also after an error).
        Use under ``torch.no_grad()``."""
        with adapters_disabled(model):
            trained: list[tuple[torch.nn.Parameter, torch.Tensor]] = []
            try:
                for param, frozen in self._pairs:
                    trained.append((param, param.data))
                    param.data = frozen.to(param.device)
                yield model
            finally:
                for param, data in trained:
                    param.data = data


__all__ = ["LoraReference"]
