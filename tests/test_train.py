import math

import pytest
import torch

import initlab
from initlab.bench.train import Monitor as MonitorProtocol
from initlab.bench.train import train


def _course_model(scheme="he", dims=(2, 10, 5, 1)):
    model = initlab.mlp(list(dims)).double()
    initlab.load_parameters(model, initlab.initialize_parameters(list(dims), scheme, seed=3))
    return model


def test_he_learns_circles_fast_settings():
    run = train(_course_model(), "circles", init=None, optimizer="adam", lr=0.01,
                iterations=1500, progress=False)  # fmt: skip
    assert run.status == "finished"
    assert run.train_accuracy >= 0.97 and run.test_accuracy >= 0.9
    assert run.history.iteration[0] == 0 and run.history.iteration[-1] == 1500
    assert set(run.history.grad_norm) == {"linear1", "linear2", "linear3"}
    assert run.history.loss[-1] < run.history.loss[0]
    assert "finished" in str(run) and run.to_dict()["status"] == "finished"


def test_course_numbers_after_a_few_hundred_steps_match_numpy():
    # The course loop in NumPy (X of shape (features, m)), 300 full-batch GD steps.
    import numpy as np

    data = initlab.datasets.load("circles")
    x, y = data.x_train.numpy().T, data.y_train.numpy()[None, :]
    p = initlab.initialize_parameters([2, 10, 5, 1], "he", seed=3)
    m = x.shape[1]
    for _ in range(300):
        a1 = np.maximum(0, p["W1"] @ x + p["b1"])
        a2 = np.maximum(0, p["W2"] @ a1 + p["b2"])
        a3 = 1 / (1 + np.exp(-(p["W3"] @ a2 + p["b3"])))
        dz3 = (a3 - y) / m
        dz2 = (p["W3"].T @ dz3) * (a2 > 0)
        dz1 = (p["W2"].T @ dz2) * (a1 > 0)
        for k, (dz, a) in {1: (dz1, x), 2: (dz2, a1), 3: (dz3, a2)}.items():
            p[f"W{k}"] = p[f"W{k}"] - 0.01 * dz @ a.T
            p[f"b{k}"] = p[f"b{k}"] - 0.01 * dz.sum(1, keepdims=True)
    model = _course_model()
    train(model, data, init=None, iterations=300, progress=False)
    for k in (1, 2, 3):
        layer = getattr(model, f"linear{k}")
        assert np.allclose(layer.weight.detach().numpy(), p[f"W{k}"], rtol=1e-10, atol=1e-12)


def test_init_applies_the_scheme_with_the_seed():
    a = train(initlab.mlp([2, 10, 5, 1]).double(), "circles", init="he", seed=4, iterations=1,
              progress=False).model  # fmt: skip
    b = initlab.mlp([2, 10, 5, 1]).double()
    initlab.init_model(b, "he", seed=4)
    # one GD step from the same start is the same step
    c = train(b, "circles", init=None, iterations=1, progress=False).model
    assert torch.equal(a.linear1.weight, c.linear1.weight)


def _one_step_grads(**kwargs):
    model = _course_model("random:scale=10")
    before = [p.detach().clone() for p in model.parameters()]
    train(model, "circles", init=None, iterations=1, lr=1.0, progress=False, **kwargs)
    return [b - p.detach() for b, p in zip(before, model.parameters(), strict=True)], before


def test_l2_adds_lambda_over_m_times_w_to_weight_gradients():
    plain, w = _one_step_grads()
    reg, _ = _one_step_grads(l2=0.7)
    for k, (g0, g1, p) in enumerate(zip(plain, reg, w, strict=True)):
        expected = g0 + (0.7 / 300) * p if p.dim() == 2 else g0
        assert torch.allclose(g1, expected, rtol=1e-12, atol=1e-14), k


def test_clip_norm_caps_the_global_gradient_norm():
    plain, _ = _one_step_grads()
    clipped, _ = _one_step_grads(clip_norm=0.5)
    norm = math.sqrt(sum(float(g.pow(2).sum()) for g in plain))
    assert norm > 0.5
    for g0, g1 in zip(plain, clipped, strict=True):
        assert torch.allclose(g1, g0 * (0.5 / norm), rtol=1e-12, atol=1e-15)
    clipped_value, _ = _one_step_grads(clip_value=0.01)
    for g0, g1 in zip(plain, clipped_value, strict=True):
        assert torch.allclose(g1, g0.clamp(-0.01, 0.01), rtol=1e-9, atol=1e-15)


def test_dropout_gradient_follows_the_mask():
    # With dropout the step uses inverted dropout masks: a different (seeded) gradient.
    def step(seed):
        model = initlab.mlp([2, 10, 5, 1], dropout=0.5).double()
        initlab.init_model(model, "he", seed=0)
        train(model, "circles", init=None, iterations=1, seed=seed, progress=False)
        return model.linear1.weight.detach().clone()

    assert torch.equal(step(1), step(1))
    assert not torch.equal(step(1), step(2))


def test_divergence_is_detected_and_nothing_after_it_reported():
    model = initlab.mlp([2, 10, 5, 1], "linear", "linear").double()
    run = train(model, "circles", init="random:scale=10", lr=10.0, iterations=200,
                progress=False)  # fmt: skip
    assert run.status == "diverged"
    assert run.diverged_at is not None and 0 < run.diverged_at < 200
    assert run.diverged_layer and run.diverged_layer.startswith("linear")
    assert run.final_loss is None and run.train_accuracy is None and run.test_accuracy is None
    assert all(i < run.diverged_at for i in run.history.iteration)
    assert "diverged" in str(run)


def test_monitor_is_stepped_before_every_forward():
    calls = []

    class Recorder:
        def step(self, iteration):
            calls.append(iteration)

    assert isinstance(Recorder(), MonitorProtocol)
    train(_course_model(), "circles", init=None, iterations=5, monitor=Recorder(), progress=False)
    assert calls == [0, 1, 2, 3, 4]


def test_minibatch_and_optimizers_run():
    for optimizer in ("sgd", "momentum", "adam"):
        run = train(_course_model(), "circles", init=None, optimizer=optimizer, batch_size=64,
                    iterations=50, lr=0.01, progress=False)  # fmt: skip
        assert run.status == "finished" and len(run.history.loss) >= 2


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"optimizer": "adamw"}, ValueError, "did you mean 'adam'"),
        ({"lr": -1.0}, ValueError, "lr must be > 0"),
        ({"iterations": 0}, ValueError, "iterations must be >= 1"),
        ({"batch_size": 32}, ValueError, "full-batch"),
        ({"init": "hee"}, ValueError, "did you mean 'he'"),
        ({"clip_norm": 0.0}, ValueError, "clip_norm must be > 0"),
        ({"dtype": "float16"}, ValueError, "dtype must be one of"),
        ({"monitor": object()}, TypeError, "monitor must have a step"),
    ],
)
def test_bad_options_raise_clear_errors(kwargs, error, message):
    with pytest.raises(error, match=message):
        train(
            _course_model(), "circles", progress=False, **{"init": None, "iterations": 1, **kwargs}
        )


def test_bad_data_and_model():
    with pytest.raises(TypeError, match=r"torch\.nn\.Module"):
        train("model", "circles")
    with pytest.raises(TypeError, match="data must be"):
        train(_course_model(), 3.0, progress=False)
    with pytest.raises(ValueError, match="3 classes need a softmax output with 3 units"):
        train(_course_model(), "blobs", init=None, iterations=1, progress=False)
