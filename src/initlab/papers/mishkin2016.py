"""Mishkin & Matas 2016 (LSUV): orthogonal init, then each layer rescaled to unit variance.

A small plain CNN on the 8x8 digits (five 3x3 ReLU conv layers, one linear classifier).
:func:`initlab.lsuv` pre-initialises every weight layer with an orthogonal matrix and then, in
execution order, divides each layer's weights by the std of its output on one batch until that
std is within ``tol = 0.1`` of 1 (at most 10 tries). The paper reports that 1-5 iterations
suffice and that LSUV trains at least as well as orthogonal init alone; both are checked, with
the same training for both inits.
"""

from __future__ import annotations

import torch
from torch import nn

from initlab.initializers.apply import init_model
from initlab.initializers.lsuv import lsuv
from initlab.papers._data import standardized_digits
from initlab.papers._training import train_run
from initlab.papers.base import Panel, Reproduction, Series, check
from initlab.papers.catalog import PAPERS

TOL = 0.1
LR = 0.01


def small_cnn(seed: int = 0) -> nn.Module:
    """Five 3x3 ReLU convolutions (16-16-32-32-32 channels, one stride 2) and a classifier."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = nn.Sequential(
            nn.Unflatten(1, (1, 8, 8)),
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),
            nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),
            nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),
            nn.Flatten(),
            nn.Linear(32 * 4 * 4, 10),
        )  # fmt: skip
    net.output = "softmax"
    return net


def train_both(lsuv_net: nn.Module, ortho_net: nn.Module, iterations: int) -> tuple[dict, Panel]:
    """Both nets trained with the same setting; their loss curves, labelled with test accuracy."""
    data = standardized_digits()
    curves = Panel(
        f"training ({iterations} SGD-momentum steps, lr {LR})",
        "iteration",
        "training loss",
        logy=True,
    )
    trained = {}
    for label, net in (("LSUV", lsuv_net), ("orthogonal", ortho_net)):
        result = train_run(net, data, lr=LR, iterations=iterations, dtype="float32")
        trained[label] = result
        curves.series.append(
            Series(
                f"{label} (test acc {result.test_accuracy:.3f})",
                list(result.history.iteration),
                result.history.loss,
            )
        )
    return trained, curves


def std_panel(layers: list) -> Panel:
    """Each layer's output std before (orthogonal) and after LSUV, in execution order."""
    order = [float(r.order) for r in layers]
    return Panel(
        "output std per layer, in execution order",
        "layer",
        "std of the output",
        series=[
            Series("before LSUV (orthogonal)", order, [r.std_before for r in layers]),
            Series("after LSUV", order, [r.std_after for r in layers]),
        ],
    )


def checks_for(layers: list, trained: dict) -> list:
    """Every layer within ``TOL`` in at most 5 iterations; LSUV's test accuracy at least
    orthogonal's (2 points of slack for one seed of a short run)."""
    worst = max(abs(r.std_after - 1.0) for r in layers)
    most_iterations = max(r.iterations for r in layers)
    acc_lsuv = float(trained["LSUV"].test_accuracy or 0.0)
    acc_ortho = float(trained["orthogonal"].test_accuracy or 0.0)
    return [
        check("largest |std - 1| after LSUV over layers", worst, f"< {TOL}", worst < TOL),
        check("most iterations any layer needed", most_iterations, "<= 5", most_iterations <= 5),
        check(
            "test accuracy: LSUV - orthogonal",
            acc_lsuv - acc_ortho,
            ">= -0.02",
            acc_lsuv - acc_ortho >= -0.02,
        ),
    ]


def run(quick: bool = False) -> Reproduction:
    iterations = 300 if quick else 1500
    batch = standardized_digits().x_train[:256].float()
    lsuv_net = small_cnn()
    report = lsuv(lsuv_net, batch, target_std=1.0, tol=TOL, max_iter=10, seed=0)
    ortho_net = small_cnn()
    init_model(ortho_net, "orthogonal", seed=0)
    trained, curves = train_both(lsuv_net, ortho_net, iterations)
    layers = [r for r in report.rows if r.kind == "layer"]
    return Reproduction(
        paper=PAPERS["mishkin2016"],
        quick=quick,
        setting={
            "model": "5 conv (3x3, ReLU) + linear",
            "data": "digits 8x8 (standardized)",
            "LSUV batch": 256,
            "tol": TOL,
            "optimizer": "momentum 0.9",
            "lr": LR,
            "batch": 64,
            "iterations": iterations,
            "forward passes used by LSUV": report.passes,
        },
        checks=checks_for(layers, trained),
        panels=[std_panel(layers), curves],
        notes="A 5-layer CNN on 8x8 digits instead of FitNets on CIFAR-10/100; the accuracy "
        "check allows a 2-point tolerance because one seed of a short run is compared.",
    )
