"""Planted bugs for demos and tests: a model whose backward pass is wrong for one parameter."""

from __future__ import annotations

import copy
from typing import Any

import torch
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


class _Planted:
    """Forward hooks on the root module: before each forward, every slot holding the
    parameter (``(module path, attribute)``, tied copies included) holds it routed through
    :class:`_ScaleGrad` instead; after the forward (also when it raises), the slots get back
    what they held, which inside ``torch.func.functional_call`` is the swapped-in tensor."""

    def __init__(self, name: str, slots: list[tuple[str, str]], factor: float) -> None:
        self.name, self.slots, self.factor = name, slots, factor
        self.saved: list[list[tuple[nn.Module, str, Any]]] = []
        self.scaled: list[list[torch.Tensor]] = []

    def before(self, root: nn.Module, args: tuple) -> None:
        saved = []
        scaled: dict[int, torch.Tensor] = {}
        for path, attr in self.slots:
            module = root.get_submodule(path)
            value = module._parameters[attr]
            if value is None:
                continue
            saved.append((module, attr, value))
            if id(value) not in scaled:  # tied slots share one scaled tensor
                scaled[id(value)] = _ScaleGrad.apply(value, self.factor)
            module._parameters[attr] = scaled[id(value)]  # type: ignore[assignment]
        self.saved.append(saved)
        self.scaled.append(list(scaled.values()))

    def after(self, root: nn.Module, args: tuple, output: Any) -> None:
        for module, attr, value in self.saved.pop() if self.saved else []:
            module._parameters[attr] = value
        scaled = self.scaled.pop() if self.scaled else []
        nodes = {t.grad_fn for t in scaled if t.grad_fn is not None}
        if nodes and not _reaches(output, nodes):
            raise ValueError(
                f"the bug planted in {self.name!r} is not in the autograd graph of the output: "
                "the forward does not use the parameter, or reads it through a reference of "
                "its own (not the module attribute), so nothing would be planted"
            )

    def __deepcopy__(self, memo: dict) -> _Planted:
        memo[id(self)] = copy = _Planted(self.name, list(self.slots), self.factor)
        return copy


def _reaches(output: Any, nodes: set[Any]) -> bool:
    """Whether the autograd graph of the tensors in ``output`` contains one of ``nodes``."""
    stack = [t.grad_fn for t in _tensors(output) if t.grad_fn is not None]
    seen: set[int] = set()
    while stack:
        node = stack.pop()
        if node in nodes:
            return True
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.extend(n for n, _ in node.next_functions if n is not None)
    return False


def _tensors(value: Any) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, tuple | list):
        return [t for v in value for t in _tensors(v)]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _tensors(v)]
    return [t for t in vars(value).values() if isinstance(t, torch.Tensor)] if hasattr(
        value, "__dict__") else []  # fmt: skip


def plant_bug(model: nn.Module, parameter: str, factor: float = -1.0) -> nn.Module:
    """A deep copy of ``model`` whose backward pass is wrong for one parameter, for demos.

    The forward pass is the same, but every use of ``parameter`` during a forward of the
    copy goes through a custom ``autograd.Function`` whose backward multiplies its gradient
    by ``factor``: ``-1`` is a wrong sign, ``2`` a forgotten ``1/2``. The bug sits in the
    autograd graph, not in one layer's forward: hooks on the root module swap the parameter
    for the scaled-gradient version in every module that holds it (tied copies too) for the
    duration of each forward, so a parameter used outside its own module's forward (Hugging
    Face's Mamba reads ``dt_proj.weight`` in the mixer) is covered like any other.
    :func:`~initlab.gradient_check.check.gradcheck` should name it. Where nothing can be
    planted, a ``ValueError`` says so instead of leaving a correct model behind: no module
    holds the parameter, or (checked on every forward that records gradients) the output's
    autograd graph does not contain the planted node, because the forward never uses the
    parameter or reads it through a reference of its own.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    names = [n for n, _ in model.named_parameters()]
    if parameter not in names:
        raise unknown_name_error("parameter", parameter, names)
    factor = float(check_number("factor", factor))
    buggy = copy.deepcopy(model)
    target = buggy.get_parameter(parameter)
    slots = [
        (path, attr)
        for path, module in buggy.named_modules(remove_duplicate=False)
        for attr, value in module._parameters.items()
        if value is target
    ]
    if not slots:
        raise ValueError(
            f"cannot plant a bug in {parameter!r}: no module holds it as a parameter of its own "
            "(a parametrized tensor?); plant it in the tensor it is computed from"
        )
    planted = _Planted(parameter, slots, factor)
    buggy.register_forward_pre_hook(planted.before)
    buggy.register_forward_hook(planted.after, always_call=True)
    return buggy
