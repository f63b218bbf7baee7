"""The data-flow tracer: one real forward pass, module calls and functions between them."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from initlab.initializers.gains import gain
from initlab.initializers.known_activations import MeasuredActivation
from initlab.initializers.trace import trace
from zoo import ZOO


def _build(factory):
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return factory()


class T5Dense(nn.Module):
    """T5's dense block: the activation is registered after both linears."""

    def __init__(self):
        super().__init__()
        self.wi, self.wo, self.act, self.dropout = (
            nn.Linear(8, 16), nn.Linear(16, 8), nn.ReLU(), nn.Dropout(0.1)
        )  # fmt: skip

    def forward(self, x):
        return self.wo(self.dropout(self.act(self.wi(x))))


class LlamaMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.gate_proj, self.up_proj, self.down_proj = (
            nn.Linear(8, 16), nn.Linear(8, 16), nn.Linear(16, 8)
        )  # fmt: skip
        self.act_fn = nn.SiLU()

    def forward(self, x):
        return self.down_proj(self.act_fn(self.gate_proj(x)) * self.up_proj(x))


class NewGELU(nn.Module):
    """Hugging Face's NewGELUActivation, written out: unknown to initlab by type."""

    def forward(self, x):
        return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def _x(*shape):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(0))


def _act(flow, name):
    return flow.following(name).activation


def test_activation_registered_after_both_layers_follows_data_flow():
    flow = trace(_build(T5Dense), _x(2, 8))
    assert _act(flow, "wi") == ("relu", None)
    assert _act(flow, "wo") == ("linear", None)
    assert flow.order == ["wi", "act", "dropout", "wo"]


def test_gated_mlp_gate_gets_the_activation_and_up_is_linear():
    flow = trace(_build(LlamaMLP), _x(2, 8))
    assert _act(flow, "gate_proj") == ("silu", None)
    assert _act(flow, "up_proj") == ("linear", None)
    assert _act(flow, "down_proj") == ("linear", None)


def test_an_activation_module_of_any_class_is_known_by_what_it_computes():
    model = _build(lambda: nn.Sequential(nn.Linear(8, 8), NewGELU(), nn.Linear(8, 2)))
    following = trace(model, _x(2, 8)).following("0")
    # the tanh approximation of GELU is GELU (within 5e-4 everywhere)
    assert (following.activation, following.how) == (("gelu", None), "matched")


class QuickGELU(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


def test_unknown_activation_module_is_measured():
    model = _build(lambda: nn.Sequential(nn.Linear(8, 8), QuickGELU(), nn.Linear(8, 2)))
    following = trace(model, _x(2, 8)).following("0")
    name, _ = following.activation
    assert isinstance(name, MeasuredActivation) and str(name) == "QuickGELU"
    assert following.how == "measured"
    # x * sigmoid(1.702 x) approximates GELU: its measured gain is close to GELU's
    assert gain(name) == pytest.approx(gain("gelu"), abs=0.05)


class Functional(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2, self.fc3 = nn.Linear(8, 8), nn.Linear(8, 8), nn.Linear(8, 2)

    def forward(self, x):
        h = F.dropout(self.fc1(x).view(2, 8), 0.1, self.training)
        h = F.leaky_relu(h, 0.3)
        h = x + self.fc2(h)
        return self.fc3(torch.tanh(F.layer_norm(h, (8,))))


def test_functional_activations_shape_ops_and_residual_adds():
    flow = trace(_build(Functional), _x(2, 8))
    assert _act(flow, "fc1") == ("leaky_relu", 0.3)
    assert _act(flow, "fc2") == ("tanh", None)
    assert flow.following("fc2").path == ("add", "layer_norm", "tanh")
    assert flow.residual("fc2") and not flow.residual("fc1")


def test_identity_passes_the_signal_on():
    flow = trace(ZOO["efficientnet"](seed=0).model, ZOO["efficientnet"](seed=0).example)
    # timm's BatchNormAct2d: batch_norm, drop = Identity(), act = SiLU(), all inside one module
    assert _act(flow, "0") == ("silu", None)
    assert _act(flow, "2.conv_dw") == ("silu", None)
    assert _act(flow, "2.conv_pw") == ("linear", None)  # its BatchNormAct2d has act=Identity


def test_trace_changes_nothing():
    zoo = ZOO["resnet_basic"](seed=0, batch=2, size=16)
    model = zoo.model.train()
    model.layer1[0].bn1.running_mean.fill_(0.25)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    flow = trace(model, zoo.example)
    assert model.training and all(m.training for m in model.modules())
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # running stats restored
    assert len(flow.calls) > 50
    # no hooks left behind
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


def test_dict_and_tuple_examples():
    class TwoInputs(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 4)

        def forward(self, x, y=None):
            return torch.sigmoid(self.a(x)) + F.gelu(self.b(y))

    model = _build(TwoInputs)
    x = _x(2, 4)
    for example in ((x, x), {"x": x, "y": x}):
        flow = trace(model, example)
        assert _act(flow, "a") == ("sigmoid", None)
        assert _act(flow, "b") == ("gelu", None)


def test_example_the_model_rejects_is_a_clear_error():
    with pytest.raises(ValueError, match="could not run the model on the example input"):
        trace(_build(lambda: nn.Linear(4, 2)), _x(2, 5))


def test_residual_streams_on_real_models():
    zoo = ZOO["gpt2"](seed=0)
    flow = trace(zoo.model, zoo.example)
    residual = flow.residual_modules()
    assert "transformer.h.0.attn.c_proj" in residual
    assert "transformer.h.1.mlp.c_proj" in residual
    assert "transformer.h.0.mlp.c_fc" not in residual
    assert "transformer.wpe" not in residual  # two embeddings of the same ids are summed
    vit = ZOO["vit"](seed=0)
    residual = trace(vit.model, vit.example).residual_modules()
    assert "layers.0.mlp.3" in residual and "layers.0.mlp.0" not in residual
    assert "conv_proj" not in residual  # pos_embedding is added to it: not a stream


@pytest.mark.parametrize("name", sorted(ZOO))
def test_every_zoo_model_traces(name):
    zoo = ZOO[name](seed=0)
    flow = trace(zoo.model, zoo.example)
    called = set(flow.order)
    assert called, name
    weights = [n for n, m in zoo.model.named_modules() if n in called
               and any(p.dim() >= 2 for p in m.parameters(recurse=False))]  # fmt: skip
    assert weights
    for layer in weights:
        assert flow.following(layer) is not None


def test_call_model_and_main_output_read_every_calling_convention():
    """One helper calls a model with a tensor, a tuple or a mapping and finds its main output."""
    from types import MappingProxyType

    from initlab.initializers.model_calls import call_model, main_output
    from zoo import gpt2

    entry = gpt2(seed=0)
    entry.model.eval()
    with torch.no_grad():
        by_dict = main_output(call_model(entry.model, entry.example))
        by_mapping = main_output(call_model(entry.model, MappingProxyType(entry.example)))
    assert by_dict.shape == (2, 16, 128) and torch.equal(by_dict, by_mapping)
    with torch.random.fork_rng(devices=[]):  # nn.Linear's default init uses the global RNG
        linear = torch.nn.Linear(3, 2)
    x = torch.ones(1, 3)
    assert torch.equal(main_output(call_model(linear, x)), linear(x))
    assert torch.equal(main_output((linear(x), "extra")), linear(x))
    with pytest.raises(TypeError, match="returned no tensor"):
        main_output("not a tensor")
