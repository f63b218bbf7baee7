"""The course's NumPy notation: parameters ``W1, b1, ..., WL, bL`` as arrays.

The public face of :mod:`initlab.initializers.course` (initializing the parameters) and
:mod:`initlab.gradient_check.course` (checking a hand-written backward pass), where the code
lives.
"""

from __future__ import annotations

from initlab.gradient_check.course import (
    CourseEntry,
    CourseGradientCheck,
    ParameterDifference,
    gradient_check,
)
from initlab.gradient_check.course_vectors import (
    dictionary_to_vector,
    gradients_to_vector,
    vector_to_dictionary,
    with_l2_cost,
)
from initlab.initializers.course import *  # noqa: F403
from initlab.initializers.course import __all__ as _initializer_names

__all__ = [
    *_initializer_names,
    "CourseEntry",
    "CourseGradientCheck",
    "ParameterDifference",
    "dictionary_to_vector",
    "gradient_check",
    "gradients_to_vector",
    "vector_to_dictionary",
    "with_l2_cost",
]
