"""Data flow through a forward pass, as far as initialization needs it: residual merges.

:class:`Flow` is a ``TorchFunctionMode``: while it is active every tensor produced by a torch
function is tagged with ``(last weight layer it came through, number of weight layers on its
path)``; the caller tags the inputs ``(None, 0)`` and each weight layer's output from a
forward hook. An addition of two tagged tensors of the same shape whose depths differ is a
residual merge ``skip + branch`` (the deeper operand is the branch): ``on_merge(layer,
branch, skip)`` is called before the addition and may return a factor to scale the branch by.
This finds torchvision's in-place ``out += identity`` after a downsample, transformers'
``x + dropout(attn(norm(x)))`` and ``x + mlp(x)`` alike, without tracing the model's code.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

_ADDS = {torch.add, torch.Tensor.add, torch.Tensor.add_, torch.Tensor.__add__,
         torch.Tensor.__iadd__, torch.Tensor.__radd__}  # fmt: skip


class Flow(TorchFunctionMode):
    """Tags each tensor with (last weight layer it came through, weight layers on the path)
    and finds residual merges: additions of two tagged tensors of equal shape whose depths
    differ (the deeper operand is the branch)."""

    def __init__(self, on_merge: Callable[..., Any] | None = None) -> None:
        super().__init__()
        self.tags: dict[int, tuple[int | None, int]] = {}
        self.alive: list[torch.Tensor] = []
        self.on_merge = on_merge
        self.quiet = False

    def tag(self, tensor: torch.Tensor, tag: tuple[int | None, int]) -> None:
        self.tags[id(tensor)] = tag
        self.alive.append(tensor)

    def get(self, tensor: Any) -> tuple[int | None, int] | None:
        return self.tags.get(id(tensor)) if isinstance(tensor, torch.Tensor) else None

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[override]
        kwargs = kwargs or {}
        if self.quiet:
            return func(*args, **kwargs)
        if func in _ADDS and len(args) >= 2 and self.on_merge is not None:
            a, b = args[0], args[1]
            ta, tb = self.get(a), self.get(b)
            if (ta is not None and tb is not None and ta[1] != tb[1]
                    and isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)
                    and a.shape == b.shape):  # fmt: skip
                branch_first = ta[1] > tb[1]
                branch, skip = (a, b) if branch_first else (b, a)
                tbranch = ta if branch_first else tb
                self.quiet = True
                try:
                    factor = self.on_merge(tbranch[0], branch, skip)
                finally:
                    self.quiet = False
                if factor is not None:
                    if branch is a and func in (torch.Tensor.add_, torch.Tensor.__iadd__):
                        with torch.no_grad():
                            a.mul_(factor)
                    elif branch_first:
                        args = (a * factor, *args[1:])
                    else:
                        args = (a, b * factor, *args[2:])
        out = func(*args, **kwargs)
        inputs = [self.get(t) for t in tree_flatten((args, kwargs))[0]]
        tags = [t for t in inputs if t is not None]
        if tags:
            best = max(tags, key=lambda t: t[1])
            for t in tree_flatten(out)[0]:
                if isinstance(t, torch.Tensor):
                    self.tag(t, best)
        return out
