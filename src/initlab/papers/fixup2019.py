"""Zhang, Dauphin & Ma 2019 (Fixup): residual networks without normalization, at any depth.

Residual MLPs ``x + fc2(relu(fc1(x)))`` without normalization on the standardized digits.
"Plain": He init everywhere, so each block roughly doubles the variance of the residual stream
and the output explodes with depth. Fixup (the paper's rule for branches of m = 2 layers): the
last layer of each branch and the classifier start at zero, the first layer of each branch is
He-initialised and scaled by ``L^(-1/(2m-2)) = L^(-1/2)``. Then the network starts as the stem
followed by the identity: loss ln 10 and the same gradient norm at every depth.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from initlab.bench.results import Run
from initlab.initializers.apply import init_model
from initlab.papers._data import standardized_digits
from initlab.papers._nets import ResidualMLP, build
from initlab.papers._training import final_loss, loss_series, train_run
from initlab.papers.base import Panel, Reproduction, Series, check
from initlab.papers.catalog import PAPERS

WIDTH = 64
LR = 0.01


def initialise(model: ResidualMLP, fixup: bool, seed: int = 0) -> ResidualMLP:
    """He init everywhere, then (``fixup``) the Fixup rescaling and zeros; biases zero."""
    init_model(model, "he_normal", seed=seed)
    if fixup:
        depth = len(model.blocks)
        with torch.no_grad():
            for block in model.blocks:
                block.fc1.weight.mul_(depth**-0.5)
                block.fc2.weight.zero_()
            model.head.weight.zero_()
            model.head.bias.zero_()
    return model


def at_init(depth: int, fixup: bool) -> tuple[float, float, float]:
    """(output std, loss, gradient norm) of a fresh model on the training split."""
    data = standardized_digits()
    model = initialise(build(data.n_features, WIDTH, depth, data.n_classes), fixup)
    logits = model(data.x_train)
    loss = F.cross_entropy(logits, data.y_train)
    grads = torch.autograd.grad(loss, list(model.parameters()), allow_unused=True)
    norm = math.sqrt(sum(float(g.pow(2).sum()) for g in grads if g is not None))
    return float(logits.detach().std()), float(loss.detach()), norm


def probe_panels(
    depths: list[int],
) -> tuple[dict[str, list[tuple[float, float, float]]], list[Panel]]:
    """:func:`at_init` for both inits at every depth, and the three panels that show it."""
    probes = {name: [at_init(d, name == "Fixup") for d in depths] for name in ("plain He", "Fixup")}
    x = [float(d) for d in depths]
    std_panel = Panel(
        "output std at init", "residual blocks", "std of the logits", logx=True, logy=True
    )
    loss_panel = Panel("loss at init", "residual blocks", "cross-entropy", logx=True, logy=True)
    grad_panel = Panel(
        "gradient norm at init", "residual blocks", "||dL/dtheta||", logx=True, logy=True
    )
    for name, rows in probes.items():
        std_panel.series.append(Series(name, x, [r[0] if r[0] > 0 else 1e-12 for r in rows]))
        loss_panel.series.append(Series(name, x, [r[1] for r in rows]))
        grad_panel.series.append(Series(name, x, [r[2] for r in rows]))
    return probes, [std_panel, loss_panel, grad_panel]


def train_both(depth: int, iterations: int) -> tuple[dict[str, Run], Panel]:
    """Plain He and Fixup nets of ``depth`` blocks, each trained with the shared setting."""
    data = standardized_digits()
    curves = Panel(f"training, {depth} blocks", "iteration", "training loss", logy=True)
    runs = {}
    for name in ("plain He", "Fixup"):
        model = initialise(build(data.n_features, WIDTH, depth, data.n_classes), name == "Fixup")
        runs[name] = train_run(model, data, lr=LR, iterations=iterations)
        curves.series.append(loss_series(name, runs[name]))
    return runs, curves


def checks_for(probes: dict, runs: dict[str, Run], depths: list[int], train_depth: int) -> list:
    """Fixup's loss and gradient norm flat over depth, plain He's output exploding, and the
    training of both at ``train_depth`` blocks."""
    fix_loss = [r[1] for r in probes["Fixup"]]
    fix_grad = [r[2] for r in probes["Fixup"]]
    plain_std = [r[0] for r in probes["plain He"]]
    fixup, plain = final_loss(runs["Fixup"]), runs["plain He"]
    return [
        check(
            "Fixup: loss at init, max / min over depths",
            max(fix_loss) / min(fix_loss),
            "< 1.01 (independent of depth)",
            max(fix_loss) / min(fix_loss) < 1.01,
        ),
        check(
            "Fixup: gradient norm at init, max / min over depths",
            max(fix_grad) / min(fix_grad),
            "< 1.5",
            max(fix_grad) / min(fix_grad) < 1.5,
        ),
        check(
            f"plain: output std at {depths[-1]} blocks / at 1 block",
            plain_std[-1] / plain_std[0],
            "> 1e3 (explodes with depth)",
            plain_std[-1] / plain_std[0] > 1e3,
        ),
        check(
            f"Fixup, {train_depth} blocks: final training loss",
            fixup,
            "< 0.5 (trains)",
            fixup < 0.5,
        ),
        check(
            f"plain, {train_depth} blocks: diverged (1) or final loss",
            1.0 if plain.status == "diverged" else final_loss(plain),
            "diverged, or loss above Fixup's",
            plain.status == "diverged" or final_loss(plain) > fixup,
        ),
    ]


def run(quick: bool = False) -> Reproduction:
    depths = [1, 4, 16, 64] if quick else [1, 4, 16, 64, 256]
    train_depth, iterations = (32, 300) if quick else (64, 1500)
    probes, panels = probe_panels(depths)
    runs, curves = train_both(train_depth, iterations)
    return Reproduction(
        paper=PAPERS["fixup2019"],
        quick=quick,
        setting={
            "data": "digits (standardized)",
            "width": WIDTH,
            "depths": depths,
            "train depth": train_depth,
            "optimizer": "momentum 0.9",
            "lr": LR,
            "batch": 64,
            "iterations": iterations,
            "dtype": "float64",
        },
        checks=checks_for(probes, runs, depths, train_depth),
        panels=[*panels, curves],
        notes="Residual MLPs on digits instead of ResNets on CIFAR-10/ImageNet; Fixup's scalar "
        "biases and multiplier are left out (they matter for final accuracy, not for the "
        "behaviour at init that the claim is about).",
    )
