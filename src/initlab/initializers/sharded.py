"""Filling parameters that live in parts: DTensor shards, gate blocks, both at once.

A parameter is a logical (unsharded) tensor. On one process it is all here; as a DTensor
(tensor parallel, FSDP2's ``fully_shard``) each rank holds a rectangular part of it: ``Shard(d)``
cuts dim ``d`` as ``torch.chunk`` does (the last shard may be smaller or empty), ``Replicate``
keeps it whole, over any number of mesh dims. :func:`local_part` finds the part this rank holds
and where it sits in the logical tensor; :func:`fill_rows` fills the rows ``start:stop`` of a
parameter (a gate or q/k/v block, or all of it) on this rank with the counter-based stream of
:mod:`initlab._core.counter_rng`, keyed by ``(seed, qualified name)``. Each rank computes its
part only -- no full-size temporary, no communication -- and the values equal the same part of
a single-process fill with the same seed. Fans come from the logical shape.

Schemes that need the whole block (orthogonal's QR, identity, dirac, sparse) are the
exception: each rank computes the whole block and keeps its part (one full-size temporary).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from initlab._core.counter_rng import CounterStream, counter_key
from initlab.initializers.schemes import Initializer


def is_dtensor(tensor: Any) -> bool:
    """Whether ``tensor`` is a ``torch.distributed.tensor.DTensor`` (without importing it)."""
    return type(tensor).__name__ == "DTensor" and hasattr(tensor, "placements")


def local_part(param: torch.Tensor) -> tuple[torch.Tensor, tuple[int, ...]]:
    """The tensor this process holds of ``param`` and its offsets in the logical tensor.

    A plain tensor is all of itself at offset 0. A DTensor with ``Shard``/``Replicate``
    placements gives its local tensor and the global offset of that local tensor. ``Partial``
    (values still to be summed) and strided shards (FSDP + TP on one dim) are refused: their
    local tensor is not a rectangular part with values of its own.
    """
    if not is_dtensor(param):
        return param.data, (0,) * param.dim()
    from torch.distributed.tensor import Replicate, Shard
    from torch.distributed.tensor._utils import compute_local_shape_and_global_offset

    for placement in param.placements:
        if type(placement) not in (Shard, Replicate):
            raise ValueError(
                f"cannot initialize a DTensor with placement {placement}: initlab fills "
                "Shard(dim) and Replicate() placements (each rank holds a rectangular part); "
                "redistribute it to Shard/Replicate first"
            )
    local = param._local_tensor
    shape, offsets = compute_local_shape_and_global_offset(
        param.shape, param.device_mesh, param.placements
    )
    if tuple(local.shape) != tuple(shape):
        raise ValueError(
            f"DTensor local shape {tuple(local.shape)} differs from the shard shape "
            f"{tuple(shape)} its placements give; cannot tell which part it holds"
        )
    return local, tuple(int(o) for o in offsets)


class Rows:
    """Rows ``start:stop`` of a parameter (all of it when ``start=0, stop=len``), as
    :func:`initlab.init_model` fills it: ``shape`` is the logical block's shape (a tuple,
    computed once: models of many small layers make one per parameter)."""

    __slots__ = ("param", "shape", "start", "stop")

    def __init__(self, param: torch.Tensor, start: int, stop: int, shape: tuple[int, ...]) -> None:
        self.param, self.start, self.stop, self.shape = param, start, stop, shape

    @classmethod
    def of(cls, param: torch.Tensor, start: int | None = None, stop: int | None = None) -> Rows:
        full = tuple(param.shape)
        if not full:
            return cls(param, 0, 1, full)
        start = 0 if start is None else start
        stop = full[0] if stop is None else stop
        return cls(param, start, stop, (stop - start, *full[1:]))

    def __repr__(self) -> str:
        return f"Rows({self.start}:{self.stop} of {tuple(self.param.shape)})"

    def numel(self) -> int:
        return math.prod(self.shape)

    def dim(self) -> int:
        return len(self.shape)

    @property
    def sharded(self) -> bool:
        return is_dtensor(self.param)


def fill_rows(
    scheme: Initializer,
    block: Rows,
    seed: int,
    name: str,
    fans: tuple[int, int] | None = None,
    activation: Any = None,
) -> torch.Tensor | None:
    """Fill this rank's part of ``block`` with ``scheme`` from the counter stream of
    ``(seed, name)``; return the local tensor written (``None`` if this rank holds none of it).
    """
    param = block.param
    local, offsets = local_part(param)
    logical = tuple(param.shape)
    stream = CounterStream(counter_key(seed, name), logical)
    if not logical:  # a 0-dim parameter
        scheme(local, stream, fans=fans, activation=activation)
        return local
    stream = stream.rows(block.start, block.stop)
    low = max(offsets[0], block.start)
    high = min(offsets[0] + local.shape[0], block.stop)
    if high <= low or local.numel() == 0:
        if math.prod(block.shape):
            scheme._check_shape(tuple(block.shape))  # same errors on every rank
        return None
    target = local[low - offsets[0] : high - offsets[0]]
    part = stream.part((low - block.start, *offsets[1:]), tuple(target.shape))
    scheme(target, part, fans=fans, activation=activation)
    return target
