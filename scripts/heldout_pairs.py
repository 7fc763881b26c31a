"""Paired event / letter differences of held-out response files against a reference, per group, with 95 % CIs:

    python scripts/heldout_pairs.py REFERENCE.jsonl NAME=OTHER.jsonl [NAME=OTHER.jsonl ...]

The files are what ``fl1 heldout --out X.json`` writes beside X (``X.<name>.jsonl``); see
:mod:`fl1_core.evaluation.heldout_pairs`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fl1_core.evaluation.heldout_pairs import format_table, paired_table, read_rows  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("reference")
    p.add_argument("others", nargs="+", metavar="NAME=FILE")
    args = p.parse_args(argv)
    others = {}
    for spec in args.others:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            p.error(f"expected NAME=FILE, got {spec!r}")
        others[name] = read_rows(path)
    print(format_table(paired_table(read_rows(args.reference), others)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
