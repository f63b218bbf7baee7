"""Explicit random state: seeds and generators, never the global RNG.

Also the fast samplers that several schemes share (truncated normal).
"""

from __future__ import annotations

import hashlib
import math
import secrets

import numpy as np
import torch

SeedLike = int | np.random.Generator | torch.Generator | None

# Elements per block of the rejection sampler: small enough that a block and its mask stay
# in cache, large enough that per-block Python overhead is negligible.
_BLOCK = 1 << 20


def fresh_seed() -> int:
    """A new 63-bit seed from the operating system (does not touch any global RNG)."""
    return secrets.randbits(63)


def derive_seed(seed: int, *keys: object) -> int:
    """A 63-bit seed determined by ``seed`` and ``keys`` (e.g. a parameter name).

    Used so that each parameter of a model draws from its own stream: values then do not
    depend on the order in which parameters are visited or on which others exist.
    """
    text = "\x1f".join([str(int(seed)), *map(str, keys)]).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little") >> 1


def as_seed(seed: int | np.random.Generator | None) -> int:
    """An int seed from an int, a NumPy generator (one draw from it) or ``None`` (fresh)."""
    if seed is None:
        return fresh_seed()
    if isinstance(seed, np.random.Generator):
        return int(seed.integers(0, 2**63 - 1))
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise TypeError(f"seed must be an int, a numpy.random.Generator or None; got {seed!r}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0; got {seed}")
    return int(seed)


def make_generator(seed: SeedLike, device: torch.device | str = "cpu") -> torch.Generator:
    """A ``torch.Generator`` on ``device``: the given one, or one seeded from ``seed``."""
    if isinstance(seed, torch.Generator):
        return seed
    generator = torch.Generator(device=device)
    generator.manual_seed(as_seed(seed))
    return generator


def _phi_cdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def truncated_standard_normal_(
    tensor: torch.Tensor, low: float, high: float, generator: torch.Generator
) -> torch.Tensor:
    """Fill ``tensor`` in place with ``N(0, 1)`` truncated to ``[low, high]``.

    On the CPU, when at least a quarter of the mass lies inside the bounds, draws normals and
    redraws the out-of-range ones until none remain (exact, and far faster than the inverse
    CDF, whose ``erfinv`` is slow on CPUs). Otherwise, and on accelerators (no host syncs),
    uses the inverse CDF: ``x = sqrt(2) erfinv(u)``, ``u ~ U(2 Phi(low) - 1, 2 Phi(high) - 1)``.
    Both give exactly the truncated normal distribution.
    """
    if not low < high:
        raise ValueError(f"truncation bounds must satisfy low < high; got [{low}, {high}]")
    if tensor.numel() == 0:
        return tensor
    mass = _phi_cdf(high) - _phi_cdf(low)
    if tensor.device.type != "cpu" or mass < 0.25:
        return _inverse_cdf_(tensor, low, high, generator)
    target = (
        tensor
        if tensor.is_contiguous()
        else torch.empty_like(tensor, memory_format=torch.contiguous_format)
    )
    flat = target.view(-1)
    for start in range(0, flat.numel(), _BLOCK):
        block = flat[start : start + _BLOCK]
        block.normal_(0.0, 1.0, generator=generator)
        bad = ((block < low) | (block > high)).nonzero().squeeze(1)
        while bad.numel():
            draws = torch.empty(bad.numel(), dtype=block.dtype).normal_(generator=generator)
            inside = (draws >= low) & (draws <= high)
            block[bad[inside]] = draws[inside]
            bad = bad[~inside]
    if target is not tensor:
        tensor.copy_(target)
    return tensor


def _inverse_cdf_(
    tensor: torch.Tensor, low: float, high: float, generator: torch.Generator
) -> torch.Tensor:
    # Work in at least float32 (and float64 when the region is far in a tail) for accuracy.
    work_dtype = torch.float64 if min(abs(low), abs(high)) > 5 else torch.float32
    if tensor.dtype == torch.float64:
        work_dtype = torch.float64
    work = tensor if tensor.dtype == work_dtype else torch.empty_like(tensor, dtype=work_dtype)
    lo, hi = 2 * _phi_cdf(low) - 1, 2 * _phi_cdf(high) - 1
    work.uniform_(lo, hi, generator=generator)
    work.erfinv_().mul_(math.sqrt(2.0)).clamp_(low, high)
    if work is not tensor:
        tensor.copy_(work)
    return tensor
