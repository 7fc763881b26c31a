"""Moved to :mod:`fl1_core.answers` (one home for reading and judging answers); this name stays importable."""

import sys

from fl1_core import answers as _moved

sys.modules[__name__] = _moved
