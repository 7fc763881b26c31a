"""Metric names: one grouped, stable name per quantity (``reward/acc``, ``loss/policy``, …), shared by the
``metrics.jsonl`` of every stage, the figures and the optional experiment trackers.

A trainer assembles its per-step row under short internal keys and passes it through :func:`grouped` before the row
is written, returned or logged; keys not listed here (a new metric) keep their name, under ``other/``.

Trackers: ``report_to`` = ``"tensorboard"``, ``"wandb"``, … (any of accelerate's ``LOGGER_TYPE_TO_CLASS``), a
comma-separated list, or ``None`` (off, the default). :func:`open_trackers` opens them on the main process only.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

RL_METRIC_NAMES: dict[str, str] = {
    # rewards of the trained responses (kept groups) and of everything drawn
    "acc": "reward/acc", "fmt": "reward/fmt", "r_ctr": "reward/r_ctr", "div_cos2": "reward/div_cos2",
    "event": "reward/event",
    "overall": "reward/overall", "acc_all": "reward/acc_all", "fmt_all": "reward/fmt_all",
    "overall_all": "reward/overall_all",
    # the objective (docs/PAPER.md#kl): policy loss + β·k3
    "loss": "loss/total", "pg_loss": "loss/policy", "kl_loss": "loss/kl", "loss_tokens": "loss/tokens",
    "kl": "policy/kl", "approx_kl_old": "policy/approx_kl_old", "entropy": "policy/entropy",
    "clipfrac": "policy/clipfrac", "clipfrac_high": "policy/clipfrac_high", "clipfrac_low": "policy/clipfrac_low",
    "clipfrac_dual": "policy/clipfrac_dual", "ratio_max": "policy/ratio_max",
    # dynamic sampling
    "kept_group_frac": "sampling/kept_group_frac", "refill_rounds": "sampling/refill_rounds",
    "fallback": "sampling/fallback", "short_batch": "sampling/short_batch", "drawn_groups": "sampling/drawn_groups",
    "kept_groups": "sampling/kept_groups", "train_groups": "sampling/train_groups",
    "train_responses": "sampling/train_responses", "dropped_groups": "sampling/dropped_groups",
    # rollouts
    "response_len": "rollout/response_len", "latent_spans": "rollout/latent_spans",
    "latents_per_response": "rollout/latents_per_response", "gen_tokens": "rollout/gen_tokens",
    "truncated": "rollout/truncated", "max_new_tokens": "rollout/max_new_tokens",
    "tokens_per_s": "rollout/tokens_per_s",
    # judge
    "judge_calls": "judge/calls", "judge_requests": "judge/requests", "judge_failures": "judge/failures",
    "judge_unresolved": "judge/unresolved",
    # optimisation and time
    "lr": "optim/lr", "grad_norm": "optim/grad_norm", "optimizer_steps": "optim/steps",
    "skipped_steps": "optim/skipped_steps", "rollout_s": "time/rollout_s", "update_s": "time/update_s",
    "time_s": "time/step_s",
}

SFT_METRIC_NAMES: dict[str, str] = {
    "loss": "loss/total", "ce_loss": "loss/ce", "latent_loss": "loss/latent", "latent_pairs": "data/latent_pairs",
    "tokens": "data/tokens", "samples": "data/samples", "epoch": "data/epoch", "lr": "optim/lr",
    "grad_norm": "optim/grad_norm", "tokens_per_s": "time/tokens_per_s", "step_time_s": "time/step_s",
}

UNGROUPED = ("step",)  # the x axis keeps its plain name


def grouped(row: Mapping[str, Any], names: Mapping[str, str]) -> dict[str, Any]:
    """``row`` with every key renamed to its grouped name (``names``); unknown keys become ``other/<key>``."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if key in UNGROUPED or "/" in key:
            out[key] = value
        else:
            out[names.get(key, f"other/{key}")] = value
    return out


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
