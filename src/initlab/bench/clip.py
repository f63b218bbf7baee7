"""Gradient clipping: by global L2 norm, by value, and adaptive (per parameter tensor).

All functions act in place on a list of gradient tensors. With ``batched=True`` every tensor
has a leading member dimension ``B`` (stacked runs) and each member is clipped on its own:
its norm is taken over its slice of every tensor, never across members.

- :func:`clip_by_norm_`: ``n = sqrt(sum_t ||g_t||^2)``; if ``n > c`` every ``g_t`` is scaled
  by ``c / n`` (so the new global norm is exactly ``c``), else left unchanged.
- :func:`clip_by_value_`: ``g <- min(max(g, -v), v)`` elementwise.
- :func:`clip_adaptive_`: per tensor, ``g_t <- g_t * min(1, r * max(||w_t||, eps) / ||g_t||)``:
  no step may change a tensor by more than the fraction ``r`` of its size (the
  parameter-wise form of adaptive gradient clipping, Brock et al. 2021).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from initlab._core.validation import check_number


def _sq_sums(tensors: Sequence[torch.Tensor], batched: bool) -> torch.Tensor:
    """Sum of squares over each tensor: shape ``(len(tensors), B)`` or ``(len(tensors),)``."""
    if batched:
        return torch.stack([t.pow(2).reshape(t.shape[0], -1).sum(1) for t in tensors])
    return torch.stack([t.pow(2).sum() for t in tensors])


def global_norm(grads: Sequence[torch.Tensor], batched: bool = False) -> torch.Tensor:
    """The L2 norm of all gradients together: a scalar, or shape ``(B,)`` when batched."""
    return _sq_sums(grads, batched).sum(0).sqrt()


def _per_member(factor: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return factor.reshape(-1, *([1] * (t.dim() - 1)))


def clip_by_norm_(
    grads: Sequence[torch.Tensor], max_norm: float, batched: bool = False
) -> torch.Tensor:
    """Scale ``grads`` by ``max_norm / norm`` where their global norm exceeds ``max_norm``.

    Returns the norm before clipping (scalar, or ``(B,)`` when ``batched``).
    """
    check_number("clip_norm", max_norm, minimum=0.0, strict_minimum=True)
    norm = global_norm(grads, batched)
    factor = torch.where(norm > max_norm, max_norm / norm, torch.ones_like(norm))
    for g in grads:
        g.mul_(_per_member(factor, g) if batched else factor)
    return norm


def clip_by_value_(grads: Sequence[torch.Tensor], value: float) -> None:
    """Clamp every gradient element to ``[-value, value]``."""
    check_number("clip_value", value, minimum=0.0, strict_minimum=True)
    for g in grads:
        g.clamp_(-value, value)


def clip_adaptive_(
    params: Sequence[torch.Tensor], grads: Sequence[torch.Tensor], ratio: float,
    eps: float = 1e-3, batched: bool = False,
) -> None:  # fmt: skip
    """Per tensor: scale ``g`` so that ``||g|| <= ratio * max(||w||, eps)``."""
    check_number("clip_adaptive", ratio, minimum=0.0, strict_minimum=True)
    w_norms = _sq_sums(params, batched).sqrt().clamp_min(eps) * ratio
    g_norms = _sq_sums(grads, batched).sqrt()
    factors = torch.where(g_norms > w_norms, w_norms / g_norms, torch.ones_like(g_norms))
    for g, factor in zip(grads, factors, strict=True):
        g.mul_(_per_member(factor, g) if batched else factor)
