"""Signal propagation plots: residual additions found by data flow, statistics against direct
computation, verdicts on an exploding unnormalized ResNet and after LSUV."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import zoo
from initlab._core.rng import seeded_global_rng
from initlab.doctor.spp import spp
from initlab.initializers.lsuv import lsuv


class Block(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(width, width), nn.Linear(width, width)

    def forward(self, x):
        return x + self.fc2(torch.relu(self.fc1(x)))


def _resmlp(depth=12, width=64) -> nn.Module:
    with seeded_global_rng(0):
        model = nn.Sequential(*[Block(width) for _ in range(depth)])
    g = torch.Generator().manual_seed(0)
    for block in model:
        for fc in (block.fc1, block.fc2):
            nn.init.normal_(fc.weight, std=(2 / width) ** 0.5, generator=g)  # He
            nn.init.zeros_(fc.bias)
    return model


def test_unnormalized_resnet_explodes_and_stats_are_exact():
    model = _resmlp()
    x = torch.randn(256, 64, generator=torch.Generator().manual_seed(1))
    result = spp(model, x)
    assert len(result.blocks) == 12
    assert [b.layer for b in result.blocks] == [f"{i}.fc2" for i in range(12)]
    # the statistics, recomputed directly
    h = x
    for block, stats in zip(model, result.blocks, strict=True):
        with torch.no_grad():
            branch = block.fc2(torch.relu(block.fc1(h)))
            out = h + branch
        assert stats.avg_channel_var == pytest.approx(
            out.double().var(0, correction=0).mean().item(), rel=1e-6
        )
        assert stats.avg_sq_channel_mean == pytest.approx(
            (out.double().mean(0) ** 2).mean().item(), rel=1e-6
        )
        assert stats.residual_var == pytest.approx(
            branch.double().var(0, correction=0).mean().item(), rel=1e-6
        )
        h = out
    assert result.verdict.startswith("unhealthy")
    assert result.blocks[-1].avg_channel_var / result.blocks[0].avg_channel_var > 100


def test_lsuv_branches_make_it_healthy():
    model = _resmlp()
    x = torch.randn(256, 64, generator=torch.Generator().manual_seed(1))
    lsuv(model, x, seed=0)
    result = spp(model, x)
    growth = result.blocks[-1].avg_channel_var / result.blocks[0].avg_channel_var
    assert growth < 3  # (1 + 1/L)^L < e
    assert not result.verdict.startswith("unhealthy")


@pytest.mark.parametrize(("name", "blocks"), [("resnet_basic", 8), ("vit", 4)])
def test_zoo(name, blocks):
    z = zoo.ZOO[name](seed=0)
    state = {k: v.clone() for k, v in z.model.state_dict().items()}
    result = spp(z.model, input_shape=tuple(z.example.shape[1:]), batch=8)
    assert len(result.blocks) == blocks
    for k, v in z.model.state_dict().items():  # running statistics restored
        assert torch.equal(v, state[k]), k


def test_needs_an_input():
    with pytest.raises(ValueError, match="input_shape"):
        spp(_resmlp(2))
