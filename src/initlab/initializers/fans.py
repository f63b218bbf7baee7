"""Fan-in and fan-out of weight tensors, by shape and by layer.

Conventions
-----------
PyTorch's layout ``(out, in, *kernel)`` is native::

    receptive_field = prod(kernel)            (1 for a Linear weight)
    fan_in  = in  * receptive_field
    fan_out = out * receptive_field

Keras's layout ``(*kernel, in, out)`` gives the same fans for the same layer.

Shapes say nothing about grouped convolutions, transposed convolutions or fused weights, so
:func:`parameter_fans` looks at the module that owns a parameter and returns one
:class:`FanChunk` per independently initialized block (a gate of an LSTM, the q/k/v blocks of
attention) with the fans of the signal that really flows through it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from initlab._core.validation import check_choice

Layout = Literal["torch", "keras"]
LAYOUTS = ("torch", "keras")
WeightLayout = Literal["out_in", "in_out"]
WEIGHT_LAYOUTS = ("out_in", "in_out")
"""How a layer stores a 2-D weight: PyTorch's ``(out, in)`` or ``(in, out)`` (Hugging Face's
``Conv1D``, which computes ``x @ W``)."""


def _shape_of(shape_or_tensor: Sequence[int] | torch.Tensor) -> tuple[int, ...]:
    if isinstance(shape_or_tensor, torch.Tensor):
        return tuple(shape_or_tensor.shape)
    if hasattr(shape_or_tensor, "shape") and not isinstance(shape_or_tensor, Sequence):
        return tuple(int(d) for d in shape_or_tensor.shape)  # NumPy arrays
    if isinstance(shape_or_tensor, int):
        return (shape_or_tensor,)
    try:
        shape = tuple(int(d) for d in shape_or_tensor)
    except (TypeError, ValueError):
        raise TypeError(
            f"expected a shape (sequence of ints) or a tensor; got {shape_or_tensor!r}"
        ) from None
    if any(d < 0 for d in shape):
        raise ValueError(f"shape dimensions must be >= 0; got {shape}")
    return shape


def receptive_field(shape_or_tensor: Sequence[int] | torch.Tensor, layout: Layout = "torch") -> int:
    """Number of kernel positions: ``prod(shape[2:])`` (torch) or ``prod(shape[:-2])`` (keras)."""
    check_choice("layout", layout, LAYOUTS)
    shape = _shape_of(shape_or_tensor)
    kernel = shape[2:] if layout == "torch" else shape[:-2]
    return math.prod(kernel)


def fan_in_fan_out(
    shape_or_tensor: Sequence[int] | torch.Tensor, layout: Layout = "torch"
) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of a weight of at least two dimensions.

    ``layout="torch"``: shape ``(out, in, *kernel)``; ``layout="keras"``: ``(*kernel, in, out)``.
    ``fan_in = in * prod(kernel)``, ``fan_out = out * prod(kernel)``.

    >>> fan_in_fan_out((64, 3, 3, 3))
    (27, 576)
    >>> fan_in_fan_out((3, 3, 3, 64), layout="keras")
    (27, 576)
    """
    check_choice("layout", layout, LAYOUTS)
    shape = _shape_of(shape_or_tensor)
    if len(shape) < 2:
        raise ValueError(
            f"fan-based initialization needs a weight with at least 2 dimensions "
            f"((out, in, *kernel) in torch layout); got shape {shape}. Biases and other 1-D "
            f"parameters have no fan: use zeros, constant, normal or uniform for them"
        )
    rf = receptive_field(shape, layout)
    if layout == "torch":
        fan_out, fan_in = shape[0], shape[1]
    else:
        fan_in, fan_out = shape[-2], shape[-1]
    return fan_in * rf, fan_out * rf


@dataclass(frozen=True)
class FanChunk:
    """A block of rows ``[start, stop)`` along dim 0 of a parameter, initialized on its own.

    ``role`` names the block (``"weight"``, ``"input gate"``, ``"query"``, ...) and
    ``activation`` is the nonlinearity that acts on its output inside the layer, when the layer
    fixes one (LSTM gates), else ``None`` (decided by what follows the layer).
    """

    start: int
    stop: int
    fan_in: int
    fan_out: int
    role: str = "weight"
    activation: str | None = None


_LSTM_GATES = (("input gate", "sigmoid"), ("forget gate", "sigmoid"), ("cell", "tanh"),
               ("output gate", "sigmoid"))  # fmt: skip
_GRU_GATES = (("reset gate", "sigmoid"), ("update gate", "sigmoid"), ("new", "tanh"))


def _whole(param: torch.Tensor, fan_in: int, fan_out: int) -> list[FanChunk]:
    return [FanChunk(0, param.shape[0], fan_in, fan_out)]


def parameter_fans(module: nn.Module, name: str, param: torch.Tensor) -> list[FanChunk] | None:
    """Layer-aware fans of ``module``'s own parameter ``name`` (not a dotted path).

    Returns ``None`` for parameters that have no fan (biases, norm scales, 1-D tensors).

    - ``Conv*d`` with ``groups=g``, weight ``(out, in/g, *k)``: each output sees ``in/g * k``
      inputs and each input feeds ``out/g * k`` outputs, so ``fan_out = out/g * k``.
    - ``ConvTranspose*d``, weight ``(in, out/g, *k)``: the signal flows from dim 0 to dim 1,
      so ``fan_in = in/g * k`` and ``fan_out = out/g * k`` (the stride is ignored, as in
      PyTorch and Keras).
    - ``Embedding``, weight ``(num, dim)``: a lookup; each output unit reads one input
      (``fan_in = 1``) and each row feeds ``dim`` outputs, so LeCun gives ``N(0, 1)``, PyTorch's
      default.
    - ``RNN``/``LSTM``/``GRU``: ``weight_ih_l*`` ``(G*h, in)`` and ``weight_hh_l*`` ``(G*h, h)``
      are G stacked gate blocks with fans ``(in or h, h)`` each.
    - ``MultiheadAttention``: ``in_proj_weight`` ``(3E, E)`` is the q, k, v blocks with fans
      ``(E, E)`` each (``q/k/v_proj_weight`` when ``kdim``/``vdim`` differ). Their outputs feed
      the attention's dot products and weighted sums, not the activation after the layer, so
      their activation is ``linear`` (gain 1, as PyTorch's Xavier default for them).
    """
    if param.dim() < 2:
        return None
    shape = tuple(param.shape)
    if isinstance(module, nn.modules.conv._ConvTransposeNd) and name == "weight":
        g = module.groups
        rf = receptive_field(shape)
        return _whole(param, shape[0] // g * rf, shape[1] * rf)
    if isinstance(module, nn.modules.conv._ConvNd) and name == "weight":
        g = module.groups
        rf = receptive_field(shape)
        return _whole(param, shape[1] * rf, shape[0] // g * rf)
    if isinstance(module, nn.Embedding | nn.EmbeddingBag) and name == "weight":
        return _whole(param, 1, shape[1])
    if isinstance(module, nn.RNNBase) and name.startswith(("weight_ih", "weight_hh")):
        if isinstance(module, nn.LSTM):
            gates = _LSTM_GATES
        elif isinstance(module, nn.GRU):
            gates = _GRU_GATES
        else:
            gates = (("hidden", "relu" if module.nonlinearity == "relu" else "tanh"),)
        rows = shape[0] // len(gates)
        return [
            FanChunk(i * rows, (i + 1) * rows, shape[1], rows, role, act)
            for i, (role, act) in enumerate(gates)
        ]
    if isinstance(module, nn.MultiheadAttention) and name == "in_proj_weight":
        e = shape[0] // 3
        return [
            FanChunk(i * e, (i + 1) * e, shape[1], e, role, "linear")
            for i, role in enumerate(("query", "key", "value"))
        ]
    if isinstance(module, nn.MultiheadAttention) and name.endswith("_proj_weight"):
        fan_in, fan_out = fan_in_fan_out(shape)
        return [FanChunk(0, shape[0], fan_in, fan_out, name[0] + " projection", "linear")]
    fan_in, fan_out = fan_in_fan_out(shape)
    return _whole(param, fan_in, fan_out)


# Layer types, by class name, known to store their weight as (in, out).
_IN_OUT_TYPES = frozenset({"Conv1D"})  # Hugging Face transformers.pytorch_utils.Conv1D
_OUT_IN_TYPES = (nn.Linear, nn.Bilinear, nn.modules.conv._ConvNd, nn.Embedding,
                 nn.EmbeddingBag, nn.RNNBase, nn.MultiheadAttention)  # fmt: skip


def weight_layout(
    module: nn.Module, name: str, param: torch.Tensor,
    layouts: Mapping[str | type, str] | None = None, flow: Any = None,
) -> WeightLayout:  # fmt: skip
    """How ``module`` uses its 2-D parameter ``name``: ``"out_in"`` (PyTorch's ``(out, in)``)
    or ``"in_out"`` (``x @ W``, Hugging Face's ``Conv1D``).

    In order: a layout the user declared for the module's type (``layouts={"MyLinear":
    "in_out"}``, by class or class name); ``Conv1D`` by type name; PyTorch's own layers; and,
    for any other type, the shapes the layer consumed and produced in a traced forward pass
    (``flow``, a :class:`~initlab.initializers.trace.DataFlow`): a ``(a, b)`` weight (``a !=
    b``) that maps inputs whose last dim is ``a`` to outputs whose last dim is ``b`` is
    ``(in, out)``. Otherwise ``"out_in"``.
    """
    if param.dim() != 2 or name != "weight":
        return "out_in"
    kind = type(module)
    for key, value in (layouts or {}).items():
        if (isinstance(key, type) and isinstance(module, key)) or key == kind.__name__:
            return value  # type: ignore[return-value]
    if kind.__name__ in _IN_OUT_TYPES:
        return "in_out"
    if isinstance(module, _OUT_IN_TYPES) or flow is None:
        return "out_in"
    a, b = param.shape
    for call in flow.module_calls(flow.names.get(id(module), "")):
        if call.inputs and call.outputs:
            got_in, got_out = flow.shape(call.inputs[0]), flow.shape(call.outputs[0])
            if a != b and got_in and got_out and (got_in[-1], got_out[-1]) == (a, b):
                return "in_out"
        break
    return "out_in"
