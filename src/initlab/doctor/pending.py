"""Statistics that stay on the device until one host sync.

The doctor's hooks (:mod:`initlab.doctor.probe`) never call ``.item()``: every statistic is a
tensor queued with the place its value goes (a ``(dict, key)`` slot). :class:`_Queue` holds

- ``scalars``: 0-d tensors (one per statistic per module call, any dtype), stacked once per
  device at the sync, so a hook adds no stacking or dtype-conversion ops of its own;
- ``pending``: 1-D tensors with one slot per element (statistics already batched, e.g. the
  columns of a stacked group of outputs);
- ``repairs``: norms computed in float32 that are recomputed in float64 after the sync when
  they came back 0 or non-finite (the float32 sum of squares under- or overflows beyond about
  ``1e19`` or below ``1e-19`` per element).

:func:`_sync` concatenates everything per device (float64 by type promotion: a float64 zero
leads), copies it to the host once per device and writes each value into its slot.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

# A slot: the dict a value goes into and its key.
_Slot = tuple[dict[str, float], str]
# Pending statistics: 1-D tensors on the device and, per element, where its value goes.
_Pending = list[tuple[torch.Tensor, list[_Slot]]]
_Repairs = list[tuple[torch.Tensor, dict[str, float], str]]


def _add_scalars(pending: _Pending, scalars: Sequence[torch.Tensor], targets: list[_Slot]) -> None:
    """Queue 0-d tensors, stacked per device so that the sync is one copy."""
    by_device: dict[torch.device, list[int]] = {}
    for i, t in enumerate(scalars):
        by_device.setdefault(t.device, []).append(i)
    for members in by_device.values():
        device = scalars[members[0]].device
        lead = torch.zeros((), dtype=torch.float64, device=device)
        stacked = torch.stack([lead, *(scalars[i] for i in members)])[1:]
        pending.append((stacked, [targets[i] for i in members]))


def _queue_norms(
    pending: _Pending, repairs: _Repairs, tensors: Sequence[torch.Tensor], targets: list[_Slot]
) -> None:
    """Euclidean norms of many tensors in one fused float32 call; those that come back 0 or
    non-finite are recomputed in float64 after the sync (see :func:`_sync`)."""
    tensors = list(tensors)
    _add_scalars(pending, torch._foreach_norm(tensors), targets)
    repairs.extend((t, target, key) for t, (target, key) in zip(tensors, targets, strict=True))


def _sync(pending: _Pending, repairs: _Repairs | Sequence[tuple] = ()) -> None:
    """Copy every pending statistic to the host at once and store it where it belongs; then
    recompute in float64 the norms in ``repairs`` that came back 0 or non-finite (rare: a
    vanishing or exploding signal; one more sync each)."""
    _sync_pending(pending)
    for tensor, target, key in repairs:
        value = target.get(key)
        if value is not None and (value == 0 or not math.isfinite(value)):
            target[key] = float(torch.linalg.vector_norm(tensor, dtype=torch.float64))


def _sync_pending(pending: _Pending) -> None:
    if not pending:
        return
    by_device: dict[torch.device, list[int]] = {}
    for i, (tensor, _) in enumerate(pending):
        by_device.setdefault(tensor.device, []).append(i)
    for members in by_device.values():
        # Concatenate on the device (float64 by type promotion: a float64 zero leads), then one
        # copy to the host per device.
        device = pending[members[0]][0].device
        lead = torch.zeros(1, dtype=torch.float64, device=device)
        merged = torch.cat([lead, *(pending[i][0].reshape(-1) for i in members)])[1:]
        values = merged.cpu().tolist()
        position = 0
        for i in members:
            tensor, targets = pending[i]
            if tensor.numel() != len(targets):  # pragma: no cover - internal invariant
                raise RuntimeError("statistics and their slots are out of step")
            for target, key in targets:
                target[key] = values[position]
                position += 1


def _identical_rows(keys: torch.Tensor, scale: torch.Tensor, rtol: float) -> torch.Tensor:
    """How many rows of each weight equal another row, in O(n log n).

    ``keys`` ``(layers, rows, P)`` are the rows projected on ``P`` fixed random unit directions,
    ``scale`` ``(layers,)`` the rms row norm ``||W|| / sqrt(rows)``. Rows are sorted by the first
    key; neighbours whose keys all agree within ``rtol * scale`` count as identical. Rows that
    differ by at most that much (in norm) always pass; two rows that differ by more pass all
    ``P = 4`` random directions with negligible probability.
    """
    order = keys[:, :, 0].argsort(dim=1)
    ordered = keys.gather(1, order[:, :, None].expand_as(keys))
    gaps = (ordered[:, 1:] - ordered[:, :-1]).abs()
    same = (gaps <= rtol * scale[:, None, None]).all(dim=2)
    flags = torch.zeros(keys.shape[:2], dtype=torch.bool, device=keys.device)
    flags[:, 1:] |= same
    flags[:, :-1] |= same
    return flags.sum(dim=1)
