"""Which activation follows each layer: fx tracing, registration order, special layers."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from initlab.initializers.activations import following_activations
from initlab.initializers.known_activations import module_activation


def _build(factory):
    # module constructors draw PyTorch's default init from the global RNG: keep it untouched
    with torch.random.fork_rng():
        return factory()


def _found(model):
    return {k: (v.activation[0], v.source) for k, v in following_activations(model).items()}


def test_sequential():
    model = _build(lambda: nn.Sequential(
        nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8), nn.Dropout(0.1), nn.Tanh(),
        nn.Linear(8, 8), nn.LeakyReLU(0.2), nn.Linear(8, 2),
    ))  # fmt: skip
    assert _found(model) == {
        "0": ("relu", "sequential"), "2": ("tanh", "sequential"), "5": ("leaky_relu", "sequential"),
        "7": ("linear", "none"),
    }  # fmt: skip
    assert following_activations(model)["5"].activation == ("leaky_relu", 0.2)


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2, self.fc3 = nn.Linear(8, 8), nn.Linear(8, 8), nn.Linear(8, 4)
        self.norm = nn.LayerNorm(8)
        self.conv = nn.Conv1d(1, 1, 3, padding=1)

    def forward(self, x):
        h = F.relu(self.fc1(x))
        x = x + self.fc2(h)  # residual add, then a norm, then tanh
        x = torch.tanh(self.norm(x))
        y = self.conv(x.unsqueeze(1)).squeeze(1)
        y = F.leaky_relu(y, 0.3)
        return self.fc3(y).sigmoid()


def test_fx_functions_methods_and_residuals():
    found = following_activations(_build(Residual))
    assert {k: v.activation for k, v in found.items()} == {
        "fc1": ("relu", None), "fc2": ("tanh", None), "conv": ("leaky_relu", 0.3),
        "fc3": ("sigmoid", None),
    }  # fmt: skip
    assert {v.source for v in found.values()} == {"fx"}


class DataDependent(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(4, 4), nn.GELU(), nn.Linear(4, 2)

    def forward(self, x):
        h = self.fc1(x)
        if h.sum() > 0:  # data-dependent control flow: fx cannot trace this
            h = self.act(h)
        return self.fc2(h)


def test_untraceable_model_falls_back_to_order():
    assert _found(_build(DataDependent)) == {"fc1": ("gelu", "order"), "fc2": ("linear", "none")}


def test_multihead_attention_out_proj_follows_the_module():
    class Attn(nn.Module):
        def __init__(self):
            super().__init__()
            self.mha = nn.MultiheadAttention(8, 2, batch_first=True)

        def forward(self, x):
            return F.relu(self.mha(x, x, x)[0])

    found = _found(_build(Attn))
    assert found["mha"] == ("relu", "fx")
    assert found["mha.out_proj"] == ("relu", "fx")  # inside the fx leaf: the module's answer


@pytest.mark.parametrize(("activation", "expected"), [("relu", "relu"), ("gelu", "gelu")])
def test_transformer_layers_use_their_activation_attribute(activation, expected):
    model = _build(lambda: nn.Sequential(
        nn.TransformerEncoderLayer(16, 4, 32, activation=activation), nn.Linear(16, 2)
    ))  # fmt: skip
    found = _found(model)
    assert found["0.linear1"] == (expected, "layer")
    assert found["0.linear2"][0] == "linear"


@pytest.mark.parametrize(
    ("module", "expected"),
    [(nn.ReLU(), ("relu", None)), (nn.LeakyReLU(0.1), ("leaky_relu", 0.1)),
     (nn.ELU(0.5), ("elu", 0.5)), (nn.Softplus(beta=2), ("softplus", 2.0)),
     (nn.SiLU(), ("silu", None)), (nn.Tanh(), ("tanh", None)), (nn.SELU(), ("selu", None)),
     (nn.Identity(), None), (nn.Linear(2, 2, device="meta"), None),
     (nn.Dropout(), None)],
)  # fmt: skip
def test_module_activation(module, expected):
    assert module_activation(module) == expected


class FunctionalTanh(nn.Module):
    def forward(self, x):
        return torch.tanh(x)


def test_sequential_with_a_custom_leaf_is_traced():
    # A custom module hides a functional activation that only tracing can see.
    model = _build(lambda: nn.Sequential(nn.Linear(4, 8), FunctionalTanh(), nn.Linear(8, 2)))
    assert _found(model) == {"0": ("tanh", "fx"), "2": ("linear", "none")}


def test_plain_sequential_is_not_traced(monkeypatch):
    import initlab.initializers.activations as acts

    monkeypatch.setattr(acts, "_fx_trace", lambda model: pytest.fail("traced a plain Sequential"))
    monkeypatch.setattr(acts, "trace", lambda *a: pytest.fail("traced a plain Sequential"))
    model = _build(
        lambda: nn.Sequential(nn.Sequential(nn.Linear(4, 8), nn.ReLU()), nn.Linear(8, 1))
    )
    assert _found(model) == {"0.0": ("relu", "sequential"), "1": ("linear", "none")}
    x = torch.randn(2, 4, generator=torch.Generator().manual_seed(0))
    found = following_activations(model, x)
    assert {k: v.activation for k, v in found.items()} == {
        "0.0": ("relu", None),
        "1": ("linear", None),
    }
