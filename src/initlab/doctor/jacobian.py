"""Dynamical isometry: the singular values of a model's input-output Jacobian.

For ``y = f(x)`` on an example batch, ``J = dy/dx`` (batch flattened: for a model that acts on
each example separately ``J`` is block diagonal and its singular values are those of every
example's Jacobian together). The squared singular values are the eigenvalues of ``J^T J``;
``J^T J v`` costs one Jacobian-vector product and one vector-Jacobian product, both taken on
the graph of a single forward pass (the JVP by the double-backward trick:
``J v = d/du [u^T J]^T v``).

Stochastic Lanczos quadrature (Ubaru, Chen & Saad 2017): ``probes`` Lanczos runs of ``steps``
steps from random unit vectors, with full reorthogonalization. Each run's tridiagonal matrix
``T = Q diag(theta) Q^T`` gives Ritz values ``theta_i`` (extreme ones converge first, so
``s_max`` is accurate after a few dozen steps) and weights ``Q[0, i]^2``: together, the
spectral density of ``J^T J`` from which the median and the mean of ``s^2`` come. When ``J^T J``
has fewer distinct eigenvalues than ``steps`` (a linear orthogonal network has one: every
singular value is 1) Lanczos stops early and is exact.

Verdict (Pennington, Schoenholz & Ganguli 2017): isometric when ``s_max / s_median <= 3``
(orthogonal tanh at criticality: 1.2 / 1.7 / 3.5 at depth 8 / 32 / 128) and the median is
within ``[0.5, 2]``; Gaussian tanh nets at the same depths reach 75 / 6e5 / 1.5e16.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils._pytree import tree_flatten

from initlab._core.rng import make_generator
from initlab._core.table import format_table
from initlab._core.validation import check_number
from initlab.initializers.model_calls import call_model, main_output

ISOMETRIC_SPREAD = 3.0
ILL_CONDITIONED_SPREAD = 100.0


@dataclass
class JacobianSpectrum:
    """Singular values of the input-output Jacobian (Ritz estimates) and a verdict.

    ``singular_values`` and ``weights`` are the quadrature nodes and weights (summing to 1) of
    the estimated density; ``spread = s_max / s_median``; ``mean_s2`` estimates
    ``trace(J^T J) / n``. ``exact`` is true when every Lanczos run ended by breakdown (the
    nodes are then the exact distinct singular values).
    """

    singular_values: list[float]
    weights: list[float]
    s_max: float
    s_min: float
    s_median: float
    mean_s2: float
    spread: float
    input_dim: int
    output_dim: int
    steps: int
    probes: int
    exact: bool
    verdict: str
    advice: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        def clean(v: Any) -> Any:
            return None if isinstance(v, float) and not math.isfinite(v) else v

        return {k: clean(v) for k, v in self.__dict__.items()}

    def __str__(self) -> str:
        rows = [("s_max", self.s_max), ("s_median", self.s_median), ("s_min (Ritz)", self.s_min),
                ("mean s^2", self.mean_s2), ("spread s_max/s_median", self.spread),
                ("input dim", self.input_dim), ("output dim", self.output_dim),
                ("Lanczos steps x probes", f"{self.steps} x {self.probes}"),
                ("exact", self.exact)]  # fmt: skip
        text = format_table(["Jacobian spectrum", "value"], rows)
        return "\n".join([text, f"verdict: {self.verdict}", *self.advice])


def _float_inputs(example: Any) -> list[torch.Tensor]:
    leaves = tree_flatten(example)[0]
    return [t for t in leaves if isinstance(t, torch.Tensor) and t.is_floating_point()]


def _lanczos(
    matvec, dim: int, steps: int, start: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """Ritz values and first-component weights of ``steps`` Lanczos steps from ``start``."""
    q = start / start.norm()
    basis = [q]
    alphas: list[float] = []
    betas: list[float] = []
    broke = False
    for j in range(steps):
        w = matvec(basis[j])
        alpha = float(torch.dot(w, basis[j]))
        alphas.append(alpha)
        stacked = torch.stack(basis)
        w = w - stacked.T @ (stacked @ w)  # full reorthogonalization (twice is enough)
        w = w - stacked.T @ (stacked @ w)
        beta = float(w.norm())
        scale = max(abs(alpha), max(betas, default=0.0), 1e-30)
        if j == steps - 1 or j == dim - 1:
            break
        if beta <= 1e3 * torch.finfo(w.dtype).eps * scale:  # invariant subspace, up to noise
            broke = True
            break
        betas.append(beta)
        basis.append(w / beta)
    k = len(alphas)
    t = torch.zeros(k, k, dtype=torch.float64)
    t[range(k), range(k)] = torch.tensor(alphas, dtype=torch.float64)
    if k > 1:
        b = torch.tensor(betas[: k - 1], dtype=torch.float64)
        t[range(k - 1), range(1, k)] = b
        t[range(1, k), range(k - 1)] = b
    theta, vectors = torch.linalg.eigh(t)
    if k == dim and not broke:
        # the whole space: the Ritz values are every eigenvalue, each of weight 1 / dim
        return theta.clamp_min(0), torch.full_like(theta, 1.0 / k), True
    return theta.clamp_min(0), vectors[0] ** 2, broke


def _weighted_median(values: torch.Tensor, weights: torch.Tensor) -> float:
    order = torch.argsort(values)
    v, w = values[order], weights[order]
    cdf = torch.cumsum(w, 0) / w.sum()
    return float(v[int(torch.searchsorted(cdf, torch.tensor(0.5, dtype=cdf.dtype)))])


def jacobian_spectrum(
    model: nn.Module,
    example_input: Any,
    *,
    steps: int = 40,
    probes: int = 3,
    seed: int | torch.Generator | None = 0,
) -> JacobianSpectrum:
    """Estimate the singular values of ``d model(x) / d x`` at ``example_input``.

    ``example_input``: a tensor, a tuple of positional arguments or a dict of keyword
    arguments; the Jacobian is taken with respect to all its floating-point tensors (integer
    token ids have none: give such a model its embeddings). The model runs in its current mode,
    attention on PyTorch's math kernel (the fused ones have no double backward); one forward
    pass, then ``2 * steps * probes`` backward passes.

    >>> net = torch.nn.Sequential(torch.nn.Linear(8, 8, bias=False))
    >>> _ = torch.nn.init.orthogonal_(net[0].weight, generator=torch.Generator().manual_seed(0))
    >>> spec = jacobian_spectrum(net, torch.randn(4, 8, generator=torch.Generator().manual_seed(0)))
    >>> round(spec.s_max, 5), round(spec.s_median, 5), spec.verdict.split(":")[0]
    (1.0, 1.0, 'isometric')
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module; got {type(model).__name__}")
    steps = int(check_number("steps", steps, minimum=1, integer=True))
    probes = int(check_number("probes", probes, minimum=1, integer=True))
    inputs = _float_inputs(example_input)
    if not inputs:
        raise TypeError(
            "example_input must hold at least one floating-point tensor to differentiate by "
            f"(got {type(example_input).__name__}); for token ids, pass the embeddings"
        )
    leaves = {id(t): t.detach().clone().requires_grad_(True) for t in inputs}

    def swap(value: Any) -> Any:
        if isinstance(value, torch.Tensor) and id(value) in leaves:
            return leaves[id(value)]
        if isinstance(value, dict):
            return {k: swap(v) for k, v in value.items()}
        if isinstance(value, tuple | list):
            return type(value)(swap(v) for v in value)
        return value

    xs = list(leaves.values())
    from torch.nn.attention import SDPBackend, sdpa_kernel

    # the math attention kernel: the fused CPU/GPU kernels have no double backward
    with torch.enable_grad(), sdpa_kernel([SDPBackend.MATH]):
        y = main_output(call_model(model, swap(example_input)))
        if not y.requires_grad:
            raise ValueError("the model's output does not depend on its floating-point inputs")
        u = torch.zeros_like(y, requires_grad=True)
        (g,) = torch.autograd.grad(y, xs[0], u, create_graph=True) if len(xs) == 1 else (None,)
        if g is None:
            grads = torch.autograd.grad(y, xs, u, create_graph=True, allow_unused=True)
        else:
            grads = (g,)
    sizes = [x.numel() for x in xs]
    n = sum(sizes)
    dtype = torch.float64 if y.dtype == torch.float64 else torch.float32

    def split(v: torch.Tensor) -> list[torch.Tensor]:
        return [p.reshape(x.shape).to(x.dtype) for p, x in zip(v.split(sizes), xs, strict=True)]

    def matvec(v: torch.Tensor) -> torch.Tensor:
        parts = split(v)
        live = [(gr, p) for gr, p in zip(grads, parts, strict=True) if gr is not None]
        (jv,) = torch.autograd.grad([gr for gr, _ in live], u, [p for _, p in live],
                                    retain_graph=True)  # fmt: skip
        jtjv = torch.autograd.grad(y, xs, jv, retain_graph=True, allow_unused=True)
        flat = [
            (t if t is not None else torch.zeros_like(x)).reshape(-1)
            for t, x in zip(jtjv, xs, strict=True)
        ]
        return torch.cat(flat).to(dtype)

    generator = make_generator(seed if seed is not None else 0)
    device = xs[0].device
    thetas, weights = [], []
    exact = True
    for _ in range(probes):
        start = torch.randn(n, generator=generator, dtype=dtype).to(device)
        theta, w, broke = _lanczos(matvec, n, min(steps, n), start)
        thetas.append(theta)
        weights.append(w / probes)
        exact = exact and broke
    theta = torch.cat(thetas)
    weight = torch.cat(weights)
    s = theta.sqrt()
    s_max, s_min = float(s.max()), float(s.min())
    s_median = _weighted_median(s, weight)
    mean_s2 = float((theta * weight).sum())
    spread = s_max / s_median if s_median > 0 else math.inf
    verdict, advice = _verdict(s_median, spread)
    order = torch.argsort(s)
    return JacobianSpectrum(
        singular_values=[float(v) for v in s[order]], weights=[float(v) for v in weight[order]],
        s_max=s_max, s_min=s_min, s_median=s_median, mean_s2=mean_s2, spread=spread,
        input_dim=n, output_dim=y.numel(), steps=min(steps, n), probes=probes, exact=exact,
        verdict=verdict, advice=advice,
    )  # fmt: skip


def _verdict(median: float, spread: float) -> tuple[str, list[str]]:
    advice = []
    scale_ok = 0.5 <= median <= 2.0
    if spread <= ISOMETRIC_SPREAD and scale_ok:
        return (f"isometric: s_max/s_median = {spread:.3g} <= {ISOMETRIC_SPREAD:g} and "
                f"median {median:.3g} in [0.5, 2]"), advice  # fmt: skip
    if not scale_ok:
        word = "vanishing" if median < 0.5 else "exploding"
        advice.append(
            f"the typical singular value is {median:.3g}: gradients are {word}; rescale the "
            "weights toward criticality (initlab.critical gives sigma_w^2 for the activation)"
        )
    if spread > ILL_CONDITIONED_SPREAD:
        condition = "ill-conditioned"
    elif spread > ISOMETRIC_SPREAD:
        condition = "moderately conditioned"
    else:
        condition = "well conditioned"
    if spread > ISOMETRIC_SPREAD:
        advice.append(
            "for dynamical isometry use orthogonal weights at the critical point of a "
            "saturating activation (tanh; Pennington et al. 2017); relu and Gaussian weights "
            "cannot reach it"
        )
    return f"not isometric ({condition}): s_max/s_median = {spread:.3g}", advice
