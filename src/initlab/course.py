"""The course's NumPy notation: parameters ``W1, b1, ..., WL, bL`` as arrays.

The public face of :mod:`initlab.initializers.course`, where the code lives.
"""

from __future__ import annotations

from initlab.initializers.course import *  # noqa: F403
from initlab.initializers.course import __all__  # noqa: F401
