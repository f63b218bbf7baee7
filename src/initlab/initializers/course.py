"""The course notation: a dict of NumPy parameters ``W1, b1, ..., WL, bL``.

``W[l]`` has shape ``(n[l], n[l-1])`` (PyTorch's layout) and ``b[l]`` shape ``(n[l], 1)``.
Draws come from ``numpy.random.RandomState(seed)`` layer by layer, exactly as the classic course
code does after ``np.random.seed(seed)``::

    W[l] = np.random.randn(n[l], n[l-1]) * factor

so the arrays are bit-identical to that code's, without touching NumPy's global RNG.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from initlab._core.validation import check_number
from initlab.initializers import schemes as s
from initlab.initializers.registry import Spec, get


def _factor(init: s.Initializer, n_in: int, n_out: int) -> float | None:
    """The multiplier of ``randn`` for normal-based schemes, ``None`` for other ones."""
    if isinstance(init, s.Random):
        return init.scale
    if isinstance(init, s.Normal) and init.mean == 0:
        return init.std
    if isinstance(init, s._VarianceScalingCore):
        std, distribution = init._std((n_out, n_in), None, None)
        return std if distribution == "normal" else None
    return None


def _draw(init: s.Initializer, rng: np.random.RandomState, n_in: int, n_out: int) -> np.ndarray:
    if isinstance(init, s.Constant):
        return np.full((n_out, n_in), float(init.value))
    factor = _factor(init, n_in, n_out)
    if factor is not None:
        return rng.randn(n_out, n_in) * factor
    if isinstance(init, s._VarianceScalingCore):
        std, distribution = init._std((n_out, n_in), None, None)
        if distribution == "uniform":
            limit = math.sqrt(3.0) * std
            return rng.uniform(-limit, limit, (n_out, n_in))
        # truncated normal at 2 sigma, widened so the truncated variance is std^2
        values = rng.randn(n_out, n_in)
        bad = np.abs(values) > 2
        while bad.any():
            values[bad] = rng.randn(int(bad.sum()))
            bad = np.abs(values) > 2
        return values * (std / s.TRUNCATED_STD)
    # Any other scheme: draw it with torch from a seed taken from this RandomState.
    return init.sample((n_out, n_in), seed=int(rng.randint(0, 2**31 - 1)), dtype="float64")


__all__ = ["initialize_parameters"]


def initialize_parameters(
    layer_dims: Sequence[int], scheme: Spec = "he", seed: int = 3
) -> dict[str, np.ndarray]:
    """Course-style parameters for a fully connected net with sizes ``layer_dims``.

    ``layer_dims = [n0, n1, ..., nL]`` (``n0`` = input features). Schemes: ``zeros``,
    ``random`` (``randn * scale``, e.g. ``"random:scale=10"``), ``he`` (``randn *
    sqrt(2 / n[l-1])``), ``xavier``/``glorot`` (``randn * sqrt(2 / (n[l-1] + n[l]))``),
    ``lecun`` (``randn * sqrt(1 / n[l-1])``), or any spec :func:`initlab.get` accepts
    (uniform and truncated distributions draw from the same ``RandomState``). Biases are zero.
    Arrays are float64.

    >>> p = initialize_parameters([2, 10, 5, 1], "he", seed=3)
    >>> p["W1"].shape, p["b1"].shape
    ((10, 2), (10, 1))
    """
    dims = list(layer_dims)
    if len(dims) < 2:
        raise ValueError(f"layer_dims needs at least 2 sizes (input and output); got {dims}")
    for i, d in enumerate(dims):
        check_number(f"layer_dims[{i}]", d, minimum=1, integer=True)
    check_number("seed", seed, minimum=0, maximum=2**32 - 1, integer=True)  # RandomState's range
    init = get(scheme)
    rng = np.random.RandomState(int(seed))
    params: dict[str, np.ndarray] = {}
    for layer in range(1, len(dims)):
        n_in, n_out = int(dims[layer - 1]), int(dims[layer])
        params[f"W{layer}"] = _draw(init, rng, n_in, n_out)
        params[f"b{layer}"] = np.zeros((n_out, 1))
    return params
