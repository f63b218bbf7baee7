"""Glorot & Bengio 2010: tanh activations and gradients under the standard and normalized inits.

A 5-hidden-layer tanh MLP, inputs U(-1, 1), forward and backward at init (the paper's Figures
6-7 and its gradient analysis). "Standard" init is U(-1/sqrt(n), 1/sqrt(n)): variance
1 / (3 n), so each tanh layer (slope about 1 near 0) multiplies the activation variance by about
1/3 and the std by 1/sqrt(3) = 0.577. "Normalized" (Xavier) init is
U(-sqrt(6/(n_in + n_out)), +sqrt(6/(n_in + n_out))): variance 1/n for square layers, so the
signal keeps its scale. Back-propagated gradients shrink toward the input by the same factor
under the standard init.
"""

from __future__ import annotations

import itertools
import math

import torch

from initlab.bench.nets import mlp
from initlab.initializers.apply import init_model
from initlab.papers.base import Panel, Reproduction, Series, check
from initlab.papers.catalog import PAPERS

INITS = {
    "standard U(+-1/sqrt(n))": "variance_scaling:scale=0.3333333333333333,distribution=uniform",
    "normalized (Xavier)": "xavier_uniform",
}
HIDDEN = 5


def _probe(width: int, batch: int, spec: str) -> tuple[list[float], list[float], list[list]]:
    """Per hidden layer: activation std, variance of dL/dh, and a histogram of activations."""
    net = mlp([width] * (HIDDEN + 1) + [10], activation="tanh", output="softmax").double()
    init_model(net, spec, seed=0)
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(batch, width, generator=generator, dtype=torch.float64) * 2 - 1
    labels = torch.randint(0, 10, (batch,), generator=generator)
    activations = []
    h = x
    for layer in range(1, HIDDEN + 2):
        h = getattr(net, f"linear{layer}")(h)
        if layer <= HIDDEN:
            h = torch.tanh(h)
            h.retain_grad()
            activations.append(h)
    torch.nn.functional.cross_entropy(h, labels).backward()
    stds = [float(a.detach().std()) for a in activations]
    grad_vars = [float(a.grad.var()) for a in activations]
    edges = torch.linspace(-1, 1, 41, dtype=torch.float64)
    hists = [
        torch.histogram(a.detach(), bins=edges, density=True).hist.tolist() for a in activations
    ]
    return stds, grad_vars, hists


def run(quick: bool = False) -> Reproduction:
    width, batch = (256, 500) if quick else (1000, 1000)
    layers = list(range(1, HIDDEN + 1))
    std_panel = Panel("activation std per layer", "hidden layer", "std of tanh output", logy=True)
    grad_panel = Panel("back-propagated gradient variance", "hidden layer", "Var(dL/dh)", logy=True)
    hist_panels, measured = [], {}
    centres = [-1 + (2 * k + 1) / 40 for k in range(40)]
    for label, spec in INITS.items():
        stds, grad_vars, hists = _probe(width, batch, spec)
        measured[label] = (stds, grad_vars)
        std_panel.series.append(Series(label, layers, stds))
        grad_panel.series.append(Series(label, layers, grad_vars))
        hist_panels.append(
            Panel(
                f"activation histograms, {label}",
                "tanh output",
                "density",
                series=[
                    Series(f"layer {k}", centres, h) for k, h in zip(layers, hists, strict=True)
                ],
            )
        )
    std_s, grad_s = measured["standard U(+-1/sqrt(n))"]
    std_n, grad_n = measured["normalized (Xavier)"]
    per_layer = math.exp(sum(math.log(b / a) for a, b in itertools.pairwise(std_s)) / (HIDDEN - 1))
    checks = [
        check(
            "standard: std ratio per layer (geometric mean)",
            per_layer,
            "within [0.45, 0.70] (1/sqrt(3) = 0.577)",
            0.45 <= per_layer <= 0.70,
        ),
        check(
            "standard: std layer 5 / layer 1",
            std_s[-1] / std_s[0],
            "< 0.2",
            std_s[-1] / std_s[0] < 0.2,
        ),
        check(
            "normalized: std layer 5 / layer 1",
            std_n[-1] / std_n[0],
            "> 0.5",
            std_n[-1] / std_n[0] > 0.5,
        ),
        check(
            "standard: Var(dL/dh) layer 1 / layer 5",
            grad_s[0] / grad_s[-1],
            "< 0.1",
            grad_s[0] / grad_s[-1] < 0.1,
        ),
        check(
            "normalized: Var(dL/dh) layer 1 / layer 5",
            grad_n[0] / grad_n[-1],
            "> 0.25",
            grad_n[0] / grad_n[-1] > 0.25,
        ),
    ]
    return Reproduction(
        paper=PAPERS["glorot2010"],
        quick=quick,
        setting={
            "width": width,
            "batch": batch,
            "hidden layers": HIDDEN,
            "activation": "tanh",
            "input": "U(-1, 1)",
        },
        checks=checks,
        panels=[std_panel, grad_panel, *hist_panels],
        notes="Measured at initialization on uniform inputs with random labels, as in the "
        "paper's analysis of activations and gradients at the start of training; the paper's "
        "Shapeset and CIFAR training runs are not repeated.",
    )
