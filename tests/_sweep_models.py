"""Small models on digits for the sweep-engine tests (8x8 images as 64 features)."""

from __future__ import annotations

import torch
from torch import nn


class TinyTransformer(nn.Module):
    """Digits as 8 tokens of 8 features: embed, one encoder block, mean pool, head."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.embed = nn.Linear(8, width)
        self.block = nn.TransformerEncoderLayer(width, 2, 2 * width, dropout=0.0,
                                                batch_first=True)  # fmt: skip
        self.head = nn.Linear(width, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.block(self.embed(x.reshape(x.shape[0], 8, 8)))
        return self.head(h.mean(1))
