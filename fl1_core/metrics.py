"""Experiment trackers for the per-step metrics rows.

Every trainer writes its ``metrics.jsonl`` rows under grouped names, ``<group>/<quantity>`` (``reward/acc``,
``loss/policy``, ``time/step_s``), built where the quantity is computed; the x axis is ``step``. The same rows go to
the figures and, optionally, to trackers.

Trackers: ``report_to`` = ``"tensorboard"``, ``"wandb"``, … (any of accelerate's ``LOGGER_TYPE_TO_CLASS``), a
comma-separated list, or ``None`` (off, the default). :class:`Trackers` opens them on the main process only.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def tracker_names(report_to: str | list[str] | None) -> list[str]:
    """The tracker names of a ``report_to`` setting, checked against accelerate's list."""
    if not report_to or report_to == "none":
        return []
    from accelerate.tracking import LOGGER_TYPE_TO_CLASS

    names = [n.strip() for n in (report_to.split(",") if isinstance(report_to, str) else report_to) if n.strip()]
    unknown = [n for n in names if n not in LOGGER_TYPE_TO_CLASS]
    if unknown:
        raise ValueError(f"report_to: unknown tracker(s) {unknown}; choose from {sorted(LOGGER_TYPE_TO_CLASS)} "
                         "or leave it unset")
    return names


class Trackers:
    """accelerate's experiment trackers for one run (``report_to``); a no-op when none is asked or off the main
    process. ``log(row, step)`` sends the numeric entries of a grouped metrics row."""

    def __init__(self, report_to: str | list[str] | None, run_name: str, logging_dir: str | Path,
                 config: Mapping[str, Any] | None = None, main_process: bool = True):
        self._trackers = []
        names = tracker_names(report_to)  # validated on every process, so a typo fails everywhere
        if not main_process:
            return
        from accelerate.tracking import LOGGER_TYPE_TO_CLASS

        for name in names:
            cls = LOGGER_TYPE_TO_CLASS[name]
            tracker = cls(run_name, logging_dir=str(logging_dir)) if cls.requires_logging_directory else cls(run_name)
            tracker.start()
            if config:
                tracker.store_init_configuration(_flat_config(config))
            self._trackers.append(tracker)
        if names:
            log.info("metrics also reported to %s (%s)", ", ".join(names), logging_dir)

    def log(self, row: Mapping[str, Any], step: int) -> None:
        values = {k: float(v) for k, v in row.items() if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool)}
        for tracker in self._trackers:
            tracker.log(values, step=step)

    def close(self) -> None:
        for tracker in self._trackers:
            tracker.finish()
        self._trackers = []


def _flat_config(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested settings flattened to scalar entries (``a/b``), as trackers' hyper-parameter tables want them."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flat_config(value, f"{name}/"))
        elif isinstance(value, (int, float, str, bool)) or value is None:
            out[name] = value if value is not None else "none"
        else:
            out[name] = str(value)
    return out
