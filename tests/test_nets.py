"""mlp / MLP builders and course-parameter loading."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from initlab import MLP, init_model, initialize_parameters, load_parameters, mlp


def _build(*args, **kwargs) -> MLP:
    with torch.random.fork_rng():  # PyTorch's default init draws from the global RNG
        return mlp(*args, **kwargs)


def test_layout_and_names():
    model = _build([2, 10, 5, 1], ["relu", "tanh"], dropout=0.2)
    assert [n for n, _ in model.named_children()] == [
        "linear1", "act1", "dropout1", "linear2", "act2", "dropout2", "linear3"
    ]  # fmt: skip
    assert isinstance(model.act1, nn.ReLU) and isinstance(model.act2, nn.Tanh)
    assert [tuple(m.weight.shape) for m in model.linears] == [(10, 2), (5, 10), (1, 5)]
    assert model.layer_dims == (2, 10, 5, 1) and model.output == "sigmoid"


@pytest.mark.parametrize("output", ["sigmoid", "softmax", "linear"])
def test_forward_returns_logits_predict_proba_applies_output(output):
    model = _build([3, 4, 2], output=output)
    x = torch.linspace(-1, 1, 15).reshape(5, 3)
    logits = model(x)
    expected = {"sigmoid": torch.sigmoid, "softmax": lambda z: torch.softmax(z, -1),
                "linear": lambda z: z}[output]  # fmt: skip
    torch.testing.assert_close(model.predict_proba(x), expected(logits))


def test_init_model_sees_each_activation():
    model = _build([64, 64, 64, 1], ["relu", "tanh"])
    report = init_model(model, seed=0)
    assert [report[f"linear{i}.weight"].activation for i in (1, 2, 3)] == [
        "relu", "tanh", "linear"
    ]  # fmt: skip


def test_load_course_parameters():
    params = initialize_parameters([4, 6, 3, 1], "he", seed=3)
    model = load_parameters(_build([4, 6, 3, 1]), params)
    for i, layer in enumerate(model.linears, start=1):
        np.testing.assert_array_equal(
            layer.weight.detach().numpy(), params[f"W{i}"].astype(np.float32)
        )
        np.testing.assert_array_equal(layer.bias.detach().numpy(), params[f"b{i}"].ravel())


def test_load_parameters_errors():
    model = _build([4, 6, 1])
    with pytest.raises(ValueError, match=r"expected parameters \['W1', 'W2', 'b1', 'b2'\]"):
        load_parameters(model, {"W1": np.zeros((6, 4))})
    bad = initialize_parameters([4, 6, 1])
    bad["W1"] = bad["W1"].T
    with pytest.raises(ValueError, match=r"W1/b1: expected shapes \(6, 4\)"):
        load_parameters(model, bad)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"layer_dims": [3]}, ValueError, "at least 2 sizes"),
        ({"layer_dims": [3, 0, 1]}, ValueError, r"layer_dims\[1\] must be >= 1"),
        ({"layer_dims": [3, 4, 1], "activation": "rleu"}, ValueError,
         r"activation\[0\] must be one of .*did you mean 'relu'"),
        ({"layer_dims": [3, 4, 4, 1], "activation": ["relu"]}, ValueError,
         "one name or one per hidden layer"),
        ({"layer_dims": [3, 1], "output": "softmaxx"}, ValueError, "did you mean 'softmax'"),
        ({"layer_dims": [3, 1], "dropout": 1.0}, ValueError, r"dropout must be <= 0\.999"),
        ({"layer_dims": ["a", 1]}, TypeError, "must be a number"),
    ],
)  # fmt: skip
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        _build(**kwargs)


def test_the_cli_lists_the_same_activations_the_nets_build():
    from initlab.bench.choices import HIDDEN_ACTIVATION_NAMES
    from initlab.bench.nets import HIDDEN_ACTIVATIONS

    assert tuple(HIDDEN_ACTIVATIONS) == HIDDEN_ACTIVATION_NAMES
