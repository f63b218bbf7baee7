"""Explicit random state: seeds and generators, never the global RNG.

Also the fast samplers that several schemes share (truncated normal).
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import secrets
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import numpy as np
import torch

T = TypeVar("T")

SeedLike = int | np.random.Generator | torch.Generator | None

# The CPU truncated-normal sampler works on chunks of _CHUNK elements, each drawn from its own
# generator seeded from the caller's (so values depend on this constant, never on the number of
# threads), in blocks of _BLOCK elements that stay in cache across the uniform -> erfinv ->
# scale -> clamp passes.
_CHUNK = 1 << 22
_BLOCK = 1 << 16

# Set in worker threads of parallel_map, so nested calls run serially instead of oversubscribing.
_worker = threading.local()


def parallel_map(fn: Callable[[T], None], items: Sequence[T], workers: int | None = None) -> None:
    """Call ``fn(item)`` for every item, on up to ``workers`` threads (default: torch's
    intra-op thread count), serially when there is one item, one worker, or when already
    inside a worker. ``fn`` must be independent per item (its own generator): results then do
    not depend on the number of threads. Exceptions propagate, the first one in item order.
    Workers run in the caller's grad mode (``torch.no_grad`` is thread-local).
    """
    workers = torch.get_num_threads() if workers is None else workers
    workers = min(workers, len(items))
    if workers <= 1 or getattr(_worker, "active", False):
        for item in items:
            fn(item)
        return

    grad = torch.is_grad_enabled()  # grad mode is per thread: workers take the caller's

    def run(item: T) -> None:
        _worker.active = True
        try:
            with torch.set_grad_enabled(grad):
                fn(item)
        finally:
            _worker.active = False

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="initlab") as pool:
        for future in [pool.submit(run, item) for item in items]:
            future.result()


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


@contextlib.contextmanager
def seeded_global_rng(seed: int, devices: Sequence[torch.device] = ()) -> Iterator[None]:
    """Inside the block torch's global CPU generator, and the CUDA generators of ``devices``,
    are seeded with ``seed``; on exit all of them are restored, so the caller's random state
    is as before. For code that can only draw from the global RNG (PyTorch's default init in
    module constructors, ``reset_parameters()``, dropout layers).

    Not ``torch.manual_seed`` inside ``torch.random.fork_rng(devices=[])``: that reseeds every
    CUDA, MPS and XPU generator and restores none of them.
    """
    cuda = sorted(
        {
            d.index if d.index is not None else torch.cuda.current_device()
            for d in map(torch.device, devices)
            if d.type == "cuda"
        }
    )
    with torch.random.fork_rng(devices=cuda):
        torch.default_generator.manual_seed(seed)
        for index in cuda:
            torch.cuda.default_generators[index].manual_seed(seed)
        yield


_cached = threading.local()


def reseeded_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A generator on ``device`` freshly seeded with ``seed``: the same stream as
    ``make_generator(seed, device)``, but reused per thread and device, since creating a
    generator per parameter costs noticeable time on accelerators. Always reseeded before it
    is returned, so no state carries over between calls.
    """
    device = torch.device(device)
    if device.type != "cpu" and device.index is None:
        device = torch.device(device.type, torch.get_device_module(device.type).current_device())
    cache = _cached.__dict__.setdefault("generators", {})
    generator = cache.get(device)
    if generator is None:
        generator = cache[device] = torch.Generator(device=device)
    generator.manual_seed(seed)
    return generator


def _phi_cdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def truncated_standard_normal_(
    tensor: torch.Tensor,
    low: float,
    high: float,
    generator: torch.Generator,
    *,
    scale: float = 1.0,
    shift: float = 0.0,
) -> torch.Tensor:
    """Fill ``tensor`` in place with ``shift + scale * z``, ``z ~ N(0, 1)`` truncated to
    ``[low, high]`` (so ``TruncatedNormal(mean, std)`` is ``scale=std, shift=mean`` with the
    bounds standardized; scaling inside the sampler saves two passes over memory).

    Inverse CDF: ``x = sqrt(2) erfinv(u)``, ``u ~ U(2 Phi(low) - 1, 2 Phi(high) - 1)``, which
    is exactly the truncated normal (``P(x <= t) = (Phi(t) - Phi(low)) / (Phi(high) -
    Phi(low))``); a final clamp only absorbs float rounding at the bounds. Computed in float32
    (float64 for float64 tensors, or when both bounds lie more than 5 std out in one tail).

    On the CPU, tensors of more than ``_CHUNK`` elements are cut into chunks of ``_CHUNK``,
    chunk ``i`` drawing from a generator seeded by the ``i``-th of ``n_chunks`` int64 draws
    from ``generator``; chunks run on torch's intra-op threads and each is processed in
    cache-sized blocks. Same generator state, same values, whatever the thread count.
    On accelerators the whole tensor is one pass of a few element-wise kernels, no host sync
    (chunk by chunk through a float32 buffer for half-precision tensors). Extra memory: one
    block (CPU) or chunk (accelerator) buffer for dtypes other than the work dtype.
    """
    if not low < high:
        raise ValueError(f"truncation bounds must satisfy low < high; got [{low}, {high}]")
    if tensor.numel() == 0:
        return tensor
    work_dtype = torch.float64 if min(abs(low), abs(high)) > 5 else torch.float32
    if tensor.dtype == torch.float64:
        work_dtype = torch.float64
    u_low, u_high = 2 * _phi_cdf(low) - 1, 2 * _phi_cdf(high) - 1
    bounds = (u_low, u_high, low, high)
    if tensor.device.type != "cpu":
        if tensor.dtype == work_dtype:
            _inverse_cdf_(tensor, *bounds, generator, scale, shift)
        else:  # chunk-sized work buffer: no full-size temporary
            flat = tensor.view(-1) if tensor.is_contiguous() else tensor.reshape(-1)
            _blocks_(flat, *bounds, generator, scale, shift, work_dtype, _CHUNK)
            if not tensor.is_contiguous():
                tensor.copy_(flat.view(tensor.shape))
        return tensor
    # Parameters are contiguous; other tensors go through one contiguous copy.
    target = tensor if tensor.is_contiguous() else torch.empty(tensor.shape, dtype=tensor.dtype)
    flat = target.view(-1)
    n = flat.numel()
    if n <= _CHUNK:
        _blocks_(flat, *bounds, generator, scale, shift, work_dtype, _BLOCK)
    else:
        count = -(-n // _CHUNK)
        seeds = torch.randint(0, 2**62, (count,), generator=generator).tolist()

        def fill(index: int) -> None:
            chunk_generator = torch.Generator().manual_seed(seeds[index])
            chunk = flat[index * _CHUNK : (index + 1) * _CHUNK]
            _blocks_(chunk, *bounds, chunk_generator, scale, shift, work_dtype, _BLOCK)

        parallel_map(fill, range(count))
    if target is not tensor:
        tensor.copy_(target)
    return tensor


def _blocks_(
    flat: torch.Tensor, u_low: float, u_high: float, low: float, high: float,
    generator: torch.Generator, scale: float, shift: float, work_dtype: torch.dtype, size: int,
) -> None:  # fmt: skip
    """Fill ``flat`` block by block; blocks are drawn in ``work_dtype`` (a block-sized buffer
    when ``flat`` has another dtype) and rounded to ``flat``'s dtype after scaling."""
    buffer = None
    if flat.dtype != work_dtype:
        buffer = torch.empty(min(size, flat.numel()), dtype=work_dtype, device=flat.device)
    for start in range(0, flat.numel(), size):
        block = flat[start : start + size]
        work = block if buffer is None else buffer[: block.numel()]
        _inverse_cdf_(work, u_low, u_high, low, high, generator, scale, shift)
        if buffer is not None:
            block.copy_(work)


def _inverse_cdf_(
    work: torch.Tensor, u_low: float, u_high: float, low: float, high: float,
    generator: torch.Generator, scale: float, shift: float,
) -> None:  # fmt: skip
    work.uniform_(u_low, u_high, generator=generator)
    work.erfinv_().mul_(math.sqrt(2.0)).clamp_(low, high)
    if scale != 1.0:
        work.mul_(scale)
    if shift != 0.0:
        work.add_(shift)
