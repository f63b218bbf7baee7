"""The doctor inside LSTM/GRU/RNN layers (issue 11): the step-by-step replay matches PyTorch's
own forward, N(0, 1) weights are named "saturated" with per-gate numbers, the framework
default stays healthy, N(0, 1e-4) is "vanishing", and fix heals the gates."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import initlab
from initlab.doctor.recurrent import _initial, _run
from zoo import ZOO


@pytest.fixture(autouse=True)
def _flush_denormals():
    torch.set_flush_denormal(True)
    yield
    torch.set_flush_denormal(False)


def _scaled(model: nn.Module, std: float) -> None:
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() >= 2:
                p.copy_(std * torch.randn(p.shape, generator=generator))


@pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN")
@pytest.mark.parametrize(
    "make",
    [
        lambda: nn.LSTM(5, 7, num_layers=2, batch_first=True),
        lambda: nn.LSTM(5, 7, num_layers=2, bidirectional=True, proj_size=3),
        lambda: nn.GRU(5, 7, num_layers=2, bidirectional=True, batch_first=True),
        lambda: nn.RNN(5, 7, num_layers=2),
    ],
    ids=["lstm", "lstm-bi-proj", "gru-bi", "rnn-tanh"],
)
def test_the_replay_matches_pytorchs_forward(make):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        module = make()
    x = torch.randn(3, 6, 5, generator=torch.Generator().manual_seed(0))
    expected, _ = module(x)
    seq = x.transpose(0, 1) if module.batch_first else x
    h0, c0 = _initial(module, None, seq.shape[1], seq)
    out, gates, top = _run(module, seq, h0, c0)
    out = out.transpose(0, 1) if module.batch_first else out
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)
    assert len(top) == seq.shape[0] and all(len(g) for g in gates)


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_default_init_is_healthy_and_its_gates_unsaturated(name):
    z = ZOO[name](seed=0)
    d = initlab.diagnose(z.model, z.example)
    assert d.healthy, d.kinds
    row = d.layers[0]
    assert row.gates is not None and max(row.gates.values()) < 0.05
    assert row.time_gain is not None and 0.1 < row.time_gain < 1.5
    assert d.to_dict()["layers"][0]["gates"] == pytest.approx(row.gates)


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_unit_gaussian_weights_are_saturated_with_gate_numbers(name):
    z = ZOO[name](seed=0)
    _scaled(z.model, 1.0)
    d = initlab.diagnose(z.model, z.example)
    assert d.primary.kind == "saturated", d.kinds
    row = d.layers[0]
    # Pre-activations of std ~sqrt(16 + |h|^2) >= 4: a third or more of the tanh gate at +-1.
    tanh_gate = "cell" if name == "lstm" else "new"
    assert row.gates[tanh_gate] >= 0.3
    assert f"{tanh_gate} {100 * row.gates[tanh_gate]:.0f}%" in d.primary.message
    assert "weight_hh" in d.primary.message
    assert d.primary.numbers[f"rnn.{tanh_gate}"] == row.gates[tanh_gate]
    result = initlab.fix(z.model, z.example)
    assert result.success and result.after.healthy
    assert {"rnn.weight_ih_l0", "rnn.weight_hh_l0", "rnn.weight_hh_l1"} <= set(result.rules)


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_tiny_weights_are_vanishing(name):
    z = ZOO[name](seed=0)
    _scaled(z.model, 1e-4)
    d = initlab.diagnose(z.model, z.example)
    assert d.primary.kind == "vanishing", d.kinds
    assert max(d.layers[0].gates.values()) == 0.0


def test_a_packed_sequence_is_diagnosed_without_gates():
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        lstm = nn.LSTM(4, 6, batch_first=True)

    class Packed(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = lstm

        def forward(self, x):
            packed = nn.utils.rnn.pack_padded_sequence(x, [5, 3], batch_first=True)
            out, _ = self.rnn(packed)
            return nn.utils.rnn.pad_packed_sequence(out, batch_first=True)[0]

    x = torch.randn(2, 5, 4, generator=torch.Generator().manual_seed(0))
    d = initlab.diagnose(Packed(), x)
    assert d.layers[0].gates is None
