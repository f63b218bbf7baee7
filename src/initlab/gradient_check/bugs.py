"""Planted bugs for demos and tests: a layer whose backward pass is wrong for one parameter."""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from initlab._core.validation import check_number, unknown_name_error


class _ScaleGrad(torch.autograd.Function):
    """Identity forward; backward multiplies the incoming gradient by ``factor`` (a bug).

    Written in the ``setup_context`` style with a generated vmap rule, so a planted model
    still batches its loss evaluations with ``torch.func.vmap``."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x: torch.Tensor, factor: float) -> torch.Tensor:
        return x.view_as(x)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
        ctx.factor = inputs[1]

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad * ctx.factor, None


def plant_bug(model: nn.Module, parameter: str, factor: float = -1.0) -> nn.Module:
    """A deep copy of ``model`` whose backward pass is wrong for one parameter, for demos.

    The layer owning ``parameter`` (any module: ``"linear2.bias"``, a Hugging Face ``Conv1D``
    weight, a norm's scale, a model's ``class_token``) computes the same forward pass, but
    routes that parameter through a custom ``autograd.Function`` whose backward multiplies
    its gradient by ``factor``:
    ``-1`` is a wrong sign, ``2`` a forgotten ``1/2``. :func:`gradcheck` should name it.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    names = [n for n, _ in model.named_parameters()]
    if parameter not in names:
        raise unknown_name_error("parameter", parameter, names)
    factor = float(check_number("factor", factor))
    layer_name, _, attr = parameter.rpartition(".")
    buggy = copy.deepcopy(model)
    layer = buggy.get_submodule(layer_name)
    base = type(layer)
    # Conv1d/2d/3d, not _ConvNd: transposed convolutions have no _conv_forward to call
    if isinstance(layer, nn.Linear | nn.Conv1d | nn.Conv2d | nn.Conv3d) and attr in (
        "weight",
        "bias",
    ):

        def forward(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
            weight, bias = self.weight, self.bias
            if attr == "weight":
                weight = _ScaleGrad.apply(weight, factor)
            else:
                bias = _ScaleGrad.apply(bias, factor)
            if isinstance(self, nn.Linear):
                return F.linear(x, weight, bias)
            return self._conv_forward(x, weight, bias)  # type: ignore[operator]

    else:
        # Any other layer (Hugging Face's Conv1D, a norm, an embedding, a bare Parameter of a
        # custom module): its own forward runs with the parameter swapped for the scaled-
        # gradient version, the way torch.func.functional_call swaps parameters.
        from torch.nn.utils.stateless import _reparametrize_module

        def forward(self: nn.Module, *args: Any, **kwargs: Any) -> Any:
            scaled = _ScaleGrad.apply(getattr(self, attr), factor)
            with _reparametrize_module(self, {attr: scaled}):
                return base.forward(self, *args, **kwargs)

    layer.__class__ = type(f"Buggy{base.__name__}", (base,), {"forward": forward})
    return buggy
