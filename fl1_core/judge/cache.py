"""Content-addressed disk cache of judge replies.

Key = sha256 of the canonical JSON of ``{model, messages, params}`` (never the endpoint's API key). One JSON file per
key under ``<dir>/<key[:2]>/<key>.json``, written atomically (temp file in the same folder + ``os.replace``), so a
killed run leaves no half-written entry and a resumed run re-queries nothing it already has. Only replies that
parsed are stored; an unreadable entry counts as a miss.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["JudgeCache", "cache_key"]

log = logging.getLogger(__name__)


def cache_key(model: str, messages: list[dict[str, Any]], params: dict[str, Any]) -> str:
    """sha256 hex digest of the canonical JSON of model + messages + request params."""
    blob = json.dumps(
        {"model": model, "messages": messages, "params": params},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class JudgeCache:
    """A folder of cached judge replies keyed by :func:`cache_key`."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        """The file of one key."""
        return self.directory / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        """The cached entry of ``key`` or ``None``."""
        path = self.path(key)
        try:
            with path.open("r", encoding="utf-8") as fh:
                entry = json.load(fh)
        except FileNotFoundError:
            return None
        except (OSError, json.JSONDecodeError) as exc:
            log.warning("judge cache entry %s unreadable (%s); treating as a miss", path.name, type(exc).__name__)
            return None
        return entry if isinstance(entry, dict) and "reply" in entry else None

    def put(self, key: str, entry: dict[str, Any]) -> None:
        """Write ``entry`` for ``key`` atomically."""
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{key[:8]}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(entry, fh, ensure_ascii=False, sort_keys=True)
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
