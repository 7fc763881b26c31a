"""Every public name the library had before the one-home-per-concept refactor still imports from where it was."""

from __future__ import annotations

import importlib
from pathlib import Path

NAMES = Path(__file__).parent / "data" / "public_names.txt"


def test_every_earlier_public_name_still_imports_from_its_module():
    rows = [line.split(":") for line in NAMES.read_text().splitlines() if line and not line.startswith("#")]
    assert len(rows) > 500
    missing = [f"{mod}:{name}" for mod, name in rows if not hasattr(importlib.import_module(mod), name)]
    assert missing == []
