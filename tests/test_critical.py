"""Mean-field calculator against closed forms, an independent quadrature and the research
note's table (Gauss-Hermite, 201 points, computed separately)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import brentq

from initlab.initializers.critical import critical, edge_of_chaos, mean_field

# An independent implementation: probabilists' Gauss-Hermite with 201 nodes and closed-form
# derivatives of tanh (the library uses Gauss-Legendre panels and autograd).
_Z, _W = np.polynomial.hermite_e.hermegauss(201)
_W = _W / _W.sum()


def _tanh_q_star(sw2: float, sb2: float) -> float:
    return brentq(lambda q: sw2 * (_W * np.tanh(np.sqrt(q) * _Z) ** 2).sum() + sb2 - q, 1e-9, 1e3)


def _tanh_chi1(sw2: float, sb2: float) -> float:
    q = _tanh_q_star(sw2, sb2)
    return sw2 * (_W * (1 - np.tanh(np.sqrt(q) * _Z) ** 2) ** 2).sum()


def test_relu_critical_is_he():
    c = critical("relu")
    assert c.sigma_w2 == pytest.approx(2.0, abs=1e-12)
    assert c.chi_1 == pytest.approx(1.0, abs=1e-12)
    assert c.phase == "critical"
    assert critical("leaky_relu", param=0.2).sigma_w2 == pytest.approx(2 / 1.04, rel=1e-12)
    assert critical("linear").sigma_w2 == pytest.approx(1.0, abs=1e-12)


def test_tanh_critical_matches_independent_quadrature():
    ours = critical("tanh", 0.05)
    theirs = brentq(lambda sw2: _tanh_chi1(sw2, 0.05) - 1, 1.01, 4.0, xtol=1e-12)
    assert ours.sigma_w2 == pytest.approx(theirs, abs=1e-6)
    assert round(ours.sigma_w2, 3) == 1.761  # the research note's value
    assert ours.q_star == pytest.approx(_tanh_q_star(theirs, 0.05), rel=1e-6)


@pytest.mark.parametrize(("sb2", "expected"), [(0.0, 1.0), (0.01, 1.424), (0.1, 1.986)])
def test_tanh_critical_line(sb2, expected):
    line = edge_of_chaos("tanh", [sb2])
    assert line[0].sigma_w2 == pytest.approx(expected, abs=1e-3)


# sigma_w^2 -> xi_c at sigma_b^2 = 0.05 (research note section 2.7, two-three significant digits)
_XI_C = {1.0: 3.6, 1.3: 7.8, 1.5: 15.8, 1.7: 75, 1.9: 39, 2.5: 11.8, 4.0: 7.0}


@pytest.mark.parametrize(("sw2", "xi_c"), sorted(_XI_C.items()))
def test_tanh_depth_scale_matches_table(sw2, xi_c):
    m = mean_field("tanh", sw2, 0.05)
    # the table rounds to 2-3 significant digits: 2% covers the rounding, and a wrong formula
    # (xi_q instead of xi_c, c* = 1 in the chaotic phase) is off by far more
    assert m.xi_c == pytest.approx(xi_c, rel=0.02)
    assert m.max_depth == pytest.approx(6 * m.xi_c)
    assert m.phase == ("ordered" if sw2 < 1.761 else "chaotic")


def test_ordered_depth_scale_is_minus_one_over_log_chi1_independently():
    sw2 = 1.3
    chi1 = _tanh_chi1(sw2, 0.05)
    assert mean_field("tanh", sw2, 0.05).xi_c == pytest.approx(-1 / math.log(chi1), rel=1e-5)


def test_callable_activation_equals_named():
    import torch

    assert critical(torch.tanh, 0.05).sigma_w2 == pytest.approx(
        critical("tanh", 0.05).sigma_w2, rel=1e-9
    )


def test_jacobian_spread_orthogonal_linear_is_zero():
    assert critical("linear", dist="orthogonal").jacobian_spread_per_layer == pytest.approx(0)
    assert critical("linear").jacobian_spread_per_layer == pytest.approx(1)
    assert critical("relu").jacobian_spread_per_layer == pytest.approx(2)


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="dist"):
        critical("tanh", dist="orthogonl")
    with pytest.raises(ValueError, match="sigma_b2"):
        critical("tanh", -1.0)
    with pytest.raises(ValueError, match="did you mean 'tanh'"):
        critical("tahn")


def test_a_callers_no_grad_does_not_change_the_answer():
    # Under no_grad the activation's derivatives used to fall back to finite differences:
    # sigma_w^2 for tanh at sigma_b^2 = 1e-6 moved from 1.01825262 to 1.01825299.
    import torch

    expected = critical("tanh", 1e-6)
    with torch.no_grad():
        got = critical("tanh", 1e-6)
    assert got.sigma_w2 == expected.sigma_w2
    assert got.xi_c == expected.xi_c


def test_depth_scales_are_never_negative_at_the_edge_of_chaos():
    # Round-off puts chi a hair above 1 at criticality; -1/log(chi) was then about -1e10 and
    # `initlab diagnose` printed "trainable depth ~ 6 xi_c  -1.1e+11" for a critical tanh net.
    for sigma_w2 in (1.0, 1.0 + 1e-10, 1.0 + 5e-10):
        m = mean_field("tanh", sigma_w2, 0.0)
        assert m.xi_c == math.inf and m.max_depth == math.inf, (sigma_w2, m.xi_c)
    assert 0 < mean_field("tanh", 0.999, 0.0).xi_c < math.inf
