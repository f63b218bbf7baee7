"""The course's parameter dictionaries as one column vector, and back.

The classic course flattens ``{"W1": ..., "b1": ..., "W2": ..., ...}`` into one column vector
``theta`` of shape ``(n, 1)`` (``dictionary_to_vector``), in the order ``W1, b1, W2, b2, ...,
WL, bL``, each array row by row (``np.reshape(W, (-1, 1))``, C order); the backward pass's
``{"dW1": ..., "db1": ...}`` is flattened in the same order (``gradients_to_vector``), and
``vector_to_dictionary`` undoes the first. The course's helpers hard-code the shapes of its
3-layer network; these read them from the parameters, so they work for any ``L``.

Parameters named otherwise (``gamma1``, ``beta1``, ...) come after ``WL, bL`` in the order of
the dictionary. Only the parameters' keys decide the order: a gradients dictionary may hold
extra entries (``dZ1``, ``dA1``, the cache the course's backward pass returns), which are
ignored.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from initlab._core.validation import check_number, closest

__all__ = [
    "dictionary_to_vector",
    "gradients_to_vector",
    "parameter_order",
    "vector_to_dictionary",
    "with_l2_cost",
]

_LAYERED = re.compile(r"^([Wb])(\d+)$")


def parameter_order(parameters: Mapping[str, Any]) -> list[str]:
    """The course's flattening order of ``parameters``' keys: ``W1, b1, W2, b2, ...`` by layer
    number, then any other keys in the dictionary's order."""
    if not isinstance(parameters, Mapping) or not parameters:
        raise TypeError(
            f"parameters must be a non-empty dict of NumPy arrays such as {{'W1': ..., "
            f"'b1': ...}}; got {type(parameters).__name__}"
        )
    layered, other = [], []
    for key in parameters:
        if not isinstance(key, str):
            raise TypeError(f"parameter names must be strings; got {key!r}")
        match = _LAYERED.match(key)
        if match:
            layered.append((int(match.group(2)), match.group(1) == "b", key))
        else:
            other.append(key)
    return [key for *_, key in sorted(layered)] + other


def _array(name: str, value: Any) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(
            f"{name} must be a NumPy array of numbers; got {type(value).__name__}"
        ) from None
    return array


def dictionary_to_vector(parameters: Mapping[str, Any]) -> tuple[np.ndarray, list[str]]:
    """``(theta, keys)``: all parameters as one float64 column vector ``(n, 1)`` in the course's
    order, and for each entry the name of the parameter it came from (as the course's
    ``dictionary_to_vector`` returns).

    >>> import numpy as np
    >>> theta, keys = dictionary_to_vector({"b1": np.zeros((2, 1)), "W1": np.ones((2, 3))})
    >>> theta.shape, keys[0], keys[-1]
    ((8, 1), 'W1', 'b1')
    """
    order = parameter_order(parameters)
    pieces = [_array(k, parameters[k]).reshape(-1, 1) for k in order]
    keys = [k for k, piece in zip(order, pieces, strict=True) for _ in range(piece.shape[0])]
    return np.concatenate(pieces, axis=0), keys


def vector_to_dictionary(theta: Any, like: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The inverse of :func:`dictionary_to_vector`: ``theta`` cut into arrays with the names and
    shapes of ``like`` (a parameters dictionary, or a dictionary of shapes)."""
    shapes = {k: tuple(v) if isinstance(v, tuple | list) else np.shape(v) for k, v in like.items()}
    order = parameter_order(shapes)
    vector = _array("theta", theta).reshape(-1)
    sizes = [int(np.prod(shapes[k], dtype=np.int64)) for k in order]
    if vector.size != sum(sizes):
        raise ValueError(
            f"theta has {vector.size} entries; the parameters {', '.join(order)} need {sum(sizes)}"
        )
    out, start = {}, 0
    for key, size in zip(order, sizes, strict=True):
        out[key] = vector[start : start + size].reshape(shapes[key]).copy()
        start += size
    return out


def _gradient_key(gradients: Mapping[str, Any], key: str) -> str:
    for candidate in (f"d{key}", key):
        if candidate in gradients:
            return candidate
    names = [str(k) for k in gradients]
    hint = closest(f"d{key}", names)
    raise ValueError(
        f"gradients has no 'd{key}' (nor '{key}') for parameter {key!r}"
        + (f"; did you mean {hint[0]!r}?" if hint else "")
        + f" Gradient keys: {', '.join(names)}"
    )


def gradients_to_vector(
    gradients: Mapping[str, Any], parameters: Mapping[str, Any] | None = None
) -> np.ndarray:
    """The backward pass's gradients as one column vector, in the order of ``parameters``.

    Keys are ``dW1, db1, ...`` (the course) or the parameters' own names; extra entries
    (``dZ1``, ``dA1``) are ignored. Without ``parameters``, the order comes from the gradient
    keys (``dW1`` sorts as ``W1``). Each gradient must have its parameter's shape.
    """
    if not isinstance(gradients, Mapping) or not gradients:
        raise TypeError(
            f"gradients must be a non-empty dict of NumPy arrays such as {{'dW1': ..., "
            f"'db1': ...}}; got {type(gradients).__name__}"
        )
    if parameters is None:
        names = {}
        for k in gradients:
            name = k[1:] if isinstance(k, str) and _LAYERED.match(k[1:]) else k
            names.setdefault(name, None)
        parameters = {k: np.shape(gradients[_gradient_key(gradients, k)]) for k in names}
    pieces = []
    for key in parameter_order(parameters):
        found = _gradient_key(gradients, key)
        grad = _array(found, gradients[found])
        shape = parameters[key] if isinstance(parameters[key], tuple) else np.shape(parameters[key])
        if grad.shape != tuple(shape):
            raise ValueError(
                f"gradients[{found!r}] has shape {grad.shape}; parameter {key!r} has shape "
                f"{tuple(shape)}"
            )
        pieces.append(grad.reshape(-1, 1))
    return np.concatenate(pieces, axis=0)


def with_l2_cost(
    cost: Callable[[dict[str, np.ndarray]], Any], lambd: float, m: int
) -> Callable[[dict[str, np.ndarray]], float]:
    """The course's ``compute_cost_with_regularization``: ``cost(parameters) + lambd / (2 m) *
    sum_l sum(W_l ** 2)`` over the weights ``W1, W2, ...`` (not the biases).

    ``m`` is the number of examples. The matching backward pass adds ``lambd / m * W_l`` to
    each ``dW_l``; checking the wrapped cost against it checks that term too. ``cost`` may
    return ``(cost, cache)`` as the course's forward pass does; the wrapper returns the number.
    """
    if not callable(cost):
        raise TypeError(f"cost must be a function of the parameters; got {type(cost).__name__}")
    lambd = float(check_number("lambd", lambd, minimum=0.0))
    m = int(check_number("m", m, minimum=1, integer=True))

    def regularized(parameters: dict[str, np.ndarray]) -> float:
        weights = [k for k in parameters if isinstance(k, str) and re.match(r"^W\d+$", k)]
        penalty = sum(float(np.sum(np.square(parameters[k]))) for k in weights)
        return course_cost(cost(parameters)) + lambd / (2 * m) * penalty

    return regularized


def course_cost(value: Any) -> float:
    """The cost as a float: ``value`` itself, or its first element when a forward pass returns
    ``(cost, cache)``."""
    if isinstance(value, tuple):
        value = value[0] if value else None
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        array = None
    if array is None or array.size != 1:
        raise TypeError(
            f"cost(parameters) must return a number (or (cost, cache)); got "
            f"{type(value).__name__}" + ("" if array is None else f" of shape {array.shape}")
        )
    return float(array.reshape(()))
