"""Coordinate check: standard parametrization with Adam is flagged (readout and hidden layer
grow with width), hand-made muP is width-independent (research note 1.3's setup, smaller)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from initlab.doctor.coord_check import _slope, coord_check

WIDTHS = [64, 128, 256, 512]


def _data():
    g = torch.Generator().manual_seed(0)
    return torch.randn(32, 16, generator=g), torch.randint(0, 10, (32,), generator=g)


def _sp(width: int) -> nn.Module:
    model = nn.Sequential(nn.Linear(16, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(),
                          nn.Linear(width, 10))  # fmt: skip
    g = torch.Generator().manual_seed(width)
    for layer in model:
        if isinstance(layer, nn.Linear):
            nn.init.normal_(layer.weight, std=layer.in_features**-0.5, generator=g)
            nn.init.zeros_(layer.bias)
    return model


def _mup(width: int) -> nn.Module:
    model = _sp(width)
    nn.init.normal_(model[4].weight, std=1 / width, generator=torch.Generator().manual_seed(1))
    return model


def _mup_adam(model: nn.Module, width: int) -> torch.optim.Optimizer:
    hidden = [*model[2].parameters(), *model[4].parameters()]
    return torch.optim.Adam([{"params": model[0].parameters(), "lr": 1e-2},
                             {"params": hidden, "lr": 1e-2 * 64 / width}])  # fmt: skip


def test_standard_parametrization_is_flagged_with_advice():
    x, y = _data()
    result = coord_check(_sp, WIDTHS, x, target=y, steps=3)
    rows = {r.module: r for r in result.rows}
    assert rows["4"].readout
    assert rows["4"].verdict == "grows" and rows["4"].slope > 0.25
    assert rows["2"].verdict == "grows"
    assert rows["0"].verdict == "stable"
    assert result.verdict.startswith("not width-independent")
    assert any("readout" in a and "1/width" in a for a in result.advice)
    assert any("lr ~ 1/fan_in" in a for a in result.advice)


def test_mup_is_width_independent():
    x, y = _data()
    result = coord_check(_mup, WIDTHS, x, target=y, steps=3, optimizer=_mup_adam)
    assert all(r.verdict == "stable" for r in result.rows), str(result)
    assert result.verdict.startswith("width-independent")
    # the muP readout shrinks ~ 1/sqrt(width) at init (expected, transient)
    readout = next(r for r in result.rows if r.readout)
    assert readout.slope_at_init == pytest.approx(-0.5, abs=0.15)


def test_slope_fit():
    assert _slope([1, 2, 4, 8], [3 * w**0.5 for w in (1, 2, 4, 8)]) == pytest.approx(0.5)
    assert math.isnan(_slope([1, 2], [0.0, 0.0]))


def test_bad_input():
    x, _ = _data()
    with pytest.raises(ValueError, match="two different widths"):
        coord_check(_sp, [64, 64], x)
    with pytest.raises(ValueError, match="optimizer"):
        coord_check(_sp, [8, 16], x, optimizer="adma")
