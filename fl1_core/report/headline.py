"""The headline a reviewer sees first in a run report: held-out accuracy per checkpoint and the audit's decisive
differences, each with its 95 % interval.

* Held-out MCQ (``metrics/rl_heldout*.<checkpoint>.jsonl``, written by notebook 04): per checkpoint, the strict
  letter accuracy and the concluded-event accuracy (:func:`fl1_core.evaluation.heldout_pairs.hit`), on every item
  and on the frame-needing items, each with its Wilson interval over the items.
* The audit (``**/audit.json``, notebook 07): oracle − shuffled oracle latents and latent − pause-token SFT, paired
  on the same items, ``d̄ ± 1.96·sd(d)/√n``, scored by the concluded event (the primary score) and the letter.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any

from ..audit.ablations import accuracy
from ..display import interval_text
from ..run_summary import CHECKPOINT_LABELS
from ..evaluation.heldout_pairs import hit

_HELDOUT = re.compile(r"^rl_heldout(?:_chain)?\.(.+)\.jsonl$")


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def heldout_headline(run_dir: str | Path) -> list[dict[str, Any]]:
    """One row per held-out checkpoint file and item set (``all`` / ``frame``): ``n``, ``letter`` and ``event``
    (each ``{"accuracy", "ci95"}``, Wilson). Checkpoints keep notebook 04's order of names."""
    files = {}
    for path in sorted((Path(run_dir) / "metrics").glob("rl_heldout*.jsonl")):
        m = _HELDOUT.match(path.name)
        if m:
            files[m.group(1)] = path
    order = [k for k in CHECKPOINT_LABELS if k in files] + sorted(k for k in files if k not in CHECKPOINT_LABELS)
    out = []
    for name in order:
        rows = _rows(files[name])
        for subset, chosen in (("all", rows), ("frame", [r for r in rows if r.get("group") == "frame"])):
            if not chosen:
                continue
            row = {"checkpoint": CHECKPOINT_LABELS.get(name, name), "items": subset, "n": len(chosen),
                   "letter": accuracy([hit(r, "letter") for r in chosen])}
            if all("concluded" in r for r in chosen):
                row["event"] = accuracy([hit(r, "event") for r in chosen])
            out.append(row)
    return out


def audit_headline(run_dir: str | Path) -> list[dict[str, Any]]:
    """The audit's oracle − shuffled and latent − pause differences (every item the audit decoded), one row per
    difference and score, from each ``audit.json`` of the run."""
    out = []
    for path in sorted(Path(run_dir).glob("**/audit.json")):
        result = json.loads(path.read_text(encoding="utf-8"))
        where = path.parent.relative_to(run_dir).as_posix()
        contrast = (result.get("contrasts") or {}).get("oracle - oracle_shuffled", {}).get("all")
        for score in ("event", "letter"):
            if contrast and score in contrast:
                out.append({"audit": where, "difference": "oracle − shuffled latents", "score": score,
                            **contrast[score]})
        pause = result.get("pause_comparison") or {}
        for key, score in (("all (event)", "event"), ("all", "letter")):
            diff = (pause.get(key) or {}).get("latent SFT − pause SFT")
            if diff:
                out.append({"audit": where, "difference": "latent − pause-token SFT", "score": score, **diff})
    return out


def _pct(acc: dict[str, Any] | None) -> str:
    if not acc:
        return "—"
    return f"{100 * acc['accuracy']:.1f} % {interval_text(acc['ci95'])}"


def _points(diff: dict[str, Any]) -> str:
    return f"{100 * diff['delta']:+.1f} {interval_text(diff['ci95'], signed=True)}"


def _html_table(title: str, head: tuple[str, ...], rows: list[tuple]) -> str:
    cells = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<h3>{title}</h3><table><tr>" + "".join(f"<th>{h}</th>" for h in head) + f"</tr>{cells}</table>"


def headline_section(run_dir: str | Path) -> str:
    """The report's first section: the two headline tables (or a line saying which notebook writes them)."""
    held, audit = heldout_headline(run_dir), audit_headline(run_dir)
    parts = ['<section id="headline"><h2>Headline</h2>']
    if held:
        parts.append(_html_table("Held-out MCQ accuracy (95 % Wilson interval over items)",
                                 ("checkpoint", "items", "n", "letter", "concluded event"),
                                 [(r["checkpoint"], r["items"], r["n"], _pct(r["letter"]), _pct(r.get("event")))
                                  for r in held]))
    else:
        parts.append('<p class="fl1-note">No held-out accuracy: notebook 04 writes it (metrics/rl_heldout*.jsonl).</p>')
    if audit:
        parts.append(_html_table("Audit: paired differences, points (95 % interval over items)",
                                 ("difference", "score", "n", "Δ [CI]", "from"),
                                 [(r["difference"], r["score"], r["n"], _points(r), r["audit"]) for r in audit]))
    else:
        parts.append('<p class="fl1-note">No audit differences: notebook 07 writes them (audit.json).</p>')
    return "".join(parts) + "</section>"


__all__ = ["audit_headline", "headline_section", "heldout_headline"]
