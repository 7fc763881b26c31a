"""How many held-out conclusions name a collision with its roles swapped, and the event score read either way round:

    python scripts/role_swaps.py DATA.jsonl RESPONSES.jsonl[,RESPONSES2…] [--out DIR]

RESPONSES are ``fl1 heldout`` response files (``…/H.<name>.jsonl``, with ``text``) of the held-out MCQ file DATA.
A collision's subject is the faster body ("the A hits the B"), and the world never offers the swapped sentence as a
distractor (``fl1_core.data.world.options``), so a final thought that names no option but states one option's
collision with the roles swapped points at that option alone. For each file, on the event kinds (every kind but the
frame-needing ones), it prints the items, the unnamed conclusions, how many of those are such role swaps, and the
type of event the final thoughts conclude (the first event each states: bounce, hit, fall, …) with how many of each
are right under the strict reading, and, for the
conclusions of a gold collision (in the world's order or swapped), how often the subject written is the body the
response's own first thought describes as moving and the other as resting. With
``--out DIR`` it writes each file's rows again under DIR (same file name) with ``concluded`` read either way round:

    concluded_either_i = concluded_i if concluded_i ≠ "" else the one option whose role-swapped collision the final
                         thought names ("" when none or several)

so that ``python scripts/heldout_pairs.py`` pairs that reading as it pairs the strict one
(:mod:`fl1_core.evaluation.role_swaps`). The strict reading (:func:`fl1_core.answers.concluded_option`) stays the
primary score; this is a diagnostic of where RL's loss sits.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fl1_core.answers import option_lines  # noqa: E402
from fl1_core.data.formats import load_rl_records  # noqa: E402
from fl1_core.evaluation.heldout_pairs import read_rows  # noqa: E402
from fl1_core.evaluation.role_swaps import conclusion_summary, either_role, mover_agreement  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data", help="the held-out MCQ file the responses answer (its option lines)")
    p.add_argument("responses", help="fl1 heldout response files, comma-separated")
    p.add_argument("--out", type=Path, default=None, help="write the rows with the either-role reading here")
    args = p.parse_args(argv)
    try:
        loaded = load_rl_records(args.data, check_videos=False)  # only the option lines are read
    except (OSError, ValueError) as err:
        p.error(str(err))
    options = {r.id: option_lines(r.question_text) for r in loaded.records}
    for path in args.responses.split(","):
        try:
            rows = list(read_rows(path).values())
        except (ValueError, json.JSONDecodeError) as err:
            p.error(str(err))
        if any("text" not in r for r in rows):
            p.error(f"{path}: rows without 'text' (keep the fl1 heldout response file, not the kept rows)")
        unknown = [r["id"] for r in rows if r["id"] not in options]
        if unknown:
            p.error(f"{path}: {len(unknown)} item(s) not in {args.data}, e.g. {unknown[0]}")
        read = [either_role(r, options[r["id"]]) for r in rows]
        c = conclusion_summary(read)
        print(f"{path}: {c['items']} event-kind items, {c['unnamed']} unnamed, of them {c['role_swaps']} role swaps "
              f"({c['role_swaps_gold']} of the gold option); concluded event types: "
              + ", ".join(f"{t} {n} ({c['types_right'][t]} right)" for t, n in c["types"].items()))
        agree = mover_agreement(read, options)
        print("  gold collisions concluded: " + "; ".join(
            f"{name} {sum(n.values())}, written subject = the first thought's mover {n[True]}, = its resting body "
            f"{n[False]}, neither {n[None]}" for name, n in agree.items()))
        if args.out is not None:
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / Path(path).name).write_text("".join(json.dumps(r) + "\n" for r in read))
    return 0


if __name__ == "__main__":
    sys.exit(main())
