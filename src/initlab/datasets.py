"""Datasets for the bench: the course's circles, moons, spirals, blobs, digits, and CSV/NPZ files.

This module is the public face of :mod:`initlab.bench.datasets`, where the code lives.
"""

from __future__ import annotations

from initlab.bench.datasets import *  # noqa: F403
from initlab.bench.datasets import __all__  # noqa: F401
