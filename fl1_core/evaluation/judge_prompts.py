"""Moved to :mod:`fl1_core.judge.prompts` (the judge sits below rl, curation and evaluation); this name stays importable."""

import sys

from fl1_core.judge import prompts as _moved

sys.modules[__name__] = _moved
