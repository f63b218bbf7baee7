"""Jacobian spectrum by Lanczos on J^T J against exact SVDs."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import zoo
from initlab._core.rng import seeded_global_rng
from initlab.doctor.jacobian import jacobian_spectrum


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_deep_linear_orthogonal_network_is_exactly_isometric():
    g = _gen()
    with seeded_global_rng(0):
        layers = [nn.Linear(32, 32, bias=False) for _ in range(12)]
    for layer in layers:
        nn.init.orthogonal_(layer.weight, generator=g)
    spec = jacobian_spectrum(nn.Sequential(*layers), torch.randn(2, 32, generator=g))
    for value in (spec.s_max, spec.s_median, spec.s_min):
        assert value == pytest.approx(1.0, abs=1e-5)
    assert spec.mean_s2 == pytest.approx(1.0, abs=1e-5)
    assert spec.exact  # J^T J = I: Lanczos stops after one step
    assert spec.verdict.startswith("isometric")


def _tanh_net(orthogonal: bool, depth=12, width=48) -> nn.Module:
    g = _gen(1)
    layers = []
    for _ in range(depth):
        with seeded_global_rng(0):
            layer = nn.Linear(width, width)
        if orthogonal:
            nn.init.orthogonal_(layer.weight, gain=1.2**0.5, generator=g)
        else:
            nn.init.normal_(layer.weight, std=(1.2 / width) ** 0.5, generator=g)
        nn.init.normal_(layer.bias, std=0.1, generator=g)
        layers += [layer, nn.Tanh()]
    return nn.Sequential(*layers).double()


@pytest.mark.parametrize("orthogonal", [False, True])
def test_matches_exact_svd(orthogonal):
    net = _tanh_net(orthogonal)
    x = torch.randn(1, 48, generator=_gen(2), dtype=torch.float64)
    exact = torch.linalg.svdvals(torch.autograd.functional.jacobian(net, x).reshape(48, 48))
    full = jacobian_spectrum(net, x, steps=48, probes=1)
    assert full.s_max == pytest.approx(float(exact.max()), rel=1e-8)
    # s = sqrt(theta): an eigenvalue error of 1e-10 is 1e-5 on a singular value near 0
    assert full.s_min == pytest.approx(float(exact.min()), abs=1e-4)
    ordered = exact.sort().values
    if orthogonal:  # well conditioned: Lanczos runs all 48 steps and the spectrum is exact
        assert full.exact
        assert full.s_median == pytest.approx(float(ordered[24]), rel=1e-6)
    else:  # singular values down to 1e-16 end Lanczos early: the median is an SLQ estimate
        slq = jacobian_spectrum(net, x, steps=48, probes=8)
        assert float(ordered[12]) <= slq.s_median <= float(ordered[36])
    # a few steps already give the largest singular value
    short = jacobian_spectrum(net, x, steps=15, probes=2)
    assert short.s_max == pytest.approx(float(exact.max()), rel=1e-3)


def test_gaussian_spread_exceeds_orthogonal():
    x = torch.randn(1, 48, generator=_gen(2), dtype=torch.float64)
    gauss = jacobian_spectrum(_tanh_net(False), x, steps=48, probes=1)
    orth = jacobian_spectrum(_tanh_net(True), x, steps=48, probes=1)
    assert gauss.spread > 3 * orth.spread


def test_zoo_cnn_and_dict_inputs_run():
    z = zoo.ZOO["resnet_basic"](seed=0, batch=2, size=16)
    z.model.eval()
    spec = jacobian_spectrum(z.model, z.example, steps=8, probes=1)
    assert spec.input_dim == 2 * 3 * 16 * 16 and spec.output_dim == 2 * 10
    assert spec.s_max >= spec.s_median > 0

    class Kw(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(4, 4, bias=False)

        def forward(self, x, scale):
            return self.a(x) * scale

    with seeded_global_rng(0):
        net = Kw()
    nn.init.orthogonal_(net.a.weight, generator=_gen())
    example = {"x": torch.randn(3, 4, generator=_gen()), "scale": torch.tensor(2.0)}
    # differentiates by every float tensor: the scale contributes a rank-one part
    spec = jacobian_spectrum(net, example, steps=13, probes=1)
    assert spec.input_dim == 13


def test_bad_input():
    with seeded_global_rng(0):
        embedding, linear = nn.Embedding(4, 4), nn.Linear(2, 2)
    with pytest.raises(TypeError, match="floating-point"):
        jacobian_spectrum(embedding, torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="steps"):
        jacobian_spectrum(linear, torch.ones(1, 2), steps=0)


def test_attention_uses_a_twice_differentiable_kernel():
    """Fused SDPA kernels have no double backward (the JVP needs one): the math kernel runs."""
    z = zoo.ZOO["transformer_encoder"](seed=0, batch=1, tokens=4)
    z.model.eval()
    spec = jacobian_spectrum(z.model, z.example, steps=6, probes=1)
    assert spec.input_dim == 4 * 64 and spec.s_max > 0
