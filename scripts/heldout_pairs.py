"""Paired event / letter differences of held-out response files against a reference, per group, with 95 % CIs:

    python scripts/heldout_pairs.py REFERENCE.jsonl NAME=OTHER.jsonl [NAME=OTHER.jsonl ...]

The files are what ``fl1 heldout --out X.json`` writes beside X (``X.<name>.jsonl``); see
:mod:`fl1_core.evaluation.heldout_pairs`. Comma-separated files pool several training seeds, paired seed by seed
(the k-th file of a model with the k-th reference file):

    python scripts/heldout_pairs.py S0/ref.jsonl,S1/ref.jsonl NAME=S0/rl.jsonl,S1/rl.jsonl

``--by kind`` gives one row per question kind instead of per group.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fl1_core.evaluation.heldout_pairs import BREAKDOWNS, format_table, paired_table, read_pooled  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("reference")
    p.add_argument("others", nargs="+", metavar="NAME=FILE")
    p.add_argument("--by", choices=BREAKDOWNS, default="group", help="rows per group (default) or per question kind")
    args = p.parse_args(argv)
    references = args.reference.split(",")
    others = {}
    for spec in args.others:
        name, sep, paths = spec.partition("=")
        if not sep or not name or not paths:
            p.error(f"expected NAME=FILE, got {spec!r}")
        if len(paths.split(",")) != len(references):
            p.error(f"{name}: {len(paths.split(','))} files against {len(references)} reference files")
        others[name] = paths.split(",")
    try:
        pooled = {name: read_pooled(files) for name, files in others.items()}
        print(format_table(paired_table(read_pooled(references), pooled, by=args.by)))
    except (ValueError, json.JSONDecodeError) as err:
        p.error(str(err))
    return 0


if __name__ == "__main__":
    sys.exit(main())
