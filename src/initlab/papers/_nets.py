"""Small networks the reproductions share: a residual MLP with optional norms and gates."""

from __future__ import annotations

import torch
from torch import nn


class ResidualBlock(nn.Module):
    """``x + alpha * branch(x)``; ``branch = fc2(relu(fc1(x)))`` without norm, or the
    pre-activation ``fc2(relu(bn2(fc1(relu(bn1(x))))))`` with ``norm=True``. ``alpha`` is a
    learnable scalar (SkipInit, initialised to 0) when ``gate=True``, else the constant 1."""

    def __init__(self, width: int, norm: bool = False, gate: bool = False):
        super().__init__()
        self.bn1 = nn.BatchNorm1d(width) if norm else None
        self.fc1 = nn.Linear(width, width)
        self.bn2 = nn.BatchNorm1d(width) if norm else None
        self.fc2 = nn.Linear(width, width)
        self.alpha = nn.Parameter(torch.zeros(())) if gate else None

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.bn1(x)) if self.bn1 is not None else x
        h = self.fc1(h)
        h = torch.relu(self.bn2(h) if self.bn2 is not None else h)
        return self.fc2(h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.branch(x)
        return x + (self.alpha * out if self.alpha is not None else out)


class ResidualMLP(nn.Module):
    """``head(blocks(stem(x)))`` with ``depth`` residual blocks of ``width`` units; with
    ``norm=True`` the stream passes a last ``relu(bn(.))`` before the head, as in the
    pre-activation ResNet (its stream's variance grows with depth, the head's input should not)."""

    output = "softmax"

    def __init__(
        self, n_in: int, width: int, depth: int, n_out: int, norm: bool = False, gate: bool = False
    ):
        super().__init__()
        self.stem = nn.Linear(n_in, width)
        self.blocks = nn.ModuleList(ResidualBlock(width, norm, gate) for _ in range(depth))
        self.final_norm = nn.BatchNorm1d(width) if norm else None
        self.head = nn.Linear(width, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for block in self.blocks:
            x = block(x)
        if self.final_norm is not None:
            x = torch.relu(self.final_norm(x))
        return self.head(x)


def build(
    n_in: int,
    width: int,
    depth: int,
    n_out: int,
    *,
    norm: bool = False,
    gate: bool = False,
    seed: int = 0,
) -> ResidualMLP:
    """A :class:`ResidualMLP` whose default init draws from ``seed`` (global RNG untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return ResidualMLP(n_in, width, depth, n_out, norm, gate).double()
