"""initlab.Monitor: the doctor's statistics during training, every k iterations."""

from __future__ import annotations

import copy
import json

import pytest
import torch
import torch.nn.functional as F

import initlab


def built(factory):
    with torch.random.fork_rng(devices=[]):  # PyTorch's default init draws from the global RNG
        return factory()


def small() -> initlab.MLP:
    model = built(lambda: initlab.mlp([8, 16, 16, 1], activation="tanh"))
    initlab.init_model(model, "xavier_normal", seed=0)
    return model


def data():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(64, 8, generator=gen)
    y = (x[:, :1] > 0).float()
    return x, y


def manual_training(model, monitor, iterations, x, y, lr=0.5):
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    for i in range(iterations):
        monitor.step(i)
        loss = F.binary_cross_entropy_with_logits(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            model(x)  # an evaluation pass in the same iteration is not recorded


def test_records_every_k_and_matches_diagnose():
    model, (x, y) = small(), data()
    initial = copy.deepcopy(model)
    with initlab.Monitor(model, every=5) as monitor:
        manual_training(model, monitor, 12, x, y)
    assert monitor.iterations == [0, 5, 10]
    first = monitor.history[0]
    assert first.label == "iteration 0" and len(first.layers) == 5  # one forward recorded
    # Iteration 0 sees the initial weights and the training loss: the same as diagnose.
    d = initlab.diagnose(initial, x, y, F.binary_cross_entropy_with_logits)
    for a, b in zip(first.layers, d.layers, strict=True):
        assert a.name == b.name
        assert a.rms == pytest.approx(b.rms, rel=1e-5)
        assert a.zeros == b.zeros and a.saturated == b.saturated
        assert a.grad_output == pytest.approx(b.grad_output, rel=1e-5)
        for stat, rel in (("weight_norm", 1e-6), ("grad_weight", 1e-5)):
            mine, theirs = getattr(a, stat), getattr(b, stat)
            assert (mine is None) == (theirs is None), (a.name, stat)
            if theirs is not None:  # None for layers without weights (ReLU)
                assert mine == pytest.approx(theirs, rel=rel)
    # Training moved the weights: later records differ.
    assert monitor.history[2].weighted[0].weight_norm != first.weighted[0].weight_norm


def test_hooks_are_removed_and_training_is_unchanged():
    model, (x, y) = small(), data()
    twin = copy.deepcopy(model)
    with initlab.Monitor(model, every=2) as monitor:
        manual_training(model, monitor, 6, x, y)
    for m in model.modules():
        assert not m._forward_hooks
    assert all(p._backward_hooks is None or not p._backward_hooks for p in model.parameters())

    class Idle:
        def step(self, iteration):
            pass

    manual_training(twin, Idle(), 6, x, y)
    for a, b in zip(model.parameters(), twin.parameters(), strict=True):
        assert torch.equal(a, b)  # watching does not change the run
    assert len(monitor.history) == 3


def test_series_and_json():
    model, (x, y) = small(), data()
    with initlab.Monitor(model, every=3) as monitor:
        manual_training(model, monitor, 9, x, y)
    series = monitor.series("grad_ratio")
    assert list(series) == ["linear1", "linear2", "linear3"]
    assert all(len(v) == 3 and all(isinstance(e, float) for e in v) for v in series.values())
    assert len(monitor.series("rms", weighted_only=False)) == 5
    data_ = json.loads(json.dumps(monitor.to_dict(), allow_nan=False))
    assert data_["every"] == 3 and [h["iteration"] for h in data_["history"]] == [0, 3, 6]
    assert "iteration" in str(monitor) and "healthy" in str(monitor)
    with pytest.raises(ValueError, match="stat must be one of"):
        monitor.series("rsm")


def test_validation_and_protocol():
    model = small()
    with pytest.raises(ValueError, match="every must be >= 1"):
        initlab.Monitor(model, every=0)
    with pytest.raises(TypeError, match=r"nn\.Module"):
        initlab.Monitor("model")
    monitor = initlab.Monitor(model)
    with pytest.raises(RuntimeError, match="outside"):
        monitor.step(0)
    from initlab.bench.train import Monitor as Protocol

    assert isinstance(monitor, Protocol)


def test_with_initlab_train():
    model = built(lambda: initlab.mlp([2, 8, 8, 1], activation="relu"))
    with initlab.Monitor(model, every=10) as monitor:
        initlab.train(model, "circles", iterations=25, lr=0.1, monitor=monitor, progress=False)
    assert monitor.iterations == [0, 10, 20]
    assert all(d.weighted[0].grad_weight > 0 for d in monitor.history)
