"""KL references: the model a stage starts from, frozen.

- :func:`frozen_copy`: a second copy of the weights (RL's π_ref under full fine-tuning);
- :class:`LoraReference`: the initial model of a LoRA run without a second copy of it (below);
- :class:`InitReference`: SFT's π_init (``SFTConfig.init_kl``), either of the two.

Under LoRA, RL's π_ref is the initial (SFT) model.

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
import copy
from collections.abc import Iterator

import torch

from fl1_core.adapters import adapters_disabled, fully_trained_parameters
from fl1_core.placement import autocast, bf16_supported


_HOOK_DICTS = ("_forward_hooks", "_forward_hooks_with_kwargs", "_forward_hooks_always_called", "_forward_pre_hooks",
               "_forward_pre_hooks_with_kwargs", "_backward_hooks", "_backward_pre_hooks")


def frozen_copy(model: torch.nn.Module, dtype: str = "auto") -> torch.nn.Module:
    """A frozen copy of ``model`` in eval mode: bf16 when ``dtype`` is ``"bf16"`` or ``"auto"`` on a bf16-capable
    GPU, else the model's own dtype. The copy carries none of the forward and backward hooks registered on the model
    (a profiling or debugging hook would otherwise see the reference's passes as the model's)."""
    ref = copy.deepcopy(model).eval()
    for module in ref.modules():
        for hooks in _HOOK_DICTS:
            getattr(module, hooks).clear()
    if dtype == "bf16" or (dtype == "auto" and bf16_supported(model.device)):
        ref.to(torch.bfloat16)
    for p in ref.parameters():
        p.requires_grad_(False)
    return ref


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


#: batch keys that configure a training pass only (scheduled sampling); π_init is always teacher-forced
_TRAINING_ONLY = ("own_latent_p", "own_latent_generator", "own_latent_loss", "labels", "label_weights")
#: batch keys the latent targets are encoded from
_FUTURE_FRAMES = ("pixel_values_latent", "image_grid_thw_latent")


class InitReference:
    """Next-token logits of the initial model on a training batch, without gradient. Build it after LoRA is applied
    and before the first update: under LoRA it is the model itself with :class:`LoraReference` active, else a
    :func:`frozen_copy`."""

    def __init__(self, model: torch.nn.Module, lora: bool = False) -> None:
        self.model = model
        self.lora = LoraReference(model) if lora else None
        self.copy = None if lora else frozen_copy(model)

    def logits(self, batch: dict, latent_inputs: torch.Tensor | None = None) -> torch.Tensor:
        """Logits [B, L, V] of π_init on ``batch`` (the same inputs and latent vectors as the training pass).

        ``latent_inputs``: the vectors the training pass fed at the latent slots (``FutureL1Output.latent_inputs``);
        given, they are fed as they are instead of encoding the batch's future frames again."""
        inputs = {k: v for k, v in batch.items() if k not in _TRAINING_ONLY}
        if latent_inputs is not None:
            inputs = {k: v for k, v in inputs.items() if k not in _FUTURE_FRAMES}
            inputs["latent_vectors"] = latent_inputs.detach()
        model = self.copy if self.copy is not None else self.model
        context = self.lora.active(model) if self.lora is not None else contextlib.nullcontext()
        with torch.no_grad(), context, autocast(model):
            return model(**inputs).logits


__all__ = ["InitReference", "LoraReference", "frozen_copy"]
