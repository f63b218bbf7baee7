"""The doctor's mean-field reading of MLP stacks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from initlab._core.rng import seeded_global_rng
from initlab.doctor.criticality import criticality_section, mlp_criticality


def _tanh_stack(depth: int, sigma_w2: float, sigma_b2: float, width: int = 64) -> nn.Module:
    with seeded_global_rng(0):
        layers = [nn.Linear(width, width) for _ in range(depth)] + [nn.Linear(width, 1)]
    g = torch.Generator().manual_seed(0)
    modules = []
    for layer in layers[:-1]:
        # orthogonal * gain: fan_in * mean(W^2) = sigma_w^2 exactly; b = +-sqrt(sigma_b^2)
        nn.init.orthogonal_(layer.weight, gain=sigma_w2**0.5, generator=g)
        signs = torch.randint(0, 2, layer.bias.shape, generator=g) * 2 - 1
        with torch.no_grad():
            layer.bias.copy_(signs * sigma_b2**0.5)
        modules += [layer, nn.Tanh()]
    return nn.Sequential(*modules, layers[-1])


def test_reads_the_research_table_point():
    report = mlp_criticality(_tanh_stack(10, 1.0, 0.05))
    assert report.activation == "tanh" and report.depth == 10
    assert report.sigma_w2 == pytest.approx(1.0, rel=1e-5)
    assert report.sigma_b2 == pytest.approx(0.05, rel=1e-5)
    assert report.xi_c == pytest.approx(3.6, rel=0.02)
    assert report.max_depth == pytest.approx(21.8, rel=0.02)
    assert report.trainable  # 10 <= 21.8
    assert report.recommended_sigma_w2 == pytest.approx(1.761, abs=1e-3)
    too_deep = mlp_criticality(_tanh_stack(40, 1.0, 0.05))
    assert not too_deep.trainable and "BEYOND" in too_deep.verdict


def test_he_relu_is_critical_and_pytorch_default_tanh_is_not():
    with seeded_global_rng(0):
        relu = nn.Sequential(*[m for _ in range(20) for m in (nn.Linear(64, 64), nn.ReLU())],
                             nn.Linear(64, 1))  # fmt: skip
        tanh = nn.Sequential(*[m for _ in range(20) for m in (nn.Linear(64, 64), nn.Tanh())],
                             nn.Linear(64, 1))  # fmt: skip
    g = torch.Generator().manual_seed(0)
    for m in relu:
        if isinstance(m, nn.Linear):
            nn.init.orthogonal_(m.weight, gain=2**0.5, generator=g)
            nn.init.zeros_(m.bias)
    report = mlp_criticality(relu)
    assert report.phase == "critical" and report.recommended_sigma_w2 == pytest.approx(2.0)
    # PyTorch's default Linear init: U(+-1/sqrt(fan_in)), sigma_w^2 = 1/3: deeply ordered
    default = mlp_criticality(tanh)
    assert default.sigma_w2 == pytest.approx(1 / 3, rel=0.1)
    assert default.phase == "ordered" and not default.trainable


def test_not_an_mlp():
    with seeded_global_rng(0):
        conv = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4, 2), nn.Linear(2, 2))
    assert criticality_section(conv) is None
    with pytest.raises(ValueError, match=r"stack of >= 2 nn\.Linear"):
        mlp_criticality(conv)
