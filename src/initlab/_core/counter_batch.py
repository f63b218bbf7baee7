"""Many small counter-stream fills as one: the words of all tensors in one vectorized Philox
call, the float transform in one pass, then each tensor's slice copied into it.

Per-tensor fills of tiny tensors (10,000 ``Linear(4, 4)``) spend their time on per-call
overhead (a Philox state set, a chain of torch operations per tensor). Here a scheme's fill
runs against a :class:`RecordingStream`, which records ``(tensor, affine step, transform)``
instead of computing; :func:`fill_recorded` then groups the records that share their whole
transform (same distribution arguments, dtype and device) and computes each group at once with
:func:`initlab._core.philox.philox4x64` over arrays of keys and counters. Every element goes
through the same integer and float operations as in a per-tensor fill
(:func:`initlab._core.counter_rng.values_from_words`), so the values are the same bits.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from initlab._core.counter_rng import (
    CounterStream,
    affine_step,
    values_from_words,
    words,
    work_dtype_of,
)
from initlab._core.philox import philox4x64, words32


@dataclass(frozen=True)
class RecordingStream(CounterStream):
    """A counter stream whose fills are appended to ``log`` (run them with
    :func:`fill_recorded`) as ``(key, start, tensor, transform)``: for whole tensors or row
    blocks (one contiguous run of logical indices from ``start``)."""

    log: list[Any] = field(default_factory=list, compare=False, repr=False)

    def _fill_(self, tensor, half, mid, post, work_dtype=None):
        if tuple(tensor.shape) != self.local_shape:
            raise ValueError(
                f"counter stream covers shape {self.local_shape}; got a tensor of shape "
                f"{tuple(tensor.shape)}"
            )
        if tensor.numel():
            transform = (half, mid, post, work_dtype_of(tensor.dtype, work_dtype))
            self.log.append((self.key, self.start(), tensor, transform))
        return tensor

    def start(self) -> int:
        """The logical index of the first element (the stream covers one contiguous run)."""
        if self.block is None and self.local is None:
            return 0
        starts, length = self._runs()
        if starts.size != 1 or length != math.prod(self.local_shape):
            raise ValueError("a recorded fill must be one contiguous run (a whole row block)")
        return int(starts[0])


# Below this many runs a CPU batch sets NumPy's Philox per run (~6 us each) rather than run
# Philox in torch operations (~1.5 ms per call; measured equal near 256 runs of 16 words).
_NUMPY_RUNS = 256


def run_words(
    keys: np.ndarray, starts: np.ndarray, counts: np.ndarray, device: torch.device
) -> torch.Tensor:
    """The 32-bit words (int64) of runs ``starts[r] .. starts[r] + counts[r] - 1`` of the
    streams ``keys[r]`` (uint64 array of shape ``(runs, 2)``), concatenated, on ``device``:
    the blocks each run covers, for all runs in one Philox call.

    On the CPU, fewer than ``_NUMPY_RUNS`` runs take NumPy's Philox run by run instead (the same
    words): the torch-operations Philox costs ~1.5 ms per call whatever its size, so a sweep
    that initializes 64 small MLPs one by one spent half its time there."""
    if device.type == "cpu" and keys.shape[0] < _NUMPY_RUNS:
        parts = [
            words((int(k0), int(k1)), int(start), int(count))
            for (k0, k1), start, count in zip(keys, starts, counts, strict=True)
        ]
        return torch.from_numpy(np.concatenate(parts).astype(np.int64) & 0xFFFFFFFF)
    first, last = starts // 8, (starts + counts - 1) // 8
    blocks = last - first + 1
    block_at = np.cumsum(blocks) - blocks  # where each run's blocks begin
    counter = np.arange(int(blocks.sum()), dtype=np.int64) + np.repeat(first - block_at, blocks)
    k0, k1 = (torch.from_numpy(np.repeat(keys[:, i], blocks).view(np.int64)) for i in (0, 1))
    out = philox4x64(torch.from_numpy(counter).to(device), k0.to(device), k1.to(device))
    element_at = np.cumsum(counts) - counts
    position = np.arange(int(counts.sum()), dtype=np.int64) + np.repeat(
        8 * block_at + starts % 8 - element_at, counts
    )
    return words32(out, torch.from_numpy(position).to(device))


def fill_recorded(log: list[Any]) -> None:
    """Compute the recorded fills ``(key, start, tensor, (half, mid, post, work dtype))``,
    one group of equal transforms, dtype and device at a time."""
    groups: dict[tuple[Any, ...], list[tuple[tuple[int, int], int, torch.Tensor]]] = {}
    for key, start, tensor, transform in log:
        groups.setdefault((*transform, tensor.dtype, tensor.device), []).append(
            (key, start, tensor)
        )
    for (half, mid, post, work, _, device), members in groups.items():
        _fill_group(members, affine_step(half, mid, work), post, work, device)
    log.clear()


def _fill_group(
    members: list[tuple[tuple[int, int], int, torch.Tensor]],
    affine: tuple[float, float, int],
    post: Callable[[torch.Tensor], None] | None,
    work: torch.dtype,
    device: torch.device,
) -> None:
    keys = np.array([key for key, _, _ in members], dtype=np.uint64)
    starts = np.array([start for _, start, _ in members], dtype=np.int64)
    targets = [t for _, _, t in members]
    counts = np.array([t.numel() for t in targets], dtype=np.int64)
    values = values_from_words(run_words(keys, starts, counts, device), affine, post, work)
    shape = targets[0].shape
    with torch.no_grad():
        if all(t.shape == shape for t in targets):  # one shape: views made in one call
            pieces = list(values.view(len(targets), *shape).unbind(0))
            torch._foreach_copy_(targets, pieces)
            return
        for target, piece in zip(targets, values.split(counts.tolist()), strict=True):
            target.copy_(piece.view(target.shape))
