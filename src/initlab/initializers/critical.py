"""Mean-field theory as a calculator: the edge of chaos, depth scales and critical init.

A fully connected network with weights ``W ~ N(0, sigma_w^2 / N)`` (or a scaled random
orthogonal matrix) and biases ``b ~ N(0, sigma_b^2)``, in the wide limit (Poole et al. 2016,
Schoenholz et al. 2017). With ``z, z1, z2 ~ N(0, 1)`` independent:

- length map: ``q' = sigma_w^2 E[phi(sqrt(q) z)^2] + sigma_b^2``, fixed point ``q*``;
- slope of the correlation map at ``c = 1``: ``chi_1 = sigma_w^2 E[phi'(sqrt(q*) z)^2]``.
  ``chi_1 < 1`` is the ordered phase (gradients vanish), ``chi_1 > 1`` the chaotic phase
  (gradients explode), ``chi_1 = 1`` the edge of chaos;
- correlation map: ``c' = (sigma_w^2 E[phi(u1) phi(u2)] + sigma_b^2) / q*`` with
  ``u1 = sqrt(q*) z1``, ``u2 = sqrt(q*) (c z1 + sqrt(1 - c^2) z2)``; fixed point ``c*``
  (``1`` in the ordered phase, below 1 in the chaotic phase);
- depth scales: ``xi_q = -1 / ln(chi_1 + sigma_w^2 E[phi''(sqrt(q*) z) phi(sqrt(q*) z)])``
  and ``xi_c = -1 / ln(chi_c)``, ``chi_c = sigma_w^2 E[phi'(u1) phi'(u2)]`` at ``c*``;
  signals keep their correlations over about ``xi_c`` layers, and Schoenholz et al. find
  networks train up to a depth of about ``6 xi_c``;
- the spread of the input-output Jacobian's squared singular values at criticality
  (Pennington et al. 2017): ``var / L = mu_2 / mu_1^2 - 1 - s_1`` with
  ``mu_k = E[phi'(sqrt(q*) z)^(2k)]``, ``s_1 = -1`` for Gaussian and ``0`` for orthogonal
  weights. Zero means dynamical isometry at any depth (linear + orthogonal).

The forward recursions (``q*``, ``chi_1``, ``xi``) are the same for Gaussian and orthogonal
weights; ``dist`` changes only the Jacobian spread.

Expectations are 1-D (and, for the correlation map, tensor-product 2-D) composite
Gauss-Legendre quadrature over ``[-12, 12]`` in float64, the rule :mod:`initlab.initializers.gains`
uses for gains; derivatives by autograd (central differences for NumPy callables).

>>> round(critical("relu").sigma_w2, 6)
2.0
>>> round(critical("tanh", 0.05).sigma_w2, 3)
1.761
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Literal

import torch

from initlab._core.table import format_table
from initlab._core.validation import check_choice, check_number
from initlab.initializers.gains import _FUNCTIONS, _evaluate, _quadrature, canonical_activation

Dist = Literal["gaussian", "orthogonal"]

# Closed forms: positively homogeneous activations (phi(a x) = a phi(x), a > 0) have
# chi_1 = sigma_w^2 E[phi'(z)^2] whatever q is, so the critical sigma_w^2 is 1 / E[phi'^2].
_HOMOGENEOUS = ("linear", "relu", "leaky_relu")


@dataclass(frozen=True)
class Critical:
    """Mean-field quantities of one ``(activation, sigma_w^2, sigma_b^2)`` point.

    ``phase`` is ``ordered`` (chi_1 < 1), ``critical`` (|chi_1 - 1| < 1e-6) or ``chaotic``.
    ``max_depth`` is ``6 xi_c`` (infinite at criticality). ``q_star`` is ``inf`` where the
    length map has no fixed point (relu with ``sigma_b^2 > 0`` and ``sigma_w^2 >= 2``: the
    signal grows without bound) and 1 for homogeneous activations at ``sigma_b^2 = 0``,
    where every ``q`` is a fixed point at criticality.
    """

    activation: str
    sigma_w2: float
    sigma_b2: float
    dist: str
    q_star: float
    chi_1: float
    c_star: float
    chi_c: float
    xi_q: float
    xi_c: float
    max_depth: float
    critical_sigma_w2: float
    jacobian_spread_per_layer: float
    phase: str

    def to_dict(self) -> dict[str, float | str | None]:
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                for k, v in asdict(self).items()}  # fmt: skip

    def __str__(self) -> str:
        rows = [(k, v) for k, v in asdict(self).items()]
        return format_table(["quantity", "value"], rows)


def _activation(activation: str | Callable, param: float | None) -> tuple[str, Callable]:
    if callable(activation) and not isinstance(activation, str):
        return getattr(activation, "__name__", "callable"), activation
    name = canonical_activation(activation)
    fn, default = _FUNCTIONS[name]
    p = default if param is None else param
    return name, lambda x: fn(x, p)


class _Integrals:
    """``E[f(sqrt(q) z)]`` and the 2-D correlation integrals for one activation."""

    def __init__(self, fn: Callable) -> None:
        self.fn = fn
        self.nodes, self.weights = _quadrature()

    def derivatives(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``phi, phi', phi''`` at ``x`` (float64)."""
        try:
            # enable_grad: under a caller's no_grad the derivatives would fall back to finite
            # differences and the critical point would move in its 7th digit.
            with torch.enable_grad():
                xs = x.clone().requires_grad_(True)
                y = self.fn(xs)
                if not isinstance(y, torch.Tensor) or not y.requires_grad:
                    raise TypeError
                (d1,) = torch.autograd.grad(y.sum(), xs, create_graph=True)
                if d1.requires_grad:
                    (d2,) = torch.autograd.grad(d1.sum(), xs)
                else:
                    d2 = torch.zeros_like(x)
            return y.detach().double(), d1.detach().double(), d2.detach().double()
        except (TypeError, RuntimeError, AttributeError):
            h = 1e-4
            f0, fp, fm = (_evaluate(self.fn, x + s) for s in (0.0, h, -h))
            return f0, (fp - fm) / (2 * h), (fp - 2 * f0 + fm) / h**2

    def moments(self, q: float) -> dict[str, float]:
        phi, d1, d2 = self.derivatives(math.sqrt(q) * self.nodes)
        w = self.weights
        return {
            "phi2": float((w * phi**2).sum()),
            "d1_2": float((w * d1**2).sum()),
            "d1_4": float((w * d1**4).sum()),
            "d2_phi": float((w * d2 * phi).sum()),
        }

    def pair(self, q: float, c: float) -> tuple[float, float]:
        """``E[phi(u1) phi(u2)]`` and ``E[phi'(u1) phi'(u2)]`` at correlation ``c``."""
        s = math.sqrt(q)
        z1, z2 = self.nodes[:, None], self.nodes[None, :]
        w = self.weights[:, None] * self.weights[None, :]
        phi1, d1, _ = self.derivatives(s * self.nodes)
        u2 = s * (c * z1 + math.sqrt(max(1 - c * c, 0.0)) * z2)
        phi2, d2, _ = self.derivatives(u2.reshape(-1))
        phi2, d2 = phi2.reshape(u2.shape), d2.reshape(u2.shape)
        return float((w * phi1[:, None] * phi2).sum()), float((w * d1[:, None] * d2).sum())


def _brentq(f: Callable[[float], float], lo: float, hi: float) -> float:
    from scipy.optimize import brentq

    return float(brentq(f, lo, hi, xtol=1e-13, rtol=1e-13, maxiter=200))


def _q_star(ints: _Integrals, sigma_w2: float, sigma_b2: float) -> float:
    """The stable non-trivial fixed point of the length map (``inf`` if q grows forever)."""

    def f(q: float) -> float:
        return sigma_w2 * ints.moments(q)["phi2"] + sigma_b2 - q

    grid = [10.0**k for k in range(-8, 9)]
    values = [f(q) for q in grid]
    # the largest q where f changes sign from + to - (stable fixed point)
    for i in range(len(grid) - 1, 0, -1):
        if values[i - 1] > 0 >= values[i]:
            return _brentq(f, grid[i - 1], grid[i])
    if values[-1] > 0:
        return math.inf
    return 0.0  # f <= 0 everywhere: the signal decays to q* = 0 (sigma_b^2 = 0)


def _c_star(ints: _Integrals, q: float, sigma_w2: float, sigma_b2: float, chi_1: float) -> float:
    if chi_1 <= 1 + 1e-9 or q == 0:
        return 1.0

    def g(c: float) -> float:
        return (sigma_w2 * ints.pair(q, c)[0] + sigma_b2) / q - c

    hi = 1 - 1e-6
    if g(hi) >= 0:
        return 1.0
    lo = -1.0
    return _brentq(g, lo, hi) if g(lo) > 0 else lo


def _depth(chi: float) -> float:
    """``-1 / log(chi)``: the depth over which a perturbation that shrinks by ``chi`` per
    layer decays by ``e``; unbounded (``inf``) when it does not shrink (``chi >= 1``, which at
    the edge of chaos round-off can put a hair above 1)."""
    if chi <= 0:
        return 0.0
    if chi >= 1 - 1e-12:
        return math.inf
    return -1.0 / math.log(chi)


def mean_field(
    activation: str | Callable,
    sigma_w2: float,
    sigma_b2: float = 0.0,
    *,
    param: float | None = None,
    dist: Dist = "gaussian",
) -> Critical:
    """The mean-field quantities at ``(sigma_w^2, sigma_b^2)``: q*, chi_1, c*, the depth
    scales and the trainable depth ``6 xi_c`` (see the module docstring for the formulas).

    >>> m = mean_field("tanh", 1.0, 0.05)
    >>> round(m.xi_c, 1), m.phase
    (3.6, 'ordered')
    """
    sigma_w2 = check_number("sigma_w2", sigma_w2, minimum=0, strict_minimum=True)
    sigma_b2 = check_number("sigma_b2", sigma_b2, minimum=0)
    check_choice("dist", dist, ("gaussian", "orthogonal"))
    name, fn = _activation(activation, param)
    ints = _Integrals(fn)
    crit = _critical_sigma_w2(name, ints, sigma_b2)
    homogeneous = name in _HOMOGENEOUS and not callable(activation)
    if homogeneous:
        m = ints.moments(1.0)
        grow = sigma_w2 * m["phi2"]
        if sigma_b2 == 0:
            q = 1.0 if abs(grow - 1) < 1e-9 else (math.inf if grow > 1 else 0.0)
        else:
            q = sigma_b2 / (1 - grow) if grow < 1 else math.inf
        chi_1 = sigma_w2 * m["d1_2"]
    else:
        q = _q_star(ints, sigma_w2, sigma_b2)
        m = ints.moments(q if math.isfinite(q) else 1.0)
        chi_1 = sigma_w2 * m["d1_2"]
    finite_q = math.isfinite(q) and q > 0
    xi_q = _depth(chi_1 + sigma_w2 * m["d2_phi"]) if finite_q else math.nan
    c = _c_star(ints, q, sigma_w2, sigma_b2, chi_1) if finite_q else 1.0
    chi_c = chi_1 if c == 1.0 else sigma_w2 * ints.pair(q, c)[1]
    xi_c = _depth(chi_c)
    s1 = -1.0 if dist == "gaussian" else 0.0
    spread = m["d1_4"] / m["d1_2"] ** 2 - 1 - s1 if m["d1_2"] > 0 else math.nan
    phase = "critical" if abs(chi_1 - 1) < 1e-6 else ("ordered" if chi_1 < 1 else "chaotic")
    return Critical(
        activation=name, sigma_w2=sigma_w2, sigma_b2=sigma_b2, dist=dist, q_star=q,
        chi_1=chi_1, c_star=c, chi_c=chi_c, xi_q=xi_q, xi_c=xi_c, max_depth=6 * xi_c,
        critical_sigma_w2=crit, jacobian_spread_per_layer=spread, phase=phase,
    )  # fmt: skip


def _critical_sigma_w2(name: str, ints: _Integrals, sigma_b2: float) -> float:
    if name in _HOMOGENEOUS:
        return 1.0 / ints.moments(1.0)["d1_2"]

    def excess(log_sw2: float) -> float:
        sw2 = math.exp(log_sw2)
        q = _q_star(ints, sw2, sigma_b2)
        if not math.isfinite(q):
            return 1.0
        return sw2 * ints.moments(q)["d1_2"] - 1

    lo, hi = math.log(1e-3), math.log(1e3)
    if excess(lo) > 0 or excess(hi) < 0:
        return math.nan  # no edge of chaos in [1e-3, 1e3]
    root = _brentq(excess, lo, hi)
    # q* can jump as sigma_w^2 crosses a value (gelu at sigma_b^2 = 0): the sign change is then
    # a discontinuity, not a point where chi_1 = 1
    return math.exp(root) if abs(excess(root)) < 1e-6 else math.nan


def critical(
    activation: str | Callable,
    sigma_b2: float = 0.0,
    *,
    param: float | None = None,
    dist: Dist = "gaussian",
) -> Critical:
    """The edge of chaos for ``activation`` at bias variance ``sigma_b2``: the ``sigma_w^2``
    with ``chi_1 = 1``, its fixed point ``q*`` and the Jacobian spread per layer.

    Closed form for linear, relu and leaky_relu (``sigma_w^2 = 1 / E[phi'(z)^2]``: 1, 2 and
    ``2 / (1 + a^2)``); root finding on ``chi_1(sigma_w^2) = 1`` otherwise. At criticality
    ``xi_c`` and the trainable depth are infinite (in the mean-field limit).

    >>> c = critical("tanh", 0.05)
    >>> round(c.sigma_w2, 3), round(c.q_star, 2)
    (1.761, 0.57)
    """
    sigma_b2 = check_number("sigma_b2", sigma_b2, minimum=0)
    check_choice("dist", dist, ("gaussian", "orthogonal"))
    name, fn = _activation(activation, param)
    sw2 = _critical_sigma_w2(name if not callable(activation) else "", _Integrals(fn), sigma_b2)
    if not math.isfinite(sw2):
        raise ValueError(
            f"{name!r} has no edge of chaos at sigma_b2={sigma_b2}: chi_1 does not pass through "
            "1 for sigma_w2 in [1e-3, 1e3] (it stays on one side, or q* jumps across it); "
            "use mean_field() to inspect chosen points"
        )
    result = mean_field(activation, sw2, sigma_b2, param=param, dist=dist)
    # pin the tiny root-finding residual: this point is critical by construction
    return Critical(**{**asdict(result), "phase": "critical"})


def edge_of_chaos(
    activation: str | Callable,
    sigma_b2_values: Iterable[float],
    *,
    param: float | None = None,
    dist: Dist = "gaussian",
) -> list[Critical]:
    """The critical line: :func:`critical` at each ``sigma_b^2`` in ``sigma_b2_values``."""
    return [critical(activation, b, param=param, dist=dist) for b in sigma_b2_values]
