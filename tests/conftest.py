"""Shared, session-scoped fixtures: the tiny Future-L1 model is built once per test session."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def tiny():
    """(model, processor): the tiny Qwen3-VL wrapped as Future-L1 (random init, seed 0, eval mode)."""
    from fl1_core.tiny import build_tiny_future_l1

    return build_tiny_future_l1(seed=0)


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for a module: its runs are tiny, and on a shared 2-core machine two threads mostly wait on
    each other (use with ``pytestmark = pytest.mark.usefixtures("one_thread")``)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def random_image(rng: np.random.Generator, height: int = 96, width: int = 96) -> Image.Image:
    return Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8))


@pytest.fixture(scope="session")
def saved_tiny(tmp_path_factory):
    """The tiny model saved as a checkpoint folder (for loading with ``load_future_l1`` in another dtype/device)."""
    from fl1_core.checkpoints import save_model
    from fl1_core.tiny import build_tiny_future_l1

    model, processor = build_tiny_future_l1(seed=0)
    path = tmp_path_factory.mktemp("tiny") / "ckpt"
    save_model(model, processor, path)
    return path


@pytest.fixture(scope="session")
def small_world(tmp_path_factory):
    """``WorldConfig.small()`` generated once per session (seed 0)."""
    from fl1_core.data.world import WorldConfig, generate_world

    out = tmp_path_factory.mktemp("small_world")
    generate_world(out, seed=0, config=WorldConfig.small())
    return out


@pytest.fixture
def disk_full_at(monkeypatch):
    """``disk_full_at(marker)``: every ``torch.save`` to a path containing ``marker`` fails with ENOSPC (the disk
    filling up while that checkpoint is written); returns a function that lifts the fault."""
    import errno

    import torch

    real = torch.save

    def fail_at(marker: str):
        def save(obj, f, *args, **kwargs):
            if marker in str(f):
                raise OSError(errno.ENOSPC, "No space left on device")
            return real(obj, f, *args, **kwargs)

        monkeypatch.setattr(torch, "save", save)
        return lambda: monkeypatch.setattr(torch, "save", real)

    return fail_at
