"""The probe's cheaper statistics (issue 11, overhead): float32 sums of squares with an exact
float64 pass when a signal leaves their range, a weight layer's input rms taken from the call
that produced its input (in-place ops included), and one forward pass for a healthy model."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import initlab


def _seeded(make):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return make()


def test_tiny_outputs_get_exact_statistics():
    # Outputs ~1e-25: their float32 squares (1e-50) underflow; the doctor measures again in
    # float64 instead of reporting std 0.
    model = _seeded(lambda: nn.Sequential(nn.Linear(8, 8, bias=False)))
    with torch.no_grad():
        model[0].weight.copy_(torch.eye(8) * 1e-25)
    x = torch.randn(64, 8, generator=torch.Generator().manual_seed(0))
    row = initlab.diagnose(model, x).layers[0]
    with torch.no_grad():
        expected = model(x).double()
    assert row.std == pytest.approx(float(expected.std(correction=0)), rel=1e-9, abs=0)
    assert row.mean == pytest.approx(float(expected.mean()), rel=1e-6, abs=0)
    assert row.grad_output is not None and row.grad_output > 0


def test_float32_statistics_match_float64_ones():
    model = _seeded(lambda: nn.Sequential(nn.Linear(32, 64), nn.Tanh(), nn.Linear(64, 4)))
    x = 3.0 + torch.randn(256, 32, generator=torch.Generator().manual_seed(0))
    d = initlab.diagnose(model, x)
    with torch.no_grad():
        outs = [model[0](x)]
        outs += [model[1](outs[0]), model[2](model[1](outs[0]))]
    for row, out in zip(d.layers, outs, strict=True):
        wide = out.double()
        # Sample-size bound: float32 cascade sums of n terms, relative error ~1e-7 * log2(n).
        assert row.mean == pytest.approx(float(wide.mean()), rel=1e-5, abs=1e-7)
        assert row.std == pytest.approx(float(wide.std(correction=0)), rel=1e-5)


@pytest.mark.parametrize("stacked", [False, True], ids=["per-call", "stacked"])
def test_input_rms_comes_from_the_producer_even_after_an_inplace_op(stacked, monkeypatch):
    import initlab.doctor.probe as probe

    monkeypatch.setattr(probe, "_STACK_ON_CPU", stacked)  # True: the accelerators' path
    model = _seeded(
        lambda: nn.Sequential(nn.Linear(16, 32), nn.ReLU(inplace=True), nn.Linear(32, 8))
    )
    x = torch.randn(128, 16, generator=torch.Generator().manual_seed(0))
    d = initlab.diagnose(model, x)
    with torch.no_grad():
        hidden = torch.relu(model[0](x)).double()
    second = d.weighted[1]
    assert second.input_rms == pytest.approx(math.sqrt(float(hidden.square().mean())), rel=1e-6)
    assert d.weighted[0].input_rms == pytest.approx(math.sqrt(float(x.double().square().mean())))


def test_a_healthy_model_is_run_once():
    model = _seeded(lambda: initlab.mlp([32] * 6 + [1]))
    initlab.init_model(model, "he_normal", seed=0)
    calls = []
    handle = model.register_forward_pre_hook(lambda *_: calls.append(1))
    try:
        d = initlab.diagnose(model, torch.randn(64, 32, generator=torch.Generator().manual_seed(0)))
    finally:
        handle.remove()
    assert d.healthy and len(calls) == 1


@pytest.mark.parametrize("n", [96, 4096])
def test_std_of_a_mean_dominated_output_is_accurate(n):
    # mean 1, std 0.01: std^2 = rms^2 - mean^2 multiplies the sums' relative error by 1e4. The
    # float32 total of the sum (6e-8) put the std up to 1e-3 off, and the per-call and stacked
    # paths disagreed beyond 1e-5 on a sigmoid near 0.5, depending on the data. (Above 4096
    # elements the float32 row totals still limit such a std to about 1e-3.)
    model = _seeded(lambda: nn.Sequential(nn.Linear(1, 1)))
    with torch.no_grad():
        model[0].weight.fill_(0.01)
        model[0].bias.fill_(1.0)
    x = torch.randn(n, 1, generator=torch.Generator().manual_seed(0))
    row = initlab.diagnose(model, x).layers[0]
    with torch.no_grad():
        expected = model(x).double()
    assert row.mean == pytest.approx(float(expected.mean()), rel=1e-7)
    assert row.std == pytest.approx(float(expected.std(correction=0)), rel=1e-5)


# Sizes around the helpers' block boundaries: below and above one row or block, a partial tail.
_SIZES = [1, 4095, 4096, 4097, 65535, 65536, 2040 * 40 + 7, 1_000_003]


@pytest.mark.parametrize("n", _SIZES)
def test_sum_of_squares_without_a_temporary_is_as_accurate_as_a_cascade_sum(n):
    from initlab.doctor.probe import _sumsq

    generator = torch.Generator().manual_seed(n)
    for x in (torch.randn(n, generator=generator), 1 + 1e-3 * torch.randn(n, generator=generator)):
        exact = float(x.double().square().sum())
        # float32 norms of 4096-element rows: relative error ~1e-8, bounded here by 1e-6
        assert float(_sumsq(x)) == pytest.approx(exact, rel=1e-6)
        assert float(_sumsq(x[::2])) == pytest.approx(float(x[::2].double().square().sum()))


@pytest.mark.parametrize("n", _SIZES)
def test_nonzero_count_by_words_is_exact(n):
    from initlab.doctor.probe import _nonzero

    x = torch.randn(n, generator=torch.Generator().manual_seed(n)).relu()
    assert int(_nonzero(x)) == int((x != 0).sum())
    assert int(_nonzero(torch.ones(n))) == n  # every byte of a word's sum at its limit
    assert int(_nonzero(x[1::3])) == int((x[1::3] != 0).sum())  # strided, odd offset


# ---------------------------------------------------------------------- data flow (issue 25)
class _FreedOutput(nn.Module):
    """fc1's output dies inside the forward (a product with a scalar saves nothing), and the
    next tensor of its size may be allocated where it lived."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(width, width)
        self.fc2 = nn.Linear(width, width)

    def forward(self, x):
        h = self.fc1(x) * 2.0
        return self.fc2(h + 1.0)


def test_a_tensor_allocated_where_a_chain_output_lived_is_not_linked_to_it():
    # Data flow by memory address took fc2's input (two functional ops after fc1) for fc1's
    # output whenever the allocator reused fc1's memory (a third to all of the passes on
    # these sizes), judging fc2 within fc1's chain.
    linked = []
    for width in (64, 256, 512, 1024):
        model = _seeded(lambda width=width: _FreedOutput(width))
        for batch in (16, 64):
            x = torch.randn(batch, width, generator=torch.Generator().manual_seed(batch))
            for _ in range(2):
                fc1, fc2 = initlab.diagnose(model, x).weighted
                linked.append(fc1.chain == fc2.chain)
    assert not any(linked), linked


class _InPlaceResidual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2, self.fc3 = nn.Linear(32, 32), nn.Linear(32, 32), nn.Linear(32, 4)
        self.act = nn.ReLU()

    def forward(self, x):
        y = self.fc2(self.act(self.fc1(x)))
        y += x  # the residual merge, in place on fc2's output
        return self.fc3(self.act(y))


def test_an_in_place_residual_add_ends_the_chain():
    # Same memory, new data: the stream after the merge is not fc2's output.
    model = _seeded(_InPlaceResidual)
    d = initlab.diagnose(model, torch.randn(64, 32, generator=torch.Generator().manual_seed(0)))
    fc1, fc2, fc3 = d.weighted
    assert fc1.chain == fc2.chain != fc3.chain
    assert fc3.input_rms == pytest.approx(d.layers[3].rms, rel=1e-6)  # the act after the add


class _IdentityAfterFunctional(nn.Module):
    """timm's BatchNormAct2d: a functional batch norm, then nn.Identity modules (drop, act)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(16, 16), nn.Linear(16, 16)
        self.drop = nn.Identity()

    def forward(self, x):
        return self.fc2(self.drop(torch.nn.functional.layer_norm(self.fc1(x), (16,))))


def test_an_identity_module_is_not_taken_for_an_in_place_op():
    # Identity returns its input, the functional norm's output; looking one node further back
    # (as for an in-place ReLU) linked the norm's input, fc1, to fc2.
    model = _seeded(_IdentityAfterFunctional)
    d = initlab.diagnose(model, torch.randn(8, 16, generator=torch.Generator().manual_seed(0)))
    fc1, fc2 = d.weighted
    assert fc1.chain != fc2.chain
    assert {r.name: r for r in d.layers}["drop"].chain is None


class _Fork(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem, self.branch = nn.Linear(4, 4), nn.Linear(4, 4)
        self.flat = nn.Flatten()

    def forward(self, x):
        s = self.stem(x)
        return s + self.branch(self.flat(s).view_as(s))


def test_forks_are_read_from_the_autograd_graph_through_reshapes():
    model = _seeded(_Fork)
    d = initlab.diagnose(model, torch.randn(8, 4, 4, generator=torch.Generator().manual_seed(0)))
    rows = {r.name: r for r in d.layers}
    assert rows["stem"].forks  # read by the skip path and (through a reshape) the branch
    assert not rows["branch"].forks and not rows["flat"].forks
    assert rows["stem"].chain == rows["branch"].chain  # forward: the branch reads the stem


class _Gate(nn.Module):
    """An activation class the doctor has no name for (timm's own Sigmoid is one)."""

    def forward(self, x):
        return x.sigmoid()


class _Rectifier(nn.Module):
    def forward(self, x):
        return x.clamp(min=0)


def test_activations_of_other_classes_are_known_by_what_they_compute():
    # timm's squeeze-excite gates are its own Sigmoid class: saturation went unmeasured and
    # their chains were not seen to end in a gate (RegNetY's reduce convs, row norm 4.7).
    model = _seeded(lambda: nn.Sequential(nn.Linear(8, 8), _Rectifier(), nn.Linear(8, 8), _Gate()))
    with torch.no_grad():
        model[0].bias.fill_(-1e3)  # every unit of the rectifier dead
    d = initlab.diagnose(model, torch.randn(32, 8, generator=torch.Generator().manual_seed(0)))
    rows = {r.name: r for r in d.layers}
    assert rows["1"].dead == rows["1"].units == 8 and "dead" in d.kinds
    assert rows["3"].saturated is not None
    from timm.layers.activations import Sigmoid

    from initlab.doctor.modules import _kind

    assert (
        _kind(Sigmoid()) == "sigmoid" and _kind(nn.GELU()) is None and _kind(nn.Softmax(-1)) is None
    )
