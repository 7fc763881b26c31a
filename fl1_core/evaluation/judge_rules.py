"""Moved to :mod:`fl1_core.judge.rules` (the judge sits below rl, curation and evaluation); this name stays importable."""

import sys

from fl1_core.judge import rules as _moved

sys.modules[__name__] = _moved
