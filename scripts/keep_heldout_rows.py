"""Keep the scoring fields of a run's held-out response files, without the response text, so that a study's
per-item predictions fit in git and later studies can be paired against it item by item:

    python scripts/keep_heldout_rows.py RUN_DIR OUT_DIR

Every ``RUN_DIR/metrics/rl_heldout*.jsonl`` (what notebook 04 writes: one file per checkpoint) becomes
``OUT_DIR/<same name>`` with the fields :func:`fl1_core.evaluation.heldout_pairs.read_rows` reads plus the question
kind and the changed flag. ``python scripts/heldout_pairs.py OUT_DIR/A.jsonl NAME=OUT_DIR/B.jsonl`` pairs them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fl1_core.evaluation.heldout_pairs import read_rows  # noqa: E402

KEPT = ("id", "kind", "group", "changed", "answer", "pred", "correct", "concluded")


def keep_rows(src: Path, dst: Path) -> int:
    """Write ``src``'s rows with only :data:`KEPT` to ``dst``; return the row count. A file whose rows lack a scoring
    field is refused (:func:`~fl1_core.evaluation.heldout_pairs.read_rows`), naming the file and line."""
    rows = read_rows(src).values()
    dst.write_text("".join(json.dumps({k: row.get(k) for k in KEPT}) + "\n" for row in rows))
    return len(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", type=Path)
    p.add_argument("out_dir", type=Path)
    args = p.parse_args(argv)
    files = sorted((args.run_dir / "metrics").glob("rl_heldout*.jsonl"))
    if not files:
        p.error(f"no metrics/rl_heldout*.jsonl under {args.run_dir}")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for src in files:
        print(f"{src.name}: {keep_rows(src, args.out_dir / src.name)} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
