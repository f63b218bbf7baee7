"""Elementwise optimizers on lists of tensors, and the mini-batch sampler.

The same math whether a tensor holds one model's weight or the stacked weights of many
members (every update is elementwise, so members never mix):

- ``gd`` / ``sgd``: ``p -= lr g``;
- ``momentum``: ``v = mu v + g; p -= lr v`` (PyTorch's convention);
- ``adam``: ``m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
  p -= lr / (1 - b1^t) * m / (sqrt(v / (1 - b2^t)) + eps)`` (PyTorch's Adam).
"""

from __future__ import annotations

import math

import torch

from initlab.bench.options import RunOptions


class ElementwiseOptimizer:
    """``step(grads)`` updates ``params`` in place with :class:`RunOptions`' optimizer;
    ``snapshot``/``restore`` save and put back its state (for replaying a window)."""

    def __init__(self, params: list[torch.Tensor], options: RunOptions) -> None:
        self.name, self.params, self.lr = options.optimizer, params, options.lr
        self.momentum, self.betas, self.eps = options.momentum, options.betas, options.eps
        self.t = 0
        self.state: list[torch.Tensor] = []
        if self.name == "momentum":
            self.state = [torch.zeros_like(p) for p in params]
        elif self.name == "adam":
            self.state = [torch.zeros_like(p) for p in params * 2]

    def step(self, grads: list[torch.Tensor]) -> None:
        params, lr = self.params, self.lr
        if self.name in ("gd", "sgd"):
            torch._foreach_add_(params, grads, alpha=-lr)
        elif self.name == "momentum":
            torch._foreach_mul_(self.state, self.momentum)
            torch._foreach_add_(self.state, grads)
            torch._foreach_add_(params, self.state, alpha=-lr)
        else:
            self.t += 1
            b1, b2 = self.betas
            n = len(params)
            m, v = self.state[:n], self.state[n:]
            torch._foreach_lerp_(m, grads, 1 - b1)
            torch._foreach_mul_(v, b2)
            torch._foreach_addcmul_(v, grads, grads, value=1 - b2)
            denom = torch._foreach_sqrt(v)
            torch._foreach_div_(denom, math.sqrt(1 - b2**self.t))
            torch._foreach_add_(denom, self.eps)
            torch._foreach_addcdiv_(params, m, denom, value=-lr / (1 - b1**self.t))

    def snapshot(self) -> tuple[int, list[torch.Tensor]]:
        return self.t, [s.clone() for s in self.state]

    def restore(self, snap: tuple[int, list[torch.Tensor]]) -> None:
        self.t = snap[0]
        for s, saved in zip(self.state, snap[1], strict=True):
            s.copy_(saved)


class Batches:
    """Mini-batch indices: reshuffle (``randperm`` from ``generator``) every epoch; the last
    batch of an epoch holds the remainder."""

    def __init__(self, n: int, batch: int, generator: torch.Generator) -> None:
        self.n, self.batch, self.generator = n, batch, generator
        self.order = torch.arange(n)
        self.position = n

    def next(self) -> torch.Tensor:
        if self.position >= self.n:
            self.order = torch.randperm(self.n, generator=self.generator)
            self.position = 0
        idx = self.order[self.position : self.position + self.batch]
        self.position += self.batch
        return idx

    def state(self) -> tuple[torch.Tensor, int, torch.Tensor]:
        return self.order.clone(), self.position, self.generator.get_state()

    def restore(self, state: tuple[torch.Tensor, int, torch.Tensor]) -> None:
        self.order, self.position = state[0].clone(), state[1]
        self.generator.set_state(state[2])


__all__ = ["Batches", "ElementwiseOptimizer"]
