"""The gain of an activation: how much to scale a unit-variance initialization for it.

Two methods, and why they differ
--------------------------------
``closed_form`` is ``torch.nn.init.calculate_gain``, value for value:

============================  =====================================
linear, conv*, sigmoid        1
tanh                          5/3
relu                          sqrt(2)
leaky_relu (slope a=0.01)     sqrt(2 / (1 + a^2))
selu                          3/4
============================  =====================================

``second_moment`` computes ``1 / sqrt(E[phi(z)^2])`` for ``z ~ N(0, 1)`` numerically: the
factor that keeps the second moment of the pre-activations at 1 from layer to layer when the
weights have variance ``gain^2 / fan_in``. It agrees with the closed form for linear, relu and
leaky_relu (exactly: those are the cases the closed form was derived for), and differs where the
closed form is a rule of thumb: tanh gives 1.5925 (PyTorch's 5/3 was chosen empirically),
sigmoid 1.8462 (its mean is 0.5, which the second moment counts and PyTorch's 1 ignores), selu
exactly 1 (SELU's constants make ``E[selu(z)^2] = 1``, its self-normalizing fixed point, so
LeCun's ``1 / fan_in`` is right; PyTorch's 3/4 is a deliberate choice to shrink the weights for
self-normalizing nets).

Names PyTorch does not know (gelu, silu/swish, elu, softplus, mish) and any callable use
``second_moment``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from functools import lru_cache
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from initlab._core.validation import check_choice, check_number, unknown_name_error

Method = Literal["auto", "closed_form", "second_moment"]

_ALIASES = {"identity": "linear", "none": "linear", "swish": "silu"}
_CLOSED_FORM_NAMES = (
    "linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
    "conv_transpose3d", "sigmoid", "tanh", "relu", "leaky_relu", "selu",
)  # fmt: skip

# activation name -> (function of a float64 tensor and the optional parameter, default parameter)
_FUNCTIONS: dict[str, tuple[Callable[[torch.Tensor, float | None], torch.Tensor], float | None]] = {
    "linear": (lambda x, p: x, None),
    "sigmoid": (lambda x, p: torch.sigmoid(x), None),
    "tanh": (lambda x, p: torch.tanh(x), None),
    "relu": (lambda x, p: torch.relu(x), None),
    "leaky_relu": (lambda x, p: F.leaky_relu(x, p), 0.01),
    "selu": (lambda x, p: F.selu(x), None),
    "gelu": (lambda x, p: F.gelu(x), None),
    "silu": (lambda x, p: F.silu(x), None),
    "elu": (lambda x, p: F.elu(x, p), 1.0),
    "softplus": (lambda x, p: F.softplus(x, p), 1.0),
    "mish": (lambda x, p: F.mish(x), None),
}
for _conv in _CLOSED_FORM_NAMES[1:7]:
    _FUNCTIONS[_conv] = _FUNCTIONS["linear"]

ACTIVATIONS: tuple[str, ...] = tuple(sorted({*_FUNCTIONS, *_ALIASES}))
"""Every activation name :func:`gain` accepts."""

# Composite Gauss-Legendre quadrature on unit panels over [-12, 12]: the kinks of relu, elu,
# selu, hardtanh, relu6, ... lie on panel edges, so piecewise-smooth activations integrate to
# ~1e-15 (Gauss-Hermite would converge only algebraically there: 1e-5 error for elu and selu).
# The mass of N(0, 1) beyond 12 std is below 1e-32.
_QUADRATURE_HALF_WIDTH = 12
_NODES_PER_PANEL = 20


def canonical_activation(name: str) -> str:
    """The canonical spelling of an activation name (``"swish"`` -> ``"silu"``)."""
    if not isinstance(name, str):
        raise TypeError(f"activation must be a name or a callable; got {name!r}")
    key = name.lower()
    key = _ALIASES.get(key, key)
    if key not in _FUNCTIONS:
        raise unknown_name_error("activation", name, ACTIVATIONS)
    return key


def _closed_form(name: str, param: float | None) -> float:
    if name == "tanh":
        return 5.0 / 3
    if name == "relu":
        return math.sqrt(2.0)
    if name == "leaky_relu":
        slope = 0.01 if param is None else param
        return math.sqrt(2.0 / (1 + slope**2))
    if name == "selu":
        return 3.0 / 4
    return 1.0  # linear, conv*, sigmoid


@lru_cache(maxsize=1)
def _quadrature() -> tuple[torch.Tensor, torch.Tensor]:
    """Nodes and weights (float64) with ``sum(w * f(x)) ~= E[f(z)]``, ``z ~ N(0, 1)``."""
    x, w = np.polynomial.legendre.leggauss(_NODES_PER_PANEL)  # on [-1, 1]
    left = np.arange(-_QUADRATURE_HALF_WIDTH, _QUADRATURE_HALF_WIDTH)[:, None]
    nodes = (left + (x + 1) / 2).reshape(-1)
    weights = np.tile(w / 2, len(left)) * np.exp(-(nodes**2) / 2) / math.sqrt(2 * math.pi)
    return torch.from_numpy(nodes), torch.from_numpy(weights)


def _evaluate(fn: Callable, nodes: torch.Tensor) -> torch.Tensor:
    """``fn(nodes)`` as float64: a tensor first, a NumPy array if ``fn`` rejects tensors."""
    try:
        with warnings.catch_warnings():
            # a NumPy function applied to a tensor warns (NumPy 2): use the NumPy path instead
            warnings.simplefilter("error", DeprecationWarning)
            return torch.as_tensor(fn(nodes.clone()), dtype=torch.float64)
    except (TypeError, AttributeError, DeprecationWarning):
        values = np.asarray(fn(nodes.numpy().copy()), dtype=np.float64)
        return torch.from_numpy(values)


def second_moment(fn: Callable) -> float:
    """``E[fn(z)^2]`` for ``z ~ N(0, 1)``: ``integral fn(z)^2 exp(-z^2/2) / sqrt(2 pi) dz``.

    Composite Gauss-Legendre quadrature in float64 on the unit panels of [-12, 12], 20 nodes
    each, so kinks at integers (relu, elu, hardtanh, relu6) are exact panel edges: error
    ~1e-15 for the built-in activations. ``fn`` takes a float64 tensor (a NumPy array if it
    rejects tensors) and acts elementwise.
    """
    nodes, weights = _quadrature()
    values = _evaluate(fn, nodes)
    if values.shape != nodes.shape:
        raise ValueError(
            f"the activation must act elementwise: it mapped {tuple(nodes.shape)} inputs "
            f"to shape {tuple(values.shape)}"
        )
    moment = float((weights * values**2).sum())
    if not math.isfinite(moment) or moment <= 0:
        raise ValueError(f"E[phi(z)^2] must be finite and positive; got {moment}")
    return moment


def gain(
    activation: str | Callable = "linear",
    param: float | None = None,
    *,
    method: Method = "auto",
) -> float:
    """Recommended gain for ``activation``.

    ``method="auto"`` uses PyTorch's closed form for the names PyTorch defines (so the value
    equals ``torch.nn.init.calculate_gain``) and ``second_moment`` for every other name or
    callable. ``param`` is the negative slope of leaky_relu (default 0.01), the alpha of elu
    (default 1) or the beta of softplus (default 1).

    ``second_moment``: ``gain = 1 / sqrt(E[phi(z)^2])``, ``z ~ N(0, 1)``.

    >>> round(gain("relu"), 6)
    1.414214
    >>> round(gain("tanh", method="second_moment"), 3)
    1.593
    """
    check_choice("method", method, ("auto", "closed_form", "second_moment"))
    if param is not None:
        param = check_number("param", param)
    if callable(activation) and not isinstance(activation, str):
        if method == "closed_form":
            raise ValueError("a callable activation has no closed-form gain; use second_moment")
        return 1.0 / math.sqrt(second_moment(activation))
    name = canonical_activation(activation)
    if method == "closed_form" and name not in _CLOSED_FORM_NAMES:
        raise ValueError(
            f"PyTorch defines no closed-form gain for {activation!r}; "
            f"closed forms exist for {', '.join(_CLOSED_FORM_NAMES)}. Use method='second_moment'"
        )
    if method == "second_moment" or name not in _CLOSED_FORM_NAMES:
        fn, default = _FUNCTIONS[name]
        p = default if param is None else param
        return 1.0 / math.sqrt(second_moment(lambda x: fn(x, p)))
    return _closed_form(name, param)


def gain_method(activation: str) -> str:
    """Which method ``gain(activation)`` uses by default: ``closed_form`` or ``second_moment``."""
    return (
        "closed_form"
        if canonical_activation(activation) in _CLOSED_FORM_NAMES
        else ("second_moment")
    )
