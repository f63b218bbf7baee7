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


class UnknownNameError(ValueError):
    """A name that is not one of the valid choices. Besides the message it carries ``what``,
    ``name``, ``choices`` and the closest ``matches``, so a caller with less room (the CLI's
    one-line errors) can word it shorter."""

    def __init__(
        self,
        message: str,
        *,
        what: str = "",
        name: object = None,
        choices: Iterable[str] = (),
        matches: Iterable[str] = (),
    ) -> None:
        super().__init__(message)
        self.what, self.name = what, name
        self.choices, self.matches = list(choices), list(matches)

    def __reduce__(self) -> Any:  # keyword fields survive pickling (Ray workers)
        fields = {"what": self.what, "name": self.name, "choices": self.choices,
                  "matches": self.matches}  # fmt: skip
        return _rebuild_unknown_name, (str(self), fields)


def _rebuild_unknown_name(message: str, fields: dict[str, Any]) -> UnknownNameError:
    return UnknownNameError(message, **fields)


def unknown_name_error(
    what: str, name: object, choices: Iterable[str], plural: str | None = None
) -> UnknownNameError:
    """``ValueError`` for a name that is not one of ``choices``, with the closest matches.

    ``what`` is a noun (``"dataset"``); ``plural`` its plural when adding ``s`` is wrong
    (``what="array in data.npz"`` needs ``plural="arrays in data.npz"``).
    """
    choices = sorted(set(choices))
    hint = closest(str(name), choices)
    message = f"unknown {what} {name!r}"
    if hint:
        message += f"; did you mean {' or '.join(repr(h) for h in hint)}?"
    message += f" Valid {plural or what + 's'}: {', '.join(choices) or '(none)'}"
    return UnknownNameError(message, what=what, name=name, choices=choices, matches=hint)


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


SEED_LIMIT = 2**63
"""Seeds are integers in ``[0, 2**63)``: every seed fits torch's ``manual_seed`` and NumPy's
``SeedSequence`` without wrapping, and the same range holds at every boundary (API and CLI)."""


def check_seed(value: Any, argument: str = "seed") -> int:
    """Return ``value`` as an ``int`` seed in ``[0, 2**63)``, else a ``TypeError``/``ValueError``
    naming ``argument``. Integer-valued floats (``3.0``) are accepted; ``True``, ``1.5``, huge
    or negative values are not."""
    if isinstance(value, bool):
        raise TypeError(f"{argument} must be an integer; got {value!r}")
    if isinstance(value, int):
        seed = value
    else:
        try:
            import numpy as np

            if isinstance(value, np.integer) or (
                isinstance(value, float | np.floating)
                and math.isfinite(value)
                and float(value).is_integer()
            ):
                seed = int(value)
            else:
                raise TypeError
        except TypeError:
            raise TypeError(
                f"{argument} must be an integer in [0, 2**63); got {value!r} of type "
                f"{type(value).__name__}"
            ) from None
    if not 0 <= seed < SEED_LIMIT:
        raise ValueError(f"{argument} must be an integer in [0, 2**63); got {value!r}")
    return seed


def check_nonempty(argument: str, value: Any) -> Any:
    """Refuse an empty (or all-blank) string value: ``--out ''`` is a mistake, not a default."""
    if isinstance(value, str) and not value.strip():
        raise ValueError(f"{argument} must not be empty; got {value!r}")
    return value
