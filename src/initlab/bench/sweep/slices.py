"""How many members one vmapped ensemble trains at a time: slices sized for the allocator.

A vmapped step makes every activation for all its members at once, ``(B, N, ...)``. glibc's
allocator does not keep such tensors' memory: a tensor over its mmap threshold (which grows to at
most 32 MiB) gets fresh pages from the operating system that are returned when it is freed, and
freed heap memory beyond twice the threshold is returned too; so with activations of tens of
MB every step pays a page fault per 4 KiB of every large tensor. Measured on 2 cores
(``benchmarks/sweep_speed.py`` sweeps, 20 and 5 iterations):

- 32 digits MLPs 64-128-128-10 (22 MB activations): 1.78 s in one ensemble, 1.53-1.55 s in
  slices of 8-16 (0.15 million page faults against almost none), 1.82 s in slices of 4;
- 16 small CNNs (88 MB activations): 11.2 s in one ensemble (3.6 million page faults), 8.5 s in
  slices of 4, 5.5 s in slices of 2.

So an ensemble trains its members in slices whose largest activation stays within
:data:`SLICE_BYTES`, at least two members a slice (a slice of one would need its twin, see
:func:`initlab.bench.sweep.ensemble.train_ensemble`). A member's numbers do not depend on its
slice: every op of the ensemble is per member.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
from torch import nn

SLICE_BYTES = 8 << 20  # the largest activation one slice may make


def activation_elements(model: nn.Module, x: torch.Tensor) -> int:
    """Elements per example of the largest tensor that ``model``'s forward makes, counted over
    the outputs of all its modules (and the input): forwards on one and on two examples of
    ``x`` (in eval mode, without gradients, the global RNG left as it was), each output's
    growth from one to two examples. A forward whose module calls differ between the two
    counts its largest output on two examples, halved."""
    sizes: list[list[int]] = [[], []]
    record = sizes[0]

    def hook(module: nn.Module, args: object, output: object) -> None:
        leaves = output if isinstance(output, tuple | list) else (output,)
        record.append(sum(t.numel() for t in leaves if isinstance(t, torch.Tensor)))

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            for n in (1, 2):
                record = sizes[n - 1]
                model(x[:n])
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    per_example = int(x[:1].numel())
    if len(sizes[0]) == len(sizes[1]):
        growth = [two - one for one, two in zip(sizes[0], sizes[1], strict=True)]
        return max([per_example, *growth])
    return max([per_example, *(s // 2 for s in sizes[1])])


def member_slices(members: int, member_bytes: int, limit: int | None = None) -> list[slice]:
    """Cut ``members`` into the fewest slices of nearly equal size whose ``member_bytes`` each
    (the largest activation of one member) add up to at most ``limit``, at least two members
    a slice (one slice when there are fewer than four); ``limit`` defaults to
    :data:`SLICE_BYTES`."""
    limit = SLICE_BYTES if limit is None else limit
    most = max(2, limit // max(member_bytes, 1))
    count = max(1, min(-(-members // most), members // 2))
    base, extra = divmod(members, count)
    bounds = [0]
    for i in range(count):
        bounds.append(bounds[-1] + base + (i < extra))
    return [slice(a, b) for a, b in itertools.pairwise(bounds)]


def slices_for(models: Sequence[nn.Module], x: torch.Tensor, dtype: torch.dtype) -> list[slice]:
    """:func:`member_slices` for ``models`` trained on the inputs ``x`` (N examples) in
    ``dtype``; only the two probe examples are converted."""
    if len(models) < 4:
        return [slice(0, len(models))]
    elements = activation_elements(models[0], x[:2].to(dtype))
    itemsize = torch.empty(0, dtype=dtype).element_size()
    return member_slices(len(models), elements * x.shape[0] * itemsize)


__all__ = ["SLICE_BYTES", "activation_elements", "member_slices", "slices_for"]
