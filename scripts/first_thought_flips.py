"""How a checkpoint's held-out answers moved against a reference's, split by whether its first thought changed:

    python scripts/first_thought_flips.py REF.jsonl[,REF2…] OTHER.jsonl[,OTHER2…] [--data HELDOUT.jsonl]

Both are ``fl1 heldout`` response files (``…/H.<name>.jsonl``, with ``text``), comma-separated over seeds in the
same order. The first thought is the first ``<reason>`` span up to its "Next," (what the last observed frame shows).
On the event kinds (every kind but the frame-needing ones) it prints the share of items whose first thought differs,
and the concluded-event flips (+ right now and wrong before, − the reverse) among the items where it differs and
where it does not. With ``--data`` (the held-out file the responses answer, whose ``meta.reference_thoughts[0]`` is
the world's reading of the last observed frame) it also scores each first thought's reading of which bodies move:
right when the bodies it describes as rolling, sliding or falling are exactly the reference's
(:func:`fl1_core.evaluation.role_swaps.movers_read`), and prints both files' share right with the paired difference
and its 95 % CI (:func:`fl1_core.intervals.paired_difference`), and for each file the concluded event's accuracy on
the items it reads right and on those it reads wrong (:func:`event_by_reading`), and how often the first event the
chain predicts is the world's (:func:`first_events_right`; with ``fl1 heldout --route reading`` files it says where a
chain that starts from the right reading goes wrong).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fl1_core.answers import normalize  # noqa: E402
from fl1_core.data.world.world_types import FRAME_KINDS  # noqa: E402
from fl1_core.evaluation.heldout_pairs import read_rows  # noqa: E402
from fl1_core.evaluation.role_swaps import movers_read  # noqa: E402
from fl1_core.intervals import paired_difference, unpaired_difference  # noqa: E402

_REASON = re.compile(r"<reason>(.*?)</reason>", re.S)
_NEXT = re.compile(r"Next, (.*?)\.(?=\s|<|$)", re.S)


def first_thought(text: str) -> str:
    """The first reasoning span up to its "Next," ("" when the response has none)."""
    m = _REASON.search(text or "")
    return m.group(1).split(" Next,")[0].strip() if m else ""


def flips(pairs: list[tuple[dict, dict]]) -> dict[str, int]:
    """Counts over (reference row, other row) pairs of event-kind items: items, changed first thoughts, and the
    concluded-event flips among changed and unchanged ones."""
    out = {"items": 0, "changed": 0, "changed_up": 0, "changed_down": 0, "same_up": 0, "same_down": 0}
    for ref, other in pairs:
        if ref["kind"] in FRAME_KINDS:
            continue
        out["items"] += 1
        before, after = ref["concluded"] == ref["answer"], other["concluded"] == other["answer"]
        key = "changed" if first_thought(ref["text"]) != first_thought(other["text"]) else "same"
        out["changed"] += key == "changed"
        out[f"{key}_up"] += after and not before
        out[f"{key}_down"] += before and not after
    return out


def movers_right(pairs: list[tuple[dict, dict]], references: dict[str, str]) -> dict:
    """On the event-kind items of ``pairs`` with a world reading in ``references`` (id → the world's first thought):
    :func:`~fl1_core.evaluation.role_swaps.movers_read` of each side, and the paired difference other − reference."""
    before = movers_read([ref for ref, _ in pairs], references)
    after = movers_read([other for _, other in pairs], references)
    scored = [(b, bool(a)) for b, a in zip(before, after) if b is not None]
    ref_ok, other_ok = [b for b, _ in scored], [a for _, a in scored]
    return {"items": len(ref_ok), "reference": sum(ref_ok), "other": sum(other_ok),
            "delta": paired_difference(other_ok, ref_ok)}


def first_predicted_event(text: str) -> str | None:
    """The first event the chain predicts: what follows the first "Next," up to its full stop, normalised
    (:func:`fl1_core.answers.normalize`); ``None`` without one."""
    m = _NEXT.search(text or "")
    return normalize(m.group(1)) if m else None


def first_events_right(pairs: list[tuple[dict, dict]], references: dict[str, str]) -> dict:
    """On the event-kind items whose world reference predicts a first event: does each side's first predicted event
    equal the world's (:func:`first_predicted_event`), and the paired difference other − reference."""
    ref_ok, other_ok = [], []
    for ref, other in pairs:
        want = first_predicted_event(references.get(ref["id"], ""))
        if ref["kind"] in FRAME_KINDS or want is None:
            continue
        ref_ok.append(first_predicted_event(ref["text"]) == want)
        other_ok.append(first_predicted_event(other["text"]) == want)
    return {"items": len(ref_ok), "reference": sum(ref_ok), "other": sum(other_ok),
            "delta": paired_difference(other_ok, ref_ok)}


def event_by_reading(rows: list[dict], references: dict[str, str]) -> dict:
    """On the event-kind rows with a world reading: whether the concluded event is right, split by whether the first
    thought reads the moving bodies right, and the difference of the two shares (different items: unpaired)."""
    split: dict[str, list[bool]] = {"read_right": [], "read_wrong": []}
    for row, ok in zip(rows, movers_read(rows, references)):
        if ok is not None:
            split["read_right" if ok else "read_wrong"].append(row["concluded"] == row["answer"])
    return {**split, "delta": unpaired_difference(split["read_right"], split["read_wrong"])}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("reference")
    p.add_argument("other")
    p.add_argument("--data", type=Path, default=None,
                   help="the held-out MCQ file: also score the first thought's moving bodies against its reference")
    args = p.parse_args(argv)
    refs, others = args.reference.split(","), args.other.split(",")
    if len(refs) != len(others):
        p.error(f"{len(refs)} reference files but {len(others)} other files")
    pairs = []
    for ref_path, other_path in zip(refs, others):
        try:
            ref, other = read_rows(ref_path), read_rows(other_path)
        except (ValueError, json.JSONDecodeError) as err:
            p.error(str(err))
        if ref.keys() != other.keys():
            p.error(f"{ref_path} and {other_path} hold different items")
        pairs += [(ref[k], other[k]) for k in ref]
    c = flips(pairs)
    print(f"{c['items']} event-kind items; first thought changed on {c['changed']} "
          f"({100 * c['changed'] / max(1, c['items']):.1f} %); concluded event where it changed "
          f"+{c['changed_up']} / -{c['changed_down']}, where it did not +{c['same_up']} / -{c['same_down']}")
    if args.data is not None:
        try:
            lines = [json.loads(line) for line in args.data.read_text().splitlines() if line.strip()]
        except (OSError, json.JSONDecodeError) as err:
            p.error(f"{args.data}: {err}")
        references = {r["id"]: (r.get("meta", {}).get("reference_thoughts") or [""])[0] for r in lines if "id" in r}
        m = movers_right(pairs, references)
        if not m["items"]:
            p.error(f"{args.data}: none of the event-kind items of the responses")
        d = m["delta"]
        print(f"first thought names the moving bodies right on {m['items']} event-kind items: reference "
              f"{100 * m['reference'] / m['items']:.1f} %, other {100 * m['other'] / m['items']:.1f} %, "
              f"Δ {100 * d['delta']:+.1f} [{100 * d['ci95'][0]:+.1f}, {100 * d['ci95'][1]:+.1f}]")
        f = first_events_right(pairs, references)
        if f["items"]:
            d = f["delta"]
            print(f"first predicted event (after the first \"Next,\") is the world's on {f['items']} items: reference "
                  f"{100 * f['reference'] / f['items']:.1f} %, other {100 * f['other'] / f['items']:.1f} %, "
                  f"Δ {100 * d['delta']:+.1f} [{100 * d['ci95'][0]:+.1f}, {100 * d['ci95'][1]:+.1f}]")
        for side, rows in (("reference", [r for r, _ in pairs]), ("other", [o for _, o in pairs])):
            e = event_by_reading(rows, references)
            right, wrong, d = e["read_right"], e["read_wrong"], e["delta"]
            print(f"{side}: concluded event right on {100 * sum(right) / max(1, len(right)):.1f} % of the {len(right)} "
                  f"items read right, {100 * sum(wrong) / max(1, len(wrong)):.1f} % of the {len(wrong)} read wrong, "
                  f"Δ {100 * d['delta']:+.1f} [{100 * d['ci95'][0]:+.1f}, {100 * d['ci95'][1]:+.1f}] (unpaired)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
