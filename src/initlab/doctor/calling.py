"""How the doctor calls a model: inputs in, the tensor to diagnose out, dropout off.

- :func:`_check_inputs`: a tensor, a tuple of positional arguments (``None`` entries allowed)
  or a dict of keyword arguments, as ``(args, kwargs)``; :func:`_describe` words what was
  given for error messages;
- :func:`_main_output`: ``logits`` by name, else ``last_hidden_state``, else the first
  floating-point tensor of a tensor, tuple, dict or ``ModelOutput``-like object;
- :class:`_NoDropout`: every dropout off for one forward pass, functional ones included;
- :func:`_default_loss` and :func:`_sequence_loss_args`: the loss for given targets.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

_DROPOUT = (
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
    nn.AlphaDropout,
    nn.FeatureAlphaDropout,
)
# Stochastic depth: whole residual branches dropped per sample in training mode (timm's
# DropPath, torchvision's StochasticDepth, timm's DropBlock2d), known by class name.
_DROP_PATH = frozenset({"DropPath", "StochasticDepth", "DropBlock2d"})


def _is_dropout(module: nn.Module) -> bool:
    """Dropout modules and stochastic depth: what the doctor switches off for its pass."""
    return isinstance(module, _DROPOUT) or type(module).__name__ in _DROP_PATH


LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _default_loss(model: nn.Module, targets: torch.Tensor) -> LossFn:
    if not targets.is_floating_point():
        return F.cross_entropy
    if getattr(model, "output", None) == "sigmoid":
        return F.binary_cross_entropy_with_logits
    return F.mse_loss


def _describe(value: Any) -> str:
    """What was given, for error messages: a type with its contents' types and shapes."""
    if isinstance(value, torch.Tensor):
        return f"tensor {tuple(value.shape)} {str(value.dtype).removeprefix('torch.')}"
    if isinstance(value, tuple | list):
        inner = ", ".join(_describe(v) for v in value[:4])
        more = ", ..." if len(value) > 4 else ""
        return f"{type(value).__name__} ({inner}{more})"
    if isinstance(value, dict):
        inner = ", ".join(f"{k!r}: {_describe(v)}" for k, v in list(value.items())[:4])
        return f"dict {{{inner}{', ...' if len(value) > 4 else ''}}}"
    if value is None:
        return "None"
    return type(value).__name__


def _check_inputs(inputs: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """``inputs`` as the model's ``(args, kwargs)``: a tensor is one positional argument, a
    tuple or list the positional arguments (``None`` entries allowed: optional arguments left
    out), a dict keyword arguments (``model(**batch)``, the Hugging Face way). At least one
    entry must be a tensor; the others may be ``None``, numbers, strings or booleans."""
    if isinstance(inputs, torch.Tensor):
        return (inputs,), {}
    if isinstance(inputs, tuple | list):
        args, kwargs = tuple(inputs), {}
        entries = list(args)
    elif isinstance(inputs, dict):
        if not all(isinstance(k, str) for k in inputs):
            raise TypeError(
                f"inputs as a dict must map argument names (str) to values; got keys "
                f"{[type(k).__name__ for k in inputs]}"
            )
        args, kwargs = (), dict(inputs)
        entries = list(kwargs.values())
    else:
        raise TypeError(
            "inputs must be a tensor, a tuple of the model's positional arguments or a dict of "
            f"its keyword arguments (model(**batch)); got {_describe(inputs)}"
        )
    allowed = (torch.Tensor, type(None), bool, int, float, str)
    bad = [e for e in entries if not isinstance(e, allowed)]
    if bad or not any(isinstance(e, torch.Tensor) for e in entries):
        raise TypeError(
            "inputs must be a tensor, or a tuple or dict holding at least one tensor (other "
            f"entries may be None, numbers or strings); got {_describe(inputs)}"
        )
    return args, kwargs


def _tensors(args: Sequence[Any], kwargs: dict[str, Any]) -> list[torch.Tensor]:
    return [a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)]


def _find(output: Any, name: str) -> Any:
    """``output.name`` or ``output[name]`` (ModelOutput, dict, namedtuple), else ``None``."""
    if isinstance(output, dict):
        return output.get(name)
    if isinstance(output, torch.Tensor):
        return None
    return getattr(output, name, None)


def _main_output(output: Any) -> torch.Tensor | None:
    """The tensor to diagnose: ``logits`` by name (``ModelOutput``, dict), else
    ``last_hidden_state``, else the first floating-point tensor (a tensor, tuple or dict)."""
    for name in ("logits", "last_hidden_state"):
        found = _find(output, name)
        if isinstance(found, torch.Tensor) and found.is_floating_point():
            return found
    if isinstance(output, torch.Tensor):
        return output
    values = output.values() if isinstance(output, dict) else output
    if isinstance(values, tuple | list) or isinstance(output, dict):
        for item in values:
            if isinstance(item, torch.Tensor) and item.is_floating_point():
                return item
            found = _main_output(item) if isinstance(item, tuple | list | dict) else None
            if found is not None:
                return found
    if hasattr(output, "to_tuple"):  # a ModelOutput-like object
        return _main_output(output.to_tuple())
    return None


def _shapes(args: Sequence[Any], kwargs: dict[str, Any] | None = None) -> str:
    parts = [_describe(a) for a in args]
    parts += [f"{k}={_describe(v)}" for k, v in (kwargs or {}).items()]
    return ", ".join(parts)


_FUNCTIONAL_DROPOUT = (
    F.dropout,
    F.dropout1d,
    F.dropout2d,
    F.dropout3d,
    F.alpha_dropout,
    F.feature_alpha_dropout,
    torch.dropout,
    torch.alpha_dropout,
    torch.feature_dropout,
    torch.feature_alpha_dropout,
)


class _NoDropout(TorchFunctionMode):
    """Every dropout off while the doctor's pass runs, functional ones included: dropout
    modules and ``F.dropout``-style calls return their input, and
    ``F.scaled_dot_product_attention`` runs with ``dropout_p = 0`` (Hugging Face attention).
    Batch norm stays in training mode (what the doctor measures), which ``model.eval()``
    would not give."""

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        kwargs = kwargs or {}
        if func in _FUNCTIONAL_DROPOUT:
            return args[0] if args else kwargs["input"]
        if func is F.scaled_dot_product_attention:
            kwargs = {**kwargs, "dropout_p": 0.0}
            if len(args) > 4:  # (query, key, value, attn_mask, dropout_p, ...)
                args = (*args[:4], 0.0, *args[5:])
        return func(*args, **kwargs)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _sequence_loss_args(
    fn: LossFn, out: torch.Tensor, targets: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy on ``(batch, tokens, classes)`` logits with ``(batch, tokens)`` targets:
    flattened to ``(batch * tokens, classes)``, as language models are trained."""
    if (
        fn is F.cross_entropy
        and out.dim() == 3
        and targets.dim() == 2
        and out.shape[:2] == targets.shape
    ):
        return out.reshape(-1, out.shape[-1]), targets.reshape(-1)
    return out, targets
