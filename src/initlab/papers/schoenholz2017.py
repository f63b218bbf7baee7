"""Schoenholz et al. 2017: random tanh networks train only up to a depth of about 6 xi_c.

Plain tanh MLPs (width 64) on the standardized digits, weights ``N(0, sigma_w^2 / fan_in)`` and
biases ``N(0, sigma_b^2)`` with ``sigma_b^2 = 0.05``, over a grid of ``sigma_w^2`` and depth,
each trained for a fixed number of SGD steps. The mean-field depth scale ``xi_c`` comes from
:func:`initlab.mean_field`; the theory predicts that a net trains when its depth is below about
``6 xi_c``, a boundary that diverges at the critical ``sigma_w^2 = 1.76``. The check compares
the measured trainable region with that prediction, cell by cell.
"""

from __future__ import annotations

import math

import torch

from initlab.bench.nets import mlp
from initlab.bench.train import train
from initlab.initializers.apply import init_model
from initlab.initializers.critical import critical, mean_field
from initlab.papers._data import standardized_digits
from initlab.papers.base import Panel, Reproduction, Series, check
from initlab.papers.catalog import PAPERS

SIGMA_B2 = 0.05
WIDTH = 64
THRESHOLD = 0.5  # train accuracy above which a cell 'trains'


def _accuracy(sigma_w2: float, depth: int, iterations: int) -> float:
    data = standardized_digits()
    net = mlp(
        [data.n_features] + [WIDTH] * (depth - 1) + [data.n_classes],
        activation="tanh",
        output="softmax",
    )
    init_model(
        net, f"variance_scaling:scale={sigma_w2},mode=fan_in,distribution=normal", seed=depth
    )
    generator = torch.Generator().manual_seed(depth)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.Linear):
                module.bias.normal_(0, math.sqrt(SIGMA_B2), generator=generator)
    result = train(
        net,
        data,
        init=None,
        optimizer="sgd",
        lr=0.01,
        iterations=iterations,
        batch_size=64,
        seed=0,
        log_every=iterations,  # only the final accuracy is read: no loss history
        dtype="float32",
        progress=False,
    )
    return float(result.train_accuracy or 0.0)


def panels_for(
    grid: list[list[float]], sigmas: list[float], depths: list[int], iterations: int
) -> list[Panel]:
    """The measured accuracy map with the predicted ``6 xi_c`` boundary over it, and the
    theory curve ``6 xi_c(sigma_w^2)`` on its own."""
    bound = [6 * mean_field("tanh", s, SIGMA_B2).xi_c for s in sigmas]
    heatmap = Panel(
        f"train accuracy after {iterations} SGD steps (tanh, sigma_b^2 = {SIGMA_B2})",
        "sigma_w^2",
        "depth",
        kind="heatmap",
        z=grid,
        x_ticks=sigmas,
        y_ticks=[float(d) for d in depths],
        zlabel="train accuracy",
        series=[
            Series(
                "6 xi_c (predicted trainable depth)",
                list(range(len(sigmas))),
                [_row_position(b, depths) for b in bound],
            )
        ],
    )
    curve_s = [x / 20 for x in range(16, 81)]
    theory = Panel(
        "mean-field depth scale",
        "sigma_w^2",
        "6 xi_c",
        logy=True,
        series=[
            Series(
                "6 xi_c",
                curve_s,
                [min(6 * mean_field("tanh", s, SIGMA_B2).xi_c, 1e4) for s in curve_s],
            )
        ],
    )
    return [heatmap, theory]


def checks_for(grid: list[list[float]], sigmas: list[float], depths: list[int]) -> list:
    """The critical point, the agreement of the trainable cells with ``depth < 6 xi_c``, and
    the best ``sigma_w^2`` at depth 30 being the one nearest criticality."""
    bound = [6 * mean_field("tanh", s, SIGMA_B2).xi_c for s in sigmas]
    agree = [
        (grid[i][j] > THRESHOLD) == (d < bound[j])
        for i, d in enumerate(depths)
        for j in range(len(sigmas))
    ]
    crit = critical("tanh", SIGMA_B2).sigma_w2
    deep = depths.index(30)
    best_at_30 = sigmas[max(range(len(sigmas)), key=lambda j: grid[deep][j])]
    return [
        check(
            "critical sigma_w^2 at sigma_b^2 = 0.05",
            crit,
            "1.761 +- 0.01",
            abs(crit - 1.761) < 0.01,
        ),
        check(
            f"cells where 'trains' (acc > {THRESHOLD}) matches depth < 6 xi_c",
            sum(agree) / len(agree),
            ">= 0.75",
            sum(agree) / len(agree) >= 0.75,
        ),
        check(
            "sigma_w^2 with the best accuracy at depth 30",
            best_at_30,
            "the one nearest the critical 1.76",
            best_at_30 == min(sigmas, key=lambda s: abs(s - crit)),
        ),
    ]


def run(quick: bool = False) -> Reproduction:
    sigmas = [1.0, 1.76, 4.0] if quick else [1.0, 1.3, 1.76, 2.5, 4.0]
    depths = [10, 30, 60] if quick else [10, 30, 60, 100]
    iterations = 400 if quick else 1500
    grid = [[_accuracy(s, d, iterations) for s in sigmas] for d in depths]
    bound = [6 * mean_field("tanh", s, SIGMA_B2).xi_c for s in sigmas]
    return Reproduction(
        paper=PAPERS["schoenholz2017"],
        quick=quick,
        setting={
            "width": WIDTH,
            "sigma_w2": sigmas,
            "depths": depths,
            "sigma_b2": SIGMA_B2,
            "optimizer": "SGD",
            "lr": 0.01,
            "batch": 64,
            "iterations": iterations,
            "trains": f"train accuracy > {THRESHOLD}",
            "6 xi_c": [round(b, 1) for b in bound],
        },
        checks=checks_for(grid, sigmas, depths),
        panels=panels_for(grid, sigmas, depths, iterations),
        notes="Digits and a few hundred SGD steps instead of MNIST/CIFAR-10 and long training; "
        "with more steps the trainable region grows somewhat (the paper's boundary is where "
        "training becomes impossible, not slow).",
    )


def _row_position(depth_bound: float, depths: list[int]) -> float:
    """Where ``depth_bound`` falls on the heatmap's row axis (rows are ``depths``, evenly
    spaced), interpolating linearly between rows and clipping to just outside the grid."""
    if depth_bound <= depths[0]:
        return -0.5
    for k in range(len(depths) - 1):
        lo, hi = depths[k], depths[k + 1]
        if depth_bound <= hi:
            return k + (depth_bound - lo) / (hi - lo)
    return len(depths) - 0.5
