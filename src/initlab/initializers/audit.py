"""``audit_init``: a fingerprint of every parameter that is the same on any sharding.

Per parameter: shape, dtype, mean, std and a 64-bit hash of the whole logical tensor. Each rank
reduces only the part it holds (a DTensor's local shard; a replica only on the first rank of
each ``Replicate`` mesh dim), and the parts are summed over the mesh, so one process and any
world size give the same fingerprint for the same values:

- ``hash = sum_i mix(i, bits(w_i)) mod 2^64``, ``i`` the element's flat index in the logical
  tensor, ``bits`` its value's bit pattern in the parameter's dtype, ``mix`` the SplitMix64
  finalizer. A sum is independent of the order of the parts; the index makes it sensitive to
  a moved or swapped element.
- mean and std from exact integer sums of fixed-point values (``round(w / s 2^32)`` and
  ``round(w^2 / s^2 2^32)`` with ``s`` the power of two at or above ``max |w|``): integer
  addition does not depend on the order either, so they are equal to the last bit too (and
  within ``2^-32 s`` of the float64 statistics).

Compare a sharded run with a single-process reference: ``audit_init(model).differences(ref)``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from initlab._core.counter_rng import flat_runs
from initlab._core.table import format_table
from initlab.initializers.sharded import is_dtensor, local_part

_MASK32 = np.uint64(0xFFFFFFFF)
_BLOCK = 1 << 20
_INT_VIEW = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


@dataclass
class Fingerprint:
    """One parameter's fingerprint; ``hash`` is ``None`` for parameters without values (meta)."""

    parameter: str
    shape: tuple[int, ...]
    dtype: str
    mean: float | None
    std: float | None
    hash: str | None


@dataclass
class AuditReport:
    """The fingerprints of :func:`audit_init`; ``str()`` is a table."""

    rows: list[Fingerprint] = field(default_factory=list)

    def __str__(self) -> str:
        table = [(r.parameter, r.shape, r.dtype, r.mean, r.std, r.hash) for r in self.rows]
        return format_table(("parameter", "shape", "dtype", "mean", "std", "hash"), table)

    def __getitem__(self, parameter: str) -> Fingerprint:
        for row in self.rows:
            if row.parameter == parameter:
                return row
        raise KeyError(
            f"no fingerprint for {parameter!r}; parameters: "
            f"{', '.join(r.parameter for r in self.rows)}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {"rows": [asdict(r) | {"shape": list(r.shape)} for r in self.rows]}

    def differences(self, other: AuditReport) -> list[str]:
        """One line per parameter whose fingerprint differs from ``other``'s (or is missing
        from one of them); empty when the two models hold the same values."""
        mine = {r.parameter: r for r in self.rows}
        theirs = {r.parameter: r for r in other.rows}
        lines = []
        for name in [*mine, *(n for n in theirs if n not in mine)]:
            a, b = mine.get(name), theirs.get(name)
            if a is None or b is None:
                lines.append(f"{name}: only in {'the other report' if a is None else 'this one'}")
            elif a != b:
                lines.append(f"{name}: {a} != {b}")
        return lines


def _mix(z: np.ndarray) -> np.ndarray:
    """SplitMix64's finalizer (wrapping uint64 arithmetic)."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _contributes(param: torch.Tensor) -> bool:
    """Whether this rank's part counts: replicas count once, on coordinate 0 of their dims."""
    if not is_dtensor(param):
        return True
    from torch.distributed.tensor import Replicate

    coordinate = param.device_mesh.get_coordinate()
    if coordinate is None:  # this rank is not in the mesh
        return False
    return all(
        c == 0
        for c, placement in zip(coordinate, param.placements, strict=True)
        if isinstance(placement, Replicate)
    )


def _all_reduce(params: list[torch.Tensor], values: torch.Tensor, op: Any) -> torch.Tensor:
    """Reduce ``values`` (one row per parameter) over the mesh each parameter lives on: one
    collective per mesh dim for all parameters on the same mesh; plain tensors are left."""
    groups: dict[int, list[int]] = {}
    for i, param in enumerate(params):
        if is_dtensor(param):
            groups.setdefault(id(param.device_mesh), []).append(i)
    if not groups:
        return values
    import torch.distributed as dist

    for rows in groups.values():
        mesh = params[rows[0]].device_mesh
        part = values[rows].contiguous()
        for dim in range(mesh.ndim):
            dist.all_reduce(part, op=op, group=mesh.get_group(dim))
        values[rows] = part
    return values


def _local_sums(local: np.ndarray, offsets, shape, scale: float) -> list[int]:
    """[hash low sum, hash high sum, sum of q1, sum of q2] over this part."""
    starts, length = flat_runs(shape, offsets, local.shape)
    flat = local.reshape(-1)
    bits = flat.view(_INT_VIEW[flat.dtype.itemsize]).astype(np.uint64)
    values = flat.astype(np.float64)
    sums = [0, 0, 0, 0]
    per_block = max(1, _BLOCK // length)
    for first in range(0, starts.size, per_block):
        run_starts = starts[first : first + per_block]
        index = (run_starts[:, None] + np.arange(length, dtype=np.int64)[None, :]).reshape(-1)
        lo, hi = first * length, first * length + index.size
        h = _mix(index.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15) ^ bits[lo:hi])
        sums[0] += int((h & _MASK32).sum(dtype=np.uint64))
        sums[1] += int((h >> np.uint64(32)).sum(dtype=np.uint64))
        x = values[lo:hi] * (2.0**32 / scale) if scale else np.zeros(hi - lo)
        sums[2] += int(np.rint(x).astype(np.int64).sum())
        x2 = (values[lo:hi] * values[lo:hi]) * (2.0**32 / (scale * scale)) if scale else x
        sums[3] += int(np.rint(x2).astype(np.int64).sum())
    return sums


def _fingerprints(named: list[tuple[str, torch.Tensor]]) -> list[Fingerprint]:
    """Fingerprints of several parameters: two rounds of collectives for all of them."""
    real = [(name, p) for name, p in named if p.device.type != "meta"]
    params = [p for _, p in real]
    parts = []
    for _, param in real:
        local, offsets = local_part(param)
        array = local.detach().cpu().contiguous()
        if array.dtype == torch.bfloat16:  # NumPy has no bfloat16: bits as int16, values f32
            bits, values = array.view(torch.int16).numpy(), array.float().numpy()
        else:
            bits = values = array.numpy()
        counts = _contributes(param) and local.numel() > 0
        parts.append((offsets, bits, values, counts))
    peaks = torch.tensor(
        [[float(np.abs(v).max()) if c else 0.0] for _, _, v, c in parts], dtype=torch.float64
    ).reshape(len(parts), 1)
    peaks = _all_reduce(params, peaks, _max())
    sums = torch.zeros(len(parts), 4, dtype=torch.int64)
    scales = []
    for i, (param, (offsets, bits, values, counts)) in enumerate(zip(params, parts, strict=True)):
        peak = float(peaks[i, 0])
        scale = 2.0 ** math.ceil(math.log2(peak)) if peak > 0 else 0.0
        scales.append(scale)
        if not counts:
            continue
        shape = tuple(param.shape)
        if bits is values:
            local_sums = _local_sums(values, offsets, shape, scale)
        else:
            local_sums = _local_sums_split(bits, values, offsets, shape, scale)
        sums[i] = torch.tensor(local_sums, dtype=torch.int64)
    totals = _all_reduce(params, sums, _sum()).tolist()
    found = {}
    for (name, param), total, scale in zip(real, totals, scales, strict=True):
        shape = tuple(param.shape)
        n = math.prod(shape)
        digest = (total[0] + (total[1] << 32)) % 2**64
        mean = std = None
        if n:
            mean = total[2] / 2.0**32 * scale / n
            square = total[3] / 2.0**32 * scale * scale / n
            std = math.sqrt(max(square - mean * mean, 0.0) * n / (n - 1)) if n > 1 else 0.0
        dtype = str(param.dtype).removeprefix("torch.")
        found[name] = Fingerprint(name, shape, dtype, mean, std, f"{digest:016x}")
    return [
        found.get(name)
        or Fingerprint(name, tuple(p.shape), str(p.dtype).removeprefix("torch."), None, None, None)
        for name, p in named
    ]


def _local_sums_split(bits: np.ndarray, values: np.ndarray, offsets, shape, scale) -> list[int]:
    """``_local_sums`` for dtypes NumPy cannot hold (bfloat16): bits and values apart."""
    hashed = _local_sums(bits, offsets, shape, 0.0)
    moments = _local_sums(values, offsets, shape, scale)
    return [hashed[0], hashed[1], moments[2], moments[3]]


def _sum() -> Any:
    import torch.distributed as dist

    return dist.ReduceOp.SUM


def _max() -> Any:
    import torch.distributed as dist

    return dist.ReduceOp.MAX


def audit_init(model: nn.Module) -> AuditReport:
    """Fingerprint every parameter of ``model``: shape, dtype, mean, std, hash.

    Works on plain models and on sharded ones (DTensor parameters, FSDP2): each rank reduces
    its own shard and the parts are summed over the mesh, so the fingerprints equal those of
    the same values on one process. On sharded models every rank must call it (it runs
    two rounds of collectives per mesh, for all parameters together). Tied parameters appear
    once, under their first name.

    >>> import torch.nn as nn, initlab
    >>> net = nn.Linear(4, 3)
    >>> _ = initlab.init_model(net, seed=0)
    >>> report = initlab.audit_init(net)
    >>> report["weight"].shape, report["bias"].std
    ((3, 4), 0.0)
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"audit_init needs a torch.nn.Module; got {type(model).__name__}")
    with torch.no_grad():
        return AuditReport(_fingerprints(list(model.named_parameters())))
