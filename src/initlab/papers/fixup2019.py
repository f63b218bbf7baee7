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

from initlab.bench.train import train
from initlab.initializers.apply import init_model
from initlab.papers._data import standardized_digits
from initlab.papers._nets import ResidualMLP, build
from initlab.papers.base import Panel, Reproduction, Series, check
from initlab.papers.catalog import PAPERS

WIDTH = 64


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


def run(quick: bool = False) -> Reproduction:
    depths = [1, 4, 16, 64] if quick else [1, 4, 16, 64, 256]
    train_depth, iterations = (32, 300) if quick else (64, 1500)
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
    curves = Panel(f"training, {train_depth} blocks", "iteration", "training loss", logy=True)
    finals = {}
    data = standardized_digits()
    for name in ("plain He", "Fixup"):
        model = initialise(
            build(data.n_features, WIDTH, train_depth, data.n_classes), name == "Fixup"
        )
        result = train(
            model,
            data,
            init=None,
            optimizer="momentum",
            lr=0.01,
            iterations=iterations,
            batch_size=64,
            seed=0,
            progress=False,
            log_every=max(1, iterations // 30),
        )
        finals[name] = result
        label = f"{name} ({result.status}"
        label += f" at {result.diverged_at})" if result.status == "diverged" else ")"
        curves.series.append(
            Series(
                label, list(result.history.iteration), [max(v, 1e-12) for v in result.history.loss]
            )
        )
    fix_loss = [r[1] for r in probes["Fixup"]]
    fix_grad = [r[2] for r in probes["Fixup"]]
    plain_std = [r[0] for r in probes["plain He"]]
    fixup_run = finals["Fixup"]
    plain_run = finals["plain He"]
    checks = [
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
            fixup_run.final_loss if fixup_run.final_loss is not None else math.inf,
            "< 0.5 (trains)",
            fixup_run.final_loss is not None and fixup_run.final_loss < 0.5,
        ),
        check(
            f"plain, {train_depth} blocks: diverged (1) or final loss",
            1.0 if plain_run.status == "diverged" else float(plain_run.final_loss),
            "diverged, or loss above Fixup's",
            plain_run.status == "diverged"
            or float(plain_run.final_loss) > float(fixup_run.final_loss or math.inf),
        ),
    ]
    return Reproduction(
        paper=PAPERS["fixup2019"],
        quick=quick,
        setting={
            "data": "digits (standardized)",
            "width": WIDTH,
            "depths": depths,
            "train depth": train_depth,
            "optimizer": "momentum 0.9",
            "lr": 0.01,
            "batch": 64,
            "iterations": iterations,
            "dtype": "float64",
        },
        checks=checks,
        panels=[std_panel, loss_panel, grad_panel, curves],
        notes="Residual MLPs on digits instead of ResNets on CIFAR-10/ImageNet; Fixup's scalar "
        "biases and multiplier are left out (they matter for final accuracy, not for the "
        "behaviour at init that the claim is about).",
    )
