"""Memory a gradient check needs, estimated before anything large is allocated.

A check that cannot fit should be refused with the estimate in one line, not end in the
allocator's error (or the kernel's out-of-memory killer) minutes later. The figures are upper
estimates in bytes (float64 everywhere):

* parameters: the model's own copy, the float64 copy, its gradient and the leaves
  back-propagation runs on: about ``32 P`` bytes for ``P`` parameters;
* fast mode: ``directions`` sign vectors per tensor, the two perturbed copies and their
  concatenation, for each tensor and once for all tensors together: ``5 * directions * P * 8``;
* full and sample modes hold at most ``2**20`` perturbed entries at once (``_CHUNK_ELEMENTS``).

Activations depend on the model; callers that know them (the CLI's MLP) add them.
"""

from __future__ import annotations

import os

from initlab.gradient_check.numerics import _CHUNK_ELEMENTS

GIB = 1024**3


def check_bytes(
    parameters: int, mode: str, directions: int, activations: int = 0, largest: int | None = None
) -> int:
    """Bytes a check of ``parameters`` entries needs (see the module docstring)."""
    needed = 32 * parameters + activations
    if mode == "fast":
        needed += 5 * directions * 8 * (parameters + (parameters if largest is None else largest))
    else:
        needed += 3 * 8 * _CHUNK_ELEMENTS
    return needed


def available_bytes() -> int | None:
    """Memory this process may still use: ``MemAvailable`` from ``/proc/meminfo``, else the
    physical memory, else ``None`` (unknown: no refusal)."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def refuse_if_too_big(needed: int, what: str, advice: str) -> None:
    """A ``ValueError`` with the estimate when ``needed`` bytes exceed what is available."""
    free = available_bytes()
    if free is not None and needed > free:
        raise ValueError(
            f"{what} needs about {needed / GIB:,.1f} GiB of memory; about {free / GIB:,.1f} GiB "
            f"is available: {advice}"
        )
