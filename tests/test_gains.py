"""Gains: PyTorch's closed forms, and the numeric second-moment gain against SciPy's quad."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import integrate

from initlab import gain
from initlab.initializers.gains import ACTIVATIONS, canonical_activation, gain_method

TORCH_NAMES = ["linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
               "conv_transpose3d", "sigmoid", "tanh", "relu", "leaky_relu", "selu"]  # fmt: skip


@pytest.mark.parametrize("name", TORCH_NAMES)
def test_equals_pytorch(name):
    assert gain(name) == torch.nn.init.calculate_gain(name)
    assert gain(name, method="closed_form") == torch.nn.init.calculate_gain(name)
    assert gain_method(name) == "closed_form"


@pytest.mark.parametrize("slope", [0.0, 0.01, 0.2, 1.0, 3])
def test_leaky_relu_with_param_equals_pytorch(slope):
    assert gain("leaky_relu", slope) == torch.nn.init.calculate_gain("leaky_relu", slope)


def _quad_second_moment(fn) -> float:
    """E[fn(z)^2], z ~ N(0, 1), by adaptive quadrature split at the kinks."""

    def integrand(z: float) -> float:
        value = float(fn(torch.tensor([z], dtype=torch.float64))[0])
        return value * value * math.exp(-z * z / 2) / math.sqrt(2 * math.pi)

    edges = [-np.inf, -3.0, -1.0, 0.0, 1.0, 3.0, 6.0, np.inf]
    return sum(
        integrate.quad(integrand, a, b, epsabs=1e-14, epsrel=1e-12, limit=200)[0]
        for a, b in itertools.pairwise(edges)
    )


SECOND_MOMENT_CASES = {
    "linear": (lambda x: x, None),
    "relu": (torch.relu, None),
    "leaky_relu": (lambda x: F.leaky_relu(x, 0.01), None),
    "tanh": (torch.tanh, None),
    "sigmoid": (torch.sigmoid, None),
    "selu": (F.selu, None),
    "gelu": (F.gelu, None),
    "silu": (F.silu, None),
    "swish": (F.silu, None),
    "elu": (F.elu, None),
    "softplus": (F.softplus, None),
    "mish": (F.mish, None),
}


@pytest.mark.parametrize("name", list(SECOND_MOMENT_CASES))
def test_second_moment_gain_against_quad(name):
    fn, param = SECOND_MOMENT_CASES[name]
    expected = 1 / math.sqrt(_quad_second_moment(fn))
    assert gain(name, param, method="second_moment") == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize(
    ("name", "param", "fn"),
    [
        ("leaky_relu", 0.2, lambda x: F.leaky_relu(x, 0.2)),
        ("elu", 0.5, lambda x: F.elu(x, 0.5)),
        ("softplus", 2.0, lambda x: F.softplus(x, 2.0)),
    ],
)
def test_second_moment_gain_uses_param(name, param, fn):
    expected = 1 / math.sqrt(_quad_second_moment(fn))
    assert gain(name, param, method="second_moment") == pytest.approx(expected, rel=1e-9)


def test_relu_second_moment_gain_is_sqrt2():
    assert abs(gain("relu", method="second_moment") - math.sqrt(2)) < 1e-6
    assert abs(gain("leaky_relu", 0.2, method="second_moment") - math.sqrt(2 / 1.04)) < 1e-6


def test_known_second_moment_values():
    # documented in gains.py: where the closed form is a rule of thumb, the methods differ
    assert gain("tanh", method="second_moment") == pytest.approx(1.5925, abs=1e-4)
    assert gain("sigmoid", method="second_moment") == pytest.approx(1.8462, abs=1e-4)
    # SELU's constants make E[selu(z)^2] = 1: its self-normalizing fixed point
    assert gain("selu", method="second_moment") == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("name", ["gelu", "silu", "swish", "elu", "softplus", "mish"])
def test_extra_names_use_second_moment(name):
    assert gain_method(name) == "second_moment"
    assert gain(name) == gain(name, method="second_moment")
    with pytest.raises(ValueError, match="PyTorch defines no closed-form gain"):
        gain(name, method="closed_form")


def test_aliases():
    assert canonical_activation("swish") == "silu"
    assert canonical_activation("ReLU") == "relu"
    assert gain("identity") == gain("none") == 1.0
    assert {"swish", "silu", "identity", "gelu", "mish"} <= set(ACTIVATIONS)


def test_callables():
    assert gain(torch.relu) == pytest.approx(math.sqrt(2), abs=1e-12)
    assert gain(lambda x: x.clamp(min=0)) == pytest.approx(math.sqrt(2), abs=1e-12)
    # NumPy functions work too (and must not warn: the suite turns warnings into errors)
    assert gain(lambda x: np.maximum(x, 0)) == pytest.approx(math.sqrt(2), abs=1e-12)
    assert gain(np.tanh) == pytest.approx(gain("tanh", method="second_moment"), rel=1e-12)
    hardtanh = 1 / math.sqrt(_quad_second_moment(F.hardtanh))
    assert gain(F.hardtanh) == pytest.approx(hardtanh, rel=1e-9)  # kinks at -/+1
    relu6 = 1 / math.sqrt(_quad_second_moment(F.relu6))
    assert gain(F.relu6) == pytest.approx(relu6, rel=1e-9)


def test_callable_errors():
    with pytest.raises(ValueError, match="no closed-form gain"):
        gain(torch.relu, method="closed_form")
    with pytest.raises(ValueError, match="must act elementwise"):
        gain(lambda x: x.sum())
    with pytest.raises(ValueError, match="finite and positive"):
        gain(lambda x: x * 0)


def test_bad_names_and_params():
    with pytest.raises(ValueError, match="unknown activation 'rleu'; did you mean 'relu'"):
        gain("rleu")
    with pytest.raises(ValueError, match="method must be one of"):
        gain("relu", method="exact")
    with pytest.raises(TypeError, match="param must be a number"):
        gain("leaky_relu", "0.1")
    with pytest.raises(TypeError, match="activation must be a name or a callable"):
        gain(3)
