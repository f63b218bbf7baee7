"""The vmap and loop engines: every member of a chunk equals its own separate run."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from _sweep_models import TinyTransformer
from initlab.bench.datasets import load
from initlab.bench.sweep.engine import build_member, train_ensemble
from initlab.bench.sweep.ensemble import CHECK_EVERY
from initlab.bench.sweep.loop import train_loop
from initlab.bench.sweep.spec import SweepSpec
from initlab.bench.train import as_dataset, train


def _digits_small():
    d = load("digits")
    return as_dataset((d.x_train[:32], d.y_train[:32], d.x_test[:16], d.y_test[:16]))


class SmallCNN(nn.Module):
    def __init__(self, width: int = 4, depth: int = 1, activation: str = "relu") -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Unflatten(1, (1, 8, 8)), nn.Conv2d(1, width, 3, padding=1)]
        for _ in range(depth):
            layers += [nn.ReLU() if activation == "relu" else nn.Tanh(),
                       nn.Conv2d(width, width, 3, padding=1)]  # fmt: skip
        layers += [nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(4 * width, 10)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _configs(lrs, schemes=("he", "xavier"), scale=(1.0, 2.0)):
    configs = []
    for i, lr in enumerate(lrs):
        configs.append({"scheme": schemes[i % len(schemes)], "scale": scale[i % len(scale)],
                        "activation": "relu", "depth": 1, "width": 4, "lr": lr,
                        "optimizer": "gd", "data": "d", "seed": i})  # fmt: skip
    return configs


def _separate(spec, config, data):
    model = build_member(spec, config, data)
    run = train(model, data, init=None, optimizer=config["optimizer"], lr=config["lr"],
                iterations=spec.iterations, momentum=spec.momentum, betas=spec.betas,
                eps=spec.eps, clip_norm=spec.clip_norm, log_every=spec.iterations,
                progress=False)  # fmt: skip
    return run


ENGINES = pytest.mark.parametrize("engine", [train_ensemble, train_loop], ids=["vmap", "loop"])


@pytest.mark.parametrize(
    ("factory", "optimizer"),
    [(SmallCNN, "gd"), (SmallCNN, "momentum"), (SmallCNN, "adam"), (TinyTransformer, "gd"),
     (TinyTransformer, "adam")],
    ids=["cnn-gd", "cnn-momentum", "cnn-adam", "transformer-gd", "transformer-adam"],
)  # fmt: skip
@ENGINES
def test_members_equal_separate_runs(factory, optimizer, engine):
    data = _digits_small()
    lr = {"gd": 0.1, "momentum": 0.05, "adam": 0.003}[optimizer]
    spec = SweepSpec(axes={"width": [4, 8]} if factory is SmallCNN else {}, model=factory,
                     iterations=8, dtype="float64", clip_norm=5.0)  # fmt: skip
    configs = _configs([lr, lr * 0.5, lr * 2])
    for c in configs:
        c["optimizer"] = optimizer
        c["width"] = 4 if factory is SmallCNN else 16
    models = [build_member(spec, c, data) for c in configs]
    batched = engine(models, configs, data, spec)
    for config, got in zip(configs, batched, strict=True):
        run = _separate(spec, config, data)
        assert got["status"] == run.status == "finished"
        assert got["final_loss"] == pytest.approx(run.final_loss, rel=1e-10, abs=1e-12)
        assert got["initial_loss"] == pytest.approx(run.history.loss[0], rel=1e-10)
        assert got["train_accuracy"] == run.train_accuracy
        assert got["test_accuracy"] == run.test_accuracy
    # the members really differ (else the test could not fail on a mixed-up member)
    assert len({round(b["final_loss"], 6) for b in batched}) == len(batched)


@ENGINES
def test_a_diverging_member_is_masked_and_does_not_poison_the_others(engine):
    data = _digits_small()
    spec = SweepSpec(model=SmallCNN, iterations=8, dtype="float64")
    configs = _configs([0.1, 0.1, 0.05])
    configs[1]["scale"] = 1e200  # weights ~1e100: the logits overflow
    models = [build_member(spec, c, data) for c in configs]
    batched = engine(models, configs, data, spec)
    assert batched[1]["status"] == "diverged"
    assert batched[1]["final_loss"] is None
    separate = _separate(spec, configs[1], data)
    assert separate.status == "diverged"
    assert batched[1]["diverged_at"] == separate.diverged_at
    for b in (0, 2):
        run = _separate(spec, configs[b], data)
        assert batched[b]["status"] == "finished"
        assert batched[b]["final_loss"] == pytest.approx(run.final_loss, rel=1e-10)
        assert math.isfinite(batched[b]["best_loss"])


@ENGINES
def test_dropout_is_refused_with_a_clear_error(engine):
    data = _digits_small()

    def net(width: int = 8) -> nn.Module:
        return nn.Sequential(nn.Linear(64, width), nn.Dropout(0.5), nn.Linear(width, 10))

    spec = SweepSpec(model=net, iterations=2)
    configs = _configs([0.1, 0.1])
    models = [build_member(spec, c, data) for c in configs]
    with pytest.raises(ValueError, match="dropout"):
        engine(models, configs, data, spec)


@ENGINES
def test_members_diverging_between_checks_keep_their_first_bad_iteration(engine):
    # Divergence is checked every CHECK_EVERY steps (no host read per step): members that blow
    # up at iterations 4 and 33 (neither a check step) still report those iterations, and
    # their garbage values in between do not reach the others.
    data = _digits_small()
    spec = SweepSpec(model=SmallCNN, iterations=40, dtype="float64")
    configs = _configs([0.1, 10.0, 10.0, 0.05])
    configs[2] = {**configs[1], "scale": 1e30}
    configs[1]["scale"] = 1e40
    assert CHECK_EVERY not in (4, 33) and 33 % CHECK_EVERY and 4 % CHECK_EVERY
    models = [build_member(spec, c, data) for c in configs]
    batched = engine(models, configs, data, spec)
    for b, expected in ((1, 4), (2, 33)):
        run = _separate(spec, configs[b], data)
        assert run.status == "diverged" and run.diverged_at == expected
        assert batched[b]["status"] == "diverged"
        assert batched[b]["diverged_at"] == expected
        assert batched[b]["final_loss"] is None
    for b in (0, 3):
        run = _separate(spec, configs[b], data)
        assert batched[b]["status"] == "finished"
        assert batched[b]["final_loss"] == pytest.approx(run.final_loss, rel=1e-10)
        assert batched[b]["test_accuracy"] == run.test_accuracy


class _WideCNN(nn.Module):
    def __init__(self, width: int = 4) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Unflatten(1, (1, 8, 8)), nn.Conv2d(1, width, 3, padding=1), nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1), nn.ReLU(), nn.Flatten(),
            nn.Linear(64 * width, 10),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def test_loop_engine_numbers_do_not_depend_on_the_thread_count():
    """A convolution's weight gradient sums over the batch in per-thread parts: on 2 intra-op
    threads this float32 CNN ends at other bits than on 1 (a local run against a one-CPU Ray
    task). The loop engine computes every member on one thread, spreading members instead."""
    from initlab._core.threads import few_threads

    d = load("digits")
    data = as_dataset((d.x_train[:64], d.y_train[:64], d.x_test[:16], d.y_test[:16]))
    spec = SweepSpec(model=_WideCNN, iterations=10, dtype="float32")
    configs = _configs([0.1, 0.05, 0.1, 0.2])
    results = {}
    for threads in (1, 2):
        models = [build_member(spec, c, data) for c in configs]
        with few_threads(threads):
            results[threads] = train_loop(models, configs, data, spec)
    assert results[1] == results[2]
