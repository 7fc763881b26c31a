"""How often RL's rollouts earn their reward, by the type of event their answer states:

    python scripts/rollout_rewards.py RUN_DIR[,RUN_DIR2…] --data RL.jsonl [--window 10] [--out F.json]

RUN_DIR is an ``fl1 rl`` output folder (its ``rollouts.jsonl``, or ``rollouts.rank<k>.jsonl`` per process), RL.jsonl
the RL file it trained on. Over the free-form records whose answer is an event (the world's event kinds), it pools
the runs and prints, per window of steps and event type (the first event each answer states: bounce, hit, fall, …),
how many responses stated it, how many of those were rewarded (acc = 1) and the share, beside how many of the drawn
records had a reference of that type (:func:`fl1_core.rl.rollout_log.rewards_by_event_type`). A type whose answers
are rewarded less often than the others loses probability under any of the three algorithms; set it beside the
held-out conclusions of the same type (``scripts/role_swaps.py`` prints how many are right).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fl1_core.rl.rollout_log import ROLLOUTS_LOG, read_rollouts, rewards_by_event_type  # noqa: E402
from fl1_core.runs import read_jsonl  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", help="fl1 rl output folders, comma-separated")
    p.add_argument("--data", type=Path, required=True, help="the RL file the runs trained on (JSONL)")
    p.add_argument("--window", type=int, default=10, help="steps per row (default 10)")
    p.add_argument("--out", type=Path, default=None, help="also write the table as JSON here")
    args = p.parse_args(argv)
    if args.window < 1:
        p.error(f"--window must be >= 1, got {args.window}")
    if not args.data.is_file():
        p.error(f"{args.data}: no such RL file")
    try:
        records = read_jsonl(args.data)
    except (OSError, json.JSONDecodeError) as err:
        p.error(f"{args.data}: {err}")
    rows = []
    for run in args.runs.split(","):
        logged = read_rollouts(run)
        if not logged:
            p.error(f"{run}: no {ROLLOUTS_LOG}.jsonl (an RL run with log_rollouts on writes it)")
        rows.extend(logged)
    table = rewards_by_event_type(rows, records, window=args.window)
    if not table:
        p.error(f"no rollout of a free-form event record of {args.data} in these runs")
    for row in table:
        share = "" if row["share_rewarded"] is None else f"{100 * row['share_rewarded']:5.1f} %"
        print(f"steps {row['steps']:>7s}  {row['type']:7s} references {row['references']:5d}  said {row['said']:5d}  "
              f"rewarded {row['rewarded']:5d}  {share}")
    if args.out is not None:
        args.out.write_text(json.dumps(table, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
