"""Processed RL prompts kept in host RAM, bounded in bytes: least-recently-used entries are evicted until the
cache holds at most ``max_bytes``, where an entry's size is its ``nbytes`` (for a
:class:`~fl1_core.data.prompt_inputs.PromptTensors`: ids, multimodal types, fp32 pixel rows, grids). A prompt larger
than the whole budget is returned, never kept."""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


class PromptCache:
    """LRU cache of processed prompts with a byte budget (see the module docstring)."""

    def __init__(self, max_bytes: int) -> None:
        if max_bytes < 0:
            raise ValueError(f"prompt cache budget must be >= 0 bytes, got {max_bytes}")
        self.max_bytes = int(max_bytes)
        self.bytes = 0
        self.hits = self.misses = self.evictions = 0
        self._entries: OrderedDict[str, tuple[Any, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    def get(self, key: str, build: Callable[[], Any]) -> Any:
        """The entry for ``key`` (marked most recently used), else ``build()`` stored under it (evicting the least
        recently used entries until it fits)."""
        hit = self._entries.get(key)
        if hit is not None:
            self.hits += 1
            self._entries.move_to_end(key)
            return hit[0]
        self.misses += 1
        value = build()
        size = value.nbytes
        if size > self.max_bytes:
            log.debug("prompt %s (%d bytes) exceeds the cache budget of %d bytes: not cached", key, size,
                      self.max_bytes)
            return value
        while self.bytes + size > self.max_bytes:
            _, (_, old) = self._entries.popitem(last=False)
            self.bytes -= old
            self.evictions += 1
        self._entries[key] = (value, size)
        self.bytes += size
        return value


__all__ = ["PromptCache"]
