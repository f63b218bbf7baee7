"""How :func:`initlab.init_model` writes values: one :class:`_Fill` per parameter (its blocks,
its stream, padding rows to zero), small counter-stream fills batched into one, and the
realized stds measured together."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from typing import Any, Literal

import torch

from initlab._core.counter_batch import RecordingStream, fill_recorded
from initlab._core.counter_rng import counter_keyer
from initlab._core.rng import reseeded_generator
from initlab.initializers.distributions import Normal, Random, TruncatedNormal, Uniform
from initlab.initializers.fans import FanChunk
from initlab.initializers.init_report import InitRow
from initlab.initializers.schemes import Initializer
from initlab.initializers.sharded import Rows, fill_rows
from initlab.initializers.variance_scaling import _VarianceScalingCore

# Realized std is measured exactly up to _STD_EXACT elements and beyond that on _STD_RUNS
# evenly spaced contiguous runs totalling _STD_SAMPLE elements (a strided sample would read a
# cache line per element). The sample stays under torch's intra-op grain size (32768), so the
# reduction runs inline: a parallel one waits for a free core, milliseconds on a loaded machine.
_STD_EXACT = 1 << 18
_STD_SAMPLE = 1 << 15
_STD_RUNS = 32
# Parameters up to this size have their realized std measured together, in one reduction per
# dtype and device (per-parameter reductions dominate on models with many small layers).
_STD_BATCH = 1 << 12


def _realized_std(tensor: torch.Tensor) -> torch.Tensor | None:
    if tensor.device.type == "meta" or tensor.numel() < 2:
        return None
    flat = tensor.detach().reshape(-1)
    n = flat.numel()
    if n > _STD_EXACT:
        run = _STD_SAMPLE // _STD_RUNS
        flat = flat.as_strided((_STD_RUNS, run), ((n - run) // (_STD_RUNS - 1), 1))
    return flat.float().std()


# ---- rng="counter" | "torch": how each parameter draws
RNG = Literal["counter", "torch"]
RNGS = ("counter", "torch")


def _block(rng: str, param: torch.Tensor, chunk: FanChunk | None) -> Any:
    """What a counter-stream fill writes: a row block of the parameter (``Rows``: any DTensor
    sharding), its logical indices those of ``param`` (for ``(in, out)`` layers, the transposed
    view the fans read)."""
    return Rows.of(param, *(() if chunk is None else (chunk.start, chunk.stop)))


def _small_stds(targets: list[torch.Tensor]) -> torch.Tensor:
    """Sample std of many small tensors of one shape, dtype and device: one reduction."""
    return torch.stack(targets).reshape(len(targets), -1).float().std(dim=1)


class _Fill:
    """One parameter's work: its stream seed, its (block, scheme, fans, activation) list, the
    rows of an embedding's padding indices to zero afterwards, and how it draws (``rng``; with
    the counter stream the seed and the qualified ``name`` key the stream)."""

    __slots__ = ("blocks", "device", "name", "rng", "seed", "stds", "zero_rows")

    def __init__(self, seed: int, device: torch.device, blocks: list[Any], rng: str = "torch",
                 name: str = "") -> None:  # fmt: skip
        self.seed = seed
        self.device = device
        self.blocks: list[tuple[str, Any, Initializer, Any, Any]] = blocks
        self.stds: list[torch.Tensor | None] = []
        self.zero_rows: tuple[torch.Tensor, list[int]] | None = None
        self.rng = rng
        self.name = name

    def run(self) -> None:
        if self.device.type == "meta":  # no values to fill; shapes were checked already
            self.stds.extend([None] * len(self.blocks))
            return
        if self.rng == "counter":
            self._run_counter()
            return
        generator = reseeded_generator(self.seed, self.device)
        with torch.no_grad():
            for label, target, chosen, fans, act in self.blocks:
                # shapes and fans were checked when planning: fill directly (what
                # Initializer.__call__ does after its checks)
                try:
                    chosen._fill(target, generator, fans, act)
                except ValueError as error:
                    raise ValueError(f"cannot initialize {label}: {error}") from None
            if self.zero_rows is not None:
                param, rows = self.zero_rows
                param[rows] = 0
            for _, target, *_ in self.blocks:
                # small: the values themselves, measured in batches by _record_stds
                # (a 0-d entry is a measured std; 0-d parameters have none: None)
                small = 2 <= target.numel() <= _STD_BATCH
                self.stds.append(target if small else _realized_std(target))

    def _run_counter(self) -> None:
        """Fill every block from the counter stream of (seed, name): this rank's part only."""
        for label, block, chosen, fans, act in self.blocks:
            try:
                local = fill_rows(chosen, block, self.seed, self.name, fans, act)
            except ValueError as error:
                raise ValueError(f"cannot initialize {label}: {error}") from None
            with torch.no_grad():  # a shard's std is not the parameter's: see audit_init
                if block.sharded or local is None:
                    self.stds.append(None)
                elif 2 <= local.numel() <= _STD_BATCH:
                    self.stds.append(local)
                else:
                    self.stds.append(_realized_std(local))
        if self.zero_rows is not None:
            param, rows = self.zero_rows
            with torch.no_grad():
                param[rows] = 0


def _seed_deriver(seed: int) -> Callable[[str], int]:
    """``derive_seed(seed, name)`` for many names: the hash of the common prefix is computed
    once and copied per name (same bytes hashed, so the same seeds; a test checks it)."""
    base = hashlib.blake2b(f"{int(seed)}\x1f".encode(), digest_size=8)

    def derive(name: str) -> int:
        h = base.copy()
        h.update(name.encode())
        return int.from_bytes(h.digest(), "little") >> 1

    return derive


def _record_stds(rows: list[InitRow], stds: list[torch.Tensor | None]) -> None:
    """Realized stds: small tensors (``stds`` holds the tensor itself) in batched reductions
    per dtype and device, the others as 0-d tensors; one host sync for all (matters on GPUs)."""
    small: dict[tuple[Any, ...], list[tuple[InitRow, torch.Tensor]]] = {}
    pending: list[tuple[InitRow, torch.Tensor]] = []
    for row, s in zip(rows, stds, strict=True):
        if s is None:
            continue
        if s.dim() == 0:  # a std measured already
            pending.append((row, s))
        else:
            small.setdefault((s.shape, s.dtype, s.device), []).append((row, s))
    groups = []
    for group in small.values():
        groups.append(([r for r, _ in group], _small_stds([t for _, t in group])))
    if pending or groups:
        device = (pending[0][1] if pending else groups[0][1]).device
        parts = [g.to(device) for _, g in groups]
        if pending:
            parts.insert(0, torch.stack([s.to(device) for _, s in pending]).float())
        flat = torch.cat(parts).tolist()  # one host sync
        ordered = [r for r, _ in pending] + [r for g, _ in groups for r in g]
        for row, value in zip(ordered, flat, strict=True):
            row.realized_std = value


# ---- many small counter-stream fills as one (initlab._core.counter_batch)
# Parameters up to this many elements are batched (per-call overhead dominates their fill).
_BATCH_NUMEL = 1 << 12
# Schemes whose fill is one counter-stream call and nothing after it: recordable.
_BATCHABLE = frozenset({
    Normal._fill, Random._fill, Uniform._fill, TruncatedNormal._fill,
    _VarianceScalingCore._fill,
})  # fmt: skip


def _batchable(fill: _Fill) -> bool:
    if fill.rng != "counter" or fill.zero_rows is not None or fill.device.type == "meta":
        return False
    for _, block, chosen, _, _ in fill.blocks:
        if block.numel() > _BATCH_NUMEL or block.sharded or type(chosen)._fill not in _BATCHABLE:
            return False
    return True


def fill_batched(fills: list[_Fill]) -> list[_Fill]:
    """Fill the small, plain counter-stream fills (whole CPU/GPU tensors of at most
    ``_BATCH_NUMEL`` elements per block, schemes of ``_BATCHABLE``) together and return the
    others. Values are those of the per-parameter fill, bit for bit.

    A scheme's transform (distribution arguments and work dtype) depends only on the scheme,
    the block's shape, fans, activation and dtype: it is recorded from the scheme's own fill
    for the first block of each kind and reused for the others."""
    rest: list[_Fill] = []
    log: list[Any] = []
    transforms: dict[tuple[Any, ...], Any] = {}
    keyers: dict[int, Any] = {}
    with torch.no_grad():
        for fill in fills:
            if not _batchable(fill):
                rest.append(fill)
                continue
            keyer = keyers.get(fill.seed)
            if keyer is None:
                keyer = keyers[fill.seed] = counter_keyer(fill.seed)
            key = keyer(fill.name)
            for label, block, chosen, fans, act in fill.blocks:
                target = _record(log, transforms, key, label, block, chosen, fans, act)
                small = 2 <= target.numel() <= _STD_BATCH
                fill.stds.append(target if small else _realized_std(target))
        fill_recorded(log)
    return rest


def _record(
    log: list[Any], transforms: dict[tuple[Any, ...], Any], key: tuple[int, int], label: str,
    block: Rows, chosen: Initializer, fans: Any, act: Any,
) -> torch.Tensor:  # fmt: skip
    """Append one block's fill to ``log``; return the tensor it will write."""
    local = block.param  # written under no_grad: no .data view needed
    start, stop, shape = block.start, block.stop, block.shape
    if shape:
        rows = local.shape[0]
        whole = start == 0 and stop == rows
        logical = shape if whole else (rows, *shape[1:])
        target = local if whole else local[start:stop]
        first = start * math.prod(shape[1:])
    else:
        logical, target, first = shape, local, 0
    kind = (id(chosen), logical, start, stop, fans, act, local.dtype)
    transform = transforms.get(kind)
    if transform is not None:
        log.append((key, first, target, transform))
        return target
    span = ((start, *(0,) * (len(shape) - 1)), shape) if shape else None
    before = len(log)
    try:
        chosen._fill(target, RecordingStream(key, logical, span, log=log), fans, act)
    except ValueError as error:
        raise ValueError(f"cannot initialize {label}: {error}") from None
    if len(log) == before + 1:  # one stream call (none: a constant, filled directly)
        transforms[kind] = log[-1][3]
    return target
