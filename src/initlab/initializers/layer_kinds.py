"""What kind of layer a module is, by type and by behaviour: linear-like (PyTorch ``Linear``
and Hugging Face's ``Conv1D``, which stores ``(in, out)``), normalization (by type or by a
class name containing ``Norm``), the fans of a weight from its logical shape, and whether a
norm's forward scales by ``1 + w``.
"""

from __future__ import annotations

import torch
from torch import nn

_NORM_TYPES: tuple[type, ...] = (
    nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm,
    *((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ()),
)  # fmt: skip


def _is_conv1d(module: nn.Module) -> bool:
    """Hugging Face's ``Conv1D``: a linear layer storing its weight as ``(in, out)``."""
    return type(module).__name__ == "Conv1D" and hasattr(module, "nf")


def _is_linear(module: nn.Module) -> bool:
    return isinstance(module, nn.Linear) or _is_conv1d(module)


def _is_norm(module: nn.Module) -> bool:
    return isinstance(module, _NORM_TYPES) or "norm" in type(module).__name__.lower()


def linear_fans(module: nn.Module, param: torch.Tensor) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of a linear-like weight from its logical shape (``Conv1D`` is
    ``(in, out)``, everything else ``(out, in, *kernel)``)."""
    shape = tuple(param.shape)
    if _is_conv1d(module):
        return shape[0], shape[1]
    if isinstance(module, nn.modules.conv._ConvTransposeNd):
        rf = int(torch.tensor(shape[2:]).prod()) if len(shape) > 2 else 1
        return shape[0] // module.groups * rf, shape[1] * rf
    rf = 1
    for k in shape[2:]:
        rf *= k
    if isinstance(module, nn.modules.conv._ConvNd):
        return shape[1] * rf, shape[0] // module.groups * rf
    if isinstance(module, nn.Embedding | nn.EmbeddingBag):
        return 1, shape[1]
    return shape[1] * rf, shape[0] * rf


def is_zero_centered(module: nn.Module) -> bool | None:
    """Whether a norm's forward scales by ``1 + w`` (Gemma, Qwen3.5, Megatron ``1p``).

    Measured: the norm is run on a random input with its weight set to zero. A plain norm then
    outputs zeros (shift aside); a ``1 + w`` norm outputs the normalized input. ``None`` when
    the norm cannot be run on a ``(4, n)`` input (batch norms, channel-first norms); the class
    name then decides (``Gemma``/``1p``/``ZeroCentered``).
    """
    name = type(module).__name__.lower()
    by_name = any(key in name for key in ("gemma", "1p", "zerocentered", "zero_centered"))
    weight = getattr(module, "weight", None)
    if getattr(module, "zero_centered_gamma", False) or getattr(module, "apply_1p", False):
        return True
    if not isinstance(weight, torch.Tensor) or weight.dim() != 1 or weight.device.type == "meta":
        return True if by_name else None
    if isinstance(module, nn.modules.batchnorm._NormBase | nn.GroupNorm):
        return False
    saved = weight.detach().clone()
    bias = getattr(module, "bias", None)
    saved_bias = bias.detach().clone() if isinstance(bias, torch.Tensor) else None
    x = torch.linspace(-2.0, 3.0, 4 * weight.numel(), dtype=weight.dtype).reshape(4, -1)
    try:
        with torch.no_grad():
            weight.zero_()
            if saved_bias is not None:
                bias.zero_()
            out = module(x.to(weight.device))
        if isinstance(out, tuple):
            out = out[0]
        return bool(out.detach().abs().max() > 1e-3)
    except Exception:
        return True if by_name else None
    finally:
        with torch.no_grad():
            weight.copy_(saved)
            if saved_bias is not None:
                bias.copy_(saved_bias)
