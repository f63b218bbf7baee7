"""What the doctor's probe knows about modules, found once per model.

- :func:`_weight_of`: the weight whose rows are a module's units (``module.weight`` if >= 2-D,
  else the first >= 2-D parameter it owns, named ``*weight*`` for containers);
  :func:`_unit_rows` views it as ``(units, -1)`` (columns of Hugging Face's ``(in, out)``
  ``Conv1D``);
- :func:`_kind`: ``tanh``, ``sigmoid`` (saturation is measured) or ``relu`` (dead units), by
  type or by what the module computes;
- :func:`_is_norm`: normalization layers by type or name; :func:`_is_conv`;
- :func:`_identity`: when two tensors hold the same values (memory, size, dtype, version): the
  probe's data flow for tensors outside autograd;
- :func:`_plan`: the modules to hook with their :class:`_Role`, cached per model while its
  modules and parameters are the same objects.
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from initlab.doctor.recurrent import _mode

_RELU_FAMILY = (nn.ReLU, nn.ReLU6, nn.RReLU, nn.LeakyReLU, nn.PReLU)


def _first_tensor(value: Any) -> torch.Tensor | None:
    """The first tensor in a module's output (itself, or the first in a tuple/list/dict)."""
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, list | tuple):
        for item in value:
            found = _first_tensor(item)
            if found is not None:
                return found
    if isinstance(value, dict):
        for item in value.values():
            found = _first_tensor(item)
            if found is not None:
                return found
    return None


def _weight_of(module: nn.Module) -> torch.Tensor | None:
    """The weight whose rows are the module's units: ``module.weight`` if >= 2-D, else the
    first >= 2-D parameter the module owns (for a module with children, the first one whose
    name says weight)."""
    weight = getattr(module, "weight", None)
    if isinstance(weight, torch.Tensor) and weight.dim() >= 2:
        return weight
    leaf = next(module.children(), None) is None
    for name, param in module.named_parameters(recurse=False):
        # A container's own >= 2-D parameter is a layer's weight only when named so
        # (MultiheadAttention's in_proj_weight), not a ViT's class_token or pos_embedding.
        if param.dim() >= 2 and (leaf or "weight" in name):
            return param
    return None


def _is_norm(module: nn.Module) -> bool:
    """Normalization layers, known by type or by name (``LlamaRMSNorm``, ``T5LayerNorm``,
    timm's ``LayerNorm2d`` and ``BatchNormAct2d``): their output scale does not depend on
    the scale of their input, so they end a chain of weight layers."""
    norms = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm)
    return isinstance(module, norms) or "norm" in type(module).__name__.lower()


def _is_conv(module: nn.Module) -> bool:
    return isinstance(module, nn.modules.conv._ConvNd)


def _identity(t: torch.Tensor) -> tuple[Any, ...]:
    """What makes two tensors hold the same values: the same memory, size, dtype and version
    (an in-place op bumps the version)."""
    try:
        pointer = t.data_ptr()
    except (RuntimeError, NotImplementedError):  # tensors without storage (functorch, fake)
        pointer = id(t)
    return (pointer, t.numel(), t.dtype, t._version)


def _first_input(args: Any, kwargs: Any) -> torch.Tensor | None:
    found = _first_tensor(args)
    if found is None and kwargs:
        found = _first_tensor(kwargs)
    return found


def _unit_rows(module: nn.Module, weight: torch.Tensor) -> torch.Tensor:
    """The weight as ``(units, -1)``: rows of PyTorch's ``(out, in, *kernel)`` layout; columns
    of Hugging Face's ``Conv1D``, which stores ``(in, out)``."""
    if type(module).__name__ == "Conv1D" and weight.dim() == 2:
        return weight.T
    return weight.reshape(weight.shape[0], math.prod(weight.shape[1:]))


def _kind(module: nn.Module) -> str | None:
    """``tanh``, ``sigmoid`` or ``relu`` by type, else by what the module computes
    (:func:`_measured_kind`)."""
    if isinstance(module, nn.Tanh):
        return "tanh"
    if isinstance(module, nn.Sigmoid | nn.Hardsigmoid):
        return "sigmoid"
    if isinstance(module, _RELU_FAMILY):
        return "relu"
    return _measured_kind(module)


def _measured_kind(module: nn.Module) -> str | None:
    """``tanh``, ``sigmoid`` (hard sigmoid too) or ``relu`` for a leaf module of another class
    without parameters or buffers that computes one of them on a fixed grid of 49 points in
    [-6, 6] (timm's own ``Sigmoid``, a squeeze-excite gate class, a user's activation), else
    None. The global RNG is forked around the call."""
    if next(module.children(), None) is not None or isinstance(module, nn.Identity):
        return None
    state = (*module.parameters(recurse=False), *module.buffers(recurse=False))
    if state:
        return None
    grid = torch.linspace(-6.0, 6.0, 49).reshape(7, 7)
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            out = module(grid.clone())  # a copy: the module may work in place
    except Exception:  # not callable on a plain tensor: not an elementwise activation
        return None
    if not isinstance(out, torch.Tensor) or out.shape != grid.shape:
        return None
    references = (
        ("sigmoid", torch.sigmoid),
        ("sigmoid", torch.nn.functional.hardsigmoid),
        ("tanh", torch.tanh),
        ("relu", torch.relu),
    )
    for name, fn in references:
        if torch.allclose(out.float(), fn(grid), rtol=1e-4, atol=1e-6):
            return name
    return None


@dataclass(frozen=True)
class _Role:
    """What the probe needs to know of a module in its hooks, found once per model."""

    kind: str | None  # "tanh", "sigmoid", "relu" or None (see _kind)
    weighted: bool  # owns the weight whose rows are its units (see _weight_of)
    norm: bool  # a normalization layer (ends a chain of weight layers)
    axis: int  # feature axis of its output if weighted: 1 for convs, -1 otherwise
    recurrent: bool  # nn.LSTM / nn.GRU / nn.RNN (tanh): replayed for its gates
    inplace: bool  # works in place (``inplace=True``): its output is its input, modified


@dataclass
class _Plan:
    modules: list[tuple[str, nn.Module]]
    weights: dict[int, tuple[nn.Module, torch.Tensor]]
    roles: dict[int, _Role]
    clone: bool


# Plans by model, valid while its modules and parameters are the same objects (a module or a
# parameter replaced gives a new key): repeated diagnoses of one model (Monitor, benchmarks,
# fix's before and after) do not walk and classify every module again.
_PLANS: weakref.WeakKeyDictionary[nn.Module, tuple[tuple[int, ...], _Plan]] = (
    weakref.WeakKeyDictionary()
)


def _plan(model: nn.Module) -> _Plan:
    """The modules to hook (leaves, and every module that owns a weight), their weights and
    roles, and whether any module works in place."""
    key = (*map(id, model.modules()), -1, *map(id, model.parameters()))
    cached = _PLANS.get(model)
    if cached is not None and cached[0] == key:
        return cached[1]
    modules: list[tuple[str, nn.Module]] = []
    weights: dict[int, tuple[nn.Module, torch.Tensor]] = {}
    roles: dict[int, _Role] = {}
    for name, module in model.named_modules():
        weight = _weight_of(module)
        if next(module.children(), None) is not None and weight is None:
            continue
        modules.append((name or type(module).__name__, module))
        weighted = weight is not None and weight.is_floating_point()
        if weighted:
            weights.setdefault(id(module), (module, weight))  # type: ignore[arg-type]
        roles[id(module)] = _Role(
            _kind(module),
            weighted,
            _is_norm(module),
            1 if _is_conv(module) else -1,
            _mode(module) is not None,
            getattr(module, "inplace", False) is True,
        )
    clone = any(getattr(m, "inplace", False) is True for m in model.modules())
    plan = _Plan(modules, weights, roles, clone)
    _PLANS[model] = (key, plan)
    return plan
