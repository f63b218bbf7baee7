"""One way to word errors about user input.

Every public entry point validates through these helpers, so that each message names the
argument, the value given, what was expected and, for names, the closest valid choice.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable
from typing import Any


def closest(name: str, choices: Iterable[str], n: int = 3) -> list[str]:
    """The valid choices closest to ``name`` (case-insensitive), best first."""
    choices = list(choices)
    lowered = {c.lower(): c for c in choices}
    hits = difflib.get_close_matches(name.lower(), list(lowered), n=n, cutoff=0.5)
    return [lowered[h] for h in hits]


def unknown_name_error(what: str, name: object, choices: Iterable[str]) -> ValueError:
    """``ValueError`` for a name that is not one of ``choices``, with the closest matches."""
    choices = sorted(set(choices))
    hint = closest(str(name), choices)
    message = f"unknown {what} {name!r}"
    if hint:
        message += f"; did you mean {' or '.join(repr(h) for h in hint)}?"
    message += f" Valid {what}s: {', '.join(choices)}"
    return ValueError(message)


def check_choice(argument: str, value: Any, choices: Iterable[str]) -> str:
    """Return ``value`` if it is one of ``choices``, else raise a ``ValueError`` naming them."""
    choices = list(choices)
    if not isinstance(value, str) or value not in choices:
        hint = closest(str(value), choices)
        message = f"{argument} must be one of {', '.join(repr(c) for c in choices)}; got {value!r}"
        if hint:
            message += f" (did you mean {hint[0]!r}?)"
        raise ValueError(message)
    return value


def check_number(
    argument: str,
    value: Any,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    strict_minimum: bool = False,
    integer: bool = False,
) -> float:
    """Return ``value`` as a number after checking type, finiteness and range."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        try:
            import numpy as np

            if isinstance(value, np.generic) and np.issubdtype(type(value), np.number):
                value = value.item()
            else:
                raise TypeError
        except TypeError:
            raise TypeError(
                f"{argument} must be a number; got {value!r} of type {type(value).__name__}"
            ) from None
    if integer and not float(value).is_integer():
        raise ValueError(f"{argument} must be an integer; got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{argument} must be finite; got {value!r}")
    if minimum is not None:
        if strict_minimum and not value > minimum:
            raise ValueError(f"{argument} must be > {minimum}; got {value!r}")
        if not strict_minimum and not value >= minimum:
            raise ValueError(f"{argument} must be >= {minimum}; got {value!r}")
    if maximum is not None and not value <= maximum:
        raise ValueError(f"{argument} must be <= {maximum}; got {value!r}")
    return int(value) if integer else value


SEED_LIMIT = 2**63  # seeds are 0 <= seed < 2**63 everywhere (torch's manual_seed takes int64)


def check_seed(argument: str, value: Any) -> int:
    """Return ``value`` as a seed after checking it is an integer with ``0 <= value < 2**63``,
    the one range every initlab command and function accepts."""
    if isinstance(value, bool) or not isinstance(value, int):
        try:
            import numpy as np

            if isinstance(value, np.integer):
                value = int(value)
            else:
                raise TypeError
        except TypeError:
            raise TypeError(
                f"{argument} must be an integer seed; got {value!r} of type {type(value).__name__}"
            ) from None
    if not 0 <= value < SEED_LIMIT:
        raise ValueError(f"{argument} must satisfy 0 <= seed < 2**63; got {value}")
    return int(value)
