"""Activations initlab knows by name, as modules (``nn.GELU``) and as torch functions or tensor
methods (``F.gelu``, ``x.relu_()``), with their parameters; :class:`MeasuredActivation` for an
elementwise activation it has no name for (its gain is measured from its own forward); and the
behavioural tests the data-flow walk uses: is a module a normalization, does it own a weight,
does a parameter-free module act elementwise.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from initlab.initializers.model_calls import _restored_state

Activation = tuple[Any, Any]  # (name or MeasuredActivation, parameter), as schemes.Activation

_LINEAR: Activation = ("linear", None)


def module_activation(module: nn.Module) -> Activation | None:
    """The activation a module applies, as ``(name, param)``, or ``None`` if it is not a known
    one (``nn.Identity`` and dropout are transparent, not activations)."""
    if isinstance(module, nn.LeakyReLU):
        return ("leaky_relu", float(module.negative_slope))
    if isinstance(module, nn.PReLU):
        return ("leaky_relu", float(module.weight.detach().float().mean()))
    if isinstance(module, nn.ELU | nn.CELU):
        return ("elu", float(module.alpha))
    if isinstance(module, nn.Softplus):
        return ("softplus", float(module.beta))
    for types, name in _MODULE_NAMES:
        if isinstance(module, types):
            return (name, None)
    return None


_MODULE_NAMES: tuple[tuple[type | tuple[type, ...], str], ...] = (
    ((nn.ReLU, nn.ReLU6, nn.RReLU), "relu"),
    (nn.Tanh, "tanh"),
    ((nn.Sigmoid, nn.Hardsigmoid), "sigmoid"),
    (nn.SELU, "selu"),
    (nn.GELU, "gelu"),
    ((nn.SiLU, nn.Hardswish), "silu"),
    (nn.Mish, "mish"),
    ((nn.Softmax, nn.LogSoftmax, nn.Hardtanh), "linear"),
)

_FUNCTIONS = {
    F.relu: "relu", torch.relu: "relu", F.relu6: "relu", F.tanh: "tanh", torch.tanh: "tanh",
    F.sigmoid: "sigmoid", torch.sigmoid: "sigmoid", F.selu: "selu", torch.selu: "selu",
    F.gelu: "gelu", F.silu: "silu", F.mish: "mish", F.elu: "elu", F.softplus: "softplus",
    F.leaky_relu: "leaky_relu", F.softmax: "linear", F.log_softmax: "linear",
    torch.softmax: "linear", F.relu_: "relu", F.elu_: "elu", F.leaky_relu_: "leaky_relu",
    F.hardswish: "silu", F.hardsigmoid: "sigmoid",
}  # fmt: skip
# Tensor methods (x.relu(), x.relu_()) and the names torch functions report in a trace.
_METHODS = {"relu": "relu", "relu_": "relu", "tanh": "tanh", "tanh_": "tanh",
            "sigmoid": "sigmoid", "sigmoid_": "sigmoid", "softmax": "linear",
            "log_softmax": "linear"}  # fmt: skip
# Other elementwise activation functions: gain measured from the function itself.
_MEASURED_FUNCTIONS = {F.celu: "celu", F.softsign: "softsign", F.logsigmoid: "logsigmoid",
                       F.tanhshrink: "tanhshrink", F.softshrink: "softshrink",
                       F.hardshrink: "hardshrink", F.hardtanh: "hardtanh"}  # fmt: skip
_DEFAULT_PARAM = {"leaky_relu": ("negative_slope", 1, 0.01), "elu": ("alpha", 1, 1.0),
                  "softplus": ("beta", 1, 1.0)}  # fmt: skip


def function_activation(
    func: Any, name: str, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None
) -> Activation | None:
    """The activation a torch function or tensor method applies (``F.gelu``, ``x.relu_()``),
    with its parameter read from ``args``/``kwargs`` (the tensor first), or ``None``."""
    kwargs = kwargs or {}
    try:
        known = _FUNCTIONS.get(func)
        measured = _MEASURED_FUNCTIONS.get(func)
    except TypeError:  # unhashable callables
        known = measured = None
    if known is None and measured is None:
        known = _METHODS.get(name)
    if measured is not None:
        extra = args[1:]
        return (MeasuredActivation(measured, lambda x: func(x, *extra, **kwargs)), None)
    if known is None:
        return None
    param = None
    if known in _DEFAULT_PARAM:
        key, position, default = _DEFAULT_PARAM[known]
        param = kwargs.get(key, args[position] if len(args) > position else default)
        param = float(param) if isinstance(param, int | float) else default
    return (known, param)


_NORM_MODULES = (
    nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm,
    *((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ()),
)  # fmt: skip


def is_norm_module(module: nn.Module) -> bool:
    """A normalization layer, by type or by name: a torch norm, or a class whose name contains
    ``Norm`` (``LlamaRMSNorm``, ``T5LayerNorm``, timm's ``LayerNorm2d``)."""
    return isinstance(module, _NORM_MODULES) or "norm" in type(module).__name__.lower()


def _has_own_weight(module: nn.Module) -> bool:
    return any(p is not None and p.dim() >= 2 for p in module._parameters.values())


class MeasuredActivation:
    """An activation initlab has no name for, called on float64 tensors to measure its gain.

    ``str()`` is the class name; calling it applies the module (or function) elementwise.
    """

    def __init__(self, name: str, fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self.name = name
        self._fn = fn

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self._fn(x)

    def __str__(self) -> str:
        return self.name

    __repr__ = __str__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MeasuredActivation) and other.name == self.name

    def __hash__(self) -> int:
        return hash(self.name)


# Known activations as functions of a float64 tensor, matched against an unknown module's
# output on a fixed grid (:func:`match_activation`): any class that computes a sigmoid *is* a
# sigmoid, whatever its name (timm's ``Sigmoid``, Hugging Face's ``SiLUActivation``). The
# hard variants map to the smooth activation initlab already gives them (``nn.Hardswish`` is
# ``silu``, ``nn.Hardsigmoid`` and ``nn.ReLU6`` ``sigmoid`` and ``relu``), as by type.
_GRID = torch.linspace(-4, 4, 161, dtype=torch.float64)
_KNOWN_FUNCTIONS: tuple[tuple[Activation, Callable[[torch.Tensor], torch.Tensor]], ...] = (
    (("relu", None), torch.relu),
    (("relu", None), F.relu6),
    (("tanh", None), torch.tanh),
    (("sigmoid", None), torch.sigmoid),
    (("sigmoid", None), F.hardsigmoid),
    (("silu", None), F.silu),
    (("silu", None), F.hardswish),
    (("gelu", None), F.gelu),
    (("gelu", None), lambda x: F.gelu(x, approximate="tanh")),
    (("mish", None), F.mish),
    (("selu", None), F.selu),
    (("elu", 1.0), F.elu),
    (("softplus", 1.0), F.softplus),
)
# gelu and its tanh approximation differ by up to 4.7e-4 on the grid: one tolerance takes both
_MATCH_TOLERANCE = 1e-3


def match_activation(fn: Callable[[torch.Tensor], torch.Tensor]) -> Activation | None:
    """The known activation ``fn`` computes, found by evaluating it on a fixed grid of
    ``[-4, 4]`` in float64 (``None`` if it matches none). A leaky ReLU is matched with its slope
    read from the negative side; the identity is ``("linear", None)``."""
    with torch.no_grad():
        try:
            y = fn(_GRID.clone())
        except Exception:  # not callable on a float64 tensor: nothing to match
            return None
    if not isinstance(y, torch.Tensor) or y.shape != _GRID.shape or not y.is_floating_point():
        return None
    y = y.double()
    if not bool(torch.isfinite(y).all()):
        return None
    if torch.allclose(y, _GRID, rtol=0, atol=_MATCH_TOLERANCE):
        return _LINEAR
    for activation, known in _KNOWN_FUNCTIONS:
        if torch.allclose(y, known(_GRID), rtol=0, atol=_MATCH_TOLERANCE):
            return activation
    negative, positive = _GRID < 0, _GRID > 0
    slopes = y[negative] / _GRID[negative]
    if torch.allclose(y[positive], _GRID[positive]) and float(slopes.max() - slopes.min()) < 1e-9:
        return ("leaky_relu", float(slopes.mean()))
    return None


def module_function(module: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """``module`` as a function of a tensor, applied in eval mode (its mode is restored)."""

    def apply(x: torch.Tensor) -> torch.Tensor:
        was_training = module.training
        try:
            module.train(False)
            return module(x)
        finally:
            module.train(was_training)

    return apply


def _stochastic(module: nn.Module, probe: torch.Tensor) -> bool:
    """Whether ``module`` gives two different outputs for one input in training mode (dropout,
    drop path, stochastic depth of any library), under a fixed seed so the answer is the same
    in every process. The module's mode is restored."""
    was_training = module.training
    try:
        module.train(True)
        with torch.no_grad(), _restored_state(module):
            first, second = module(probe), module(probe)
    except Exception:  # not callable on a plain tensor
        return False
    finally:
        module.train(was_training)
    if not (isinstance(first, torch.Tensor) and isinstance(second, torch.Tensor)):
        return False
    return first.shape != second.shape or not torch.equal(first, second)


def _elementwise_kind(
    module: nn.Module,
) -> Literal["identity", "stochastic", "elementwise", "other"]:
    """Call a parameter-free module on probes: the identity, stochastic (dropout-like: the
    identity in expectation, a pass-through for signal propagation), an elementwise
    nonlinearity, or other. Probed in eval mode under a fixed seed, so the answer does not
    depend on the global RNG or the module's mode."""
    probe = torch.linspace(-3, 3, 24, dtype=torch.float64).reshape(2, 3, 4)
    if _stochastic(module, probe):
        return "stochastic"
    was_training = module.training
    try:
        module.train(False)
        with torch.no_grad(), _restored_state(module):
            out = module(probe)
            if not isinstance(out, torch.Tensor) or out.shape != probe.shape:
                return "other"
            flat = module(probe.reshape(-1))
            perm = torch.randperm(24, generator=torch.Generator().manual_seed(0))
            shuffled = module(probe.reshape(-1)[perm])
    except Exception:  # not callable on a plain tensor: not an elementwise activation
        return "other"
    finally:
        module.train(was_training)
    if not isinstance(flat, torch.Tensor) or flat.shape != (24,):
        return "other"
    out64 = out.double().reshape(-1)
    if not (
        torch.allclose(flat.double(), out64) and torch.allclose(shuffled.double(), out64[perm])
    ):
        return "other"
    return "identity" if torch.allclose(out64, probe.reshape(-1)) else "elementwise"
