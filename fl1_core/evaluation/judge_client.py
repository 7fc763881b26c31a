"""Moved to :mod:`fl1_core.judge.client` (the judge sits below rl, curation and evaluation); this name stays importable."""

import sys

from fl1_core.judge import client as _moved

sys.modules[__name__] = _moved
