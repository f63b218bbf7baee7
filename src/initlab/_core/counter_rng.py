"""A counter-based generator: each element's value is a pure function of its logical index.

``CounterStream(key, shape)`` stands for the random values of one logical (unsharded) tensor of
``shape``. Element ``i`` (its flat, row-major index in the logical tensor) draws the 32-bit word

    word(i) = half (i mod 2) of uint64 word ((i mod 8) // 2) of Philox4x64-10(counter=i // 8, key)

(NumPy's ``np.random.Philox``; the 128-bit key comes from the seed and the parameter's
qualified name, :func:`counter_key`). The word becomes an odd-centred uniform in ``(-1, 1)``,

    v(i) = (floor(word / 2^8) + 1/2) 2^-23      (word as a signed int32; exact in float32)

and the schemes transform ``v`` element by element, with correctly rounded or
position-independent operations only: ``U(low, high) = mid + half v``; ``N(mean, std) = mean +
std sqrt(2) erfinv(v)``; the normal truncated to ``[a, b]`` maps ``v`` affinely onto
``(2 Phi(a) - 1, 2 Phi(b) - 1)`` before the same ``erfinv`` (inverse CDF: no rejection loop,
so no element depends on another). float64 tensors use ``v = (word + 1/2) 2^-31`` and float64
arithmetic; half-precision ones are computed in float32 and rounded.

On the CPU the words come from NumPy's Philox; on any other device from the same Philox
written in torch integer operations (:mod:`initlab._core.philox`), computed on that device:
the words and the uniform values are the same bits everywhere; normal values go through the
device's ``erfinv`` and may differ from the CPU's in the last bits.

So any rectangular part of the tensor -- a Shard(0) or Shard(1) slice, an uneven last shard, a
gate block -- is computed directly, without the rest, and equals the same part of the whole:
values do not depend on world size, placement, chunking, thread count or the order in which
parameters are visited. ``CounterStream.part(offsets, sizes)`` narrows a stream to such a part.
"""

from __future__ import annotations

import functools
import hashlib
import math
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from initlab._core.philox import philox4x64, words32
from initlab._core.rng import parallel_map

# Elements per piece: Philox words and the float transform (2 MB) stay in the L2/L3 cache.
# Each piece costs ~40 us of Python and NumPy state setting; at 32k elements that was 15% of a
# normal fill on one core, and worker threads then queued for the GIL (two threads filled one
# tensor slower than one). 2^18 measured best on a 2-core AMD EPYC (benchmarks/init_speed.py).
_PIECE = 1 << 18
# Pieces of one tensor are spread over threads above this many elements (values do not change:
# each element is a pure function of its index).
_PARALLEL = 1 << 20
# A piece of short runs is generated as the span it covers when that wastes less than this
# factor of words; otherwise each run sets the Philox counter on its own.
_RUN_COST = 512  # elements' worth of time that setting a counter costs (measured: ~1.5 us)

# Elements per chunk of the torch-operations path (accelerators): ~20 int64 temporaries of
# chunk / 8 blocks each stay below 0.2 GB.
_DEVICE_CHUNK = 1 << 24
# Tests set this to run the torch-operations path on the CPU (the NumPy path is faster there).
_TORCH_WORDS = False

_local = threading.local()  # one Philox bit generator per thread, its state set per run

_SQRT2 = math.sqrt(2.0)


def counter_key(seed: int, name: str) -> tuple[int, int]:
    """The 128-bit Philox key of the parameter ``name`` under ``seed`` (BLAKE2b of both)."""
    return counter_keyer(seed)(name)


def counter_keyer(seed: int) -> Callable[[str], tuple[int, int]]:
    """``counter_key(seed, name)`` for many names: the hash state after the common prefix is
    computed once and copied per name (the same bytes are hashed, so the same keys)."""
    base = hashlib.blake2b(f"initlab-counter\x1f{int(seed)}\x1f".encode(), digest_size=16)

    def key(name: str) -> tuple[int, int]:
        h = base.copy()
        h.update(name.encode())
        digest = h.digest()
        return int.from_bytes(digest[:8], "little"), int.from_bytes(digest[8:], "little")

    return key


def words(key: tuple[int, int], start: int, count: int) -> np.ndarray:
    """The int32 words of logical elements ``start .. start + count - 1``."""
    if count <= 0:
        return np.empty(0, dtype=np.int32)
    block = start // 8  # Philox counter of the first element
    # NumPy's Philox increments its counter before each block: start from block - 1 (mod 2^256).
    counter = [block - 1, 0, 0, 0] if block else [2**64 - 1] * 4
    bit_generator = getattr(_local, "philox", None)
    if bit_generator is None:
        bit_generator = _local.philox = np.random.Philox(key=[0, 0])
    # Setting the state costs ~1 us; constructing a Philox costs ~20 us (it reads OS entropy).
    bit_generator.state = {
        "bit_generator": "Philox",
        "state": {"counter": np.array(counter, dtype=np.uint64), "key": np.array(key, np.uint64)},
        "buffer": np.zeros(4, dtype=np.uint64),
        "buffer_pos": 4,
        "has_uint32": 0,
        "uinteger": 0,
    }
    first = start - 8 * block
    raw = bit_generator.random_raw(-(-(first + count) // 2))
    if sys.byteorder == "little":
        halves = raw.view(np.int32)
    else:  # low half first, as on little-endian machines
        halves = np.empty(2 * raw.size, dtype=np.uint32)
        halves[0::2], halves[1::2] = raw & 0xFFFFFFFF, raw >> np.uint64(32)
        halves = halves.view(np.int32)
    return halves[first : first + count]


def flat_runs(
    shape: Sequence[int], offsets: Sequence[int], sizes: Sequence[int]
) -> tuple[np.ndarray, int]:
    """The part ``offsets``/``sizes`` of a row-major tensor of ``shape`` as contiguous runs of
    flat indices: the runs' starts (in the part's row-major order) and their common length."""
    if not shape:
        return np.zeros(1, dtype=np.int64), 1
    # Trailing dims covered in full merge into the run.
    k = len(shape) - 1
    while k > 0 and sizes[k] == shape[k] and offsets[k] == 0:
        k -= 1
    length = math.prod(sizes[k:])
    strides = [math.prod(shape[d + 1 :]) for d in range(len(shape))]
    starts = np.zeros(1, dtype=np.int64)
    for d in range(k):
        axis = (np.arange(sizes[d], dtype=np.int64) + offsets[d]) * strides[d]
        starts = (starts[:, None] + axis[None, :]).reshape(-1)
    return starts + offsets[k] * strides[k], length


@dataclass(frozen=True)
class CounterStream:
    """The values of one logical tensor, or of a rectangular ``part`` of it.

    ``key``: the Philox key (:func:`counter_key`). ``shape``: the logical tensor's shape (the
    whole parameter). ``block``: ``(offsets, sizes)`` of the sub-tensor a scheme fills as one
    logical tensor (the whole parameter, or one gate/projection block of it; its fans and,
    for orthogonal, its matrix). ``local``: ``(offsets, sizes)`` of the part of ``block`` that
    this tensor holds, relative to ``block`` (the whole block unless sharded).
    """

    key: tuple[int, int]
    shape: tuple[int, ...]
    block: tuple[tuple[int, ...], tuple[int, ...]] | None = None
    local: tuple[tuple[int, ...], tuple[int, ...]] | None = None

    # ------------------------------------------------------------------ geometry
    @property
    def block_offsets(self) -> tuple[int, ...]:
        return self.block[0] if self.block else (0,) * len(self.shape)

    @property
    def block_shape(self) -> tuple[int, ...]:
        """The shape of the logical tensor a scheme sees (fans come from it)."""
        return self.block[1] if self.block else self.shape

    @property
    def local_shape(self) -> tuple[int, ...]:
        """The shape of the tensor this stream fills."""
        return self.local[1] if self.local else self.block_shape

    @property
    def is_partial(self) -> bool:
        """Whether the filled tensor is a strict part of the block (a shard)."""
        return self.local is not None and self.local[1] != self.block_shape

    def whole(self) -> CounterStream:
        """The stream of the whole block (for schemes that need all of it)."""
        return CounterStream(self.key, self.shape, self.block)

    def local_slices(self) -> tuple[slice, ...]:
        """Index of the local part inside the whole block."""
        offsets, sizes = self.local or ((0,) * len(self.shape), self.block_shape)
        return tuple(slice(o, o + s) for o, s in zip(offsets, sizes, strict=True))

    def rows(self, start: int, stop: int) -> CounterStream:
        """The stream of rows ``start:stop`` (dim 0) of the block, as a new block."""
        offsets, sizes = self.block_offsets, self.block_shape
        return CounterStream(
            self.key, self.shape, ((offsets[0] + start, *offsets[1:]), (stop - start, *sizes[1:]))
        )

    def derived(self, label: str, shape: Sequence[int]) -> CounterStream:
        """An independent stream of ``shape`` for extra draws a scheme needs for this block
        (orthogonal's Gaussian matrix, sparse's column choices): its key hashes this key, the
        block and ``label``."""
        text = f"{self.key}\x1f{self.block}\x1f{label}".encode()
        digest = hashlib.blake2b(text, digest_size=16).digest()
        key = (int.from_bytes(digest[:8], "little"), int.from_bytes(digest[8:], "little"))
        return CounterStream(key, tuple(shape))

    def seed(self) -> int:
        """A 63-bit seed for this block, for code that can only draw from a torch generator."""
        text = f"{self.key}\x1f{self.block}\x1fseed".encode()
        return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little") >> 1

    def part(self, offsets: Sequence[int], sizes: Sequence[int]) -> CounterStream:
        """The stream of the part ``offsets``/``sizes`` of the block (relative to it)."""
        return CounterStream(self.key, self.shape, self.block, (tuple(offsets), tuple(sizes)))

    def _runs(self) -> tuple[np.ndarray, int]:
        """Flat logical indices where the local part's contiguous runs start, and their length."""
        offsets = [b + o for b, o in zip(self.block_offsets, self.local_offsets(), strict=True)]
        return flat_runs(self.shape, offsets, self.local_shape)

    def local_offsets(self) -> tuple[int, ...]:
        return self.local[0] if self.local else (0,) * len(self.shape)

    # ------------------------------------------------------------------ values
    # Each distribution is ``post(a j + b)`` with ``j`` the integer part of the word (``v = j
    # unit + unit / 2``): the affine step is folded into one multiply and one add, each
    # correctly rounded, so every element gets the same bits wherever it is computed.
    def uniform_(self, tensor: torch.Tensor, low: float, high: float) -> torch.Tensor:
        """``U(low, high)``: ``(low + high) / 2 + (high - low) / 2 * v``."""
        mid, half = (low + high) / 2, (high - low) / 2
        return self._fill_(tensor, half, mid, None)

    def normal_(self, tensor: torch.Tensor, mean: float, std: float) -> torch.Tensor:
        """``N(mean, std^2)``: ``mean + std sqrt(2) erfinv(v)``."""
        return self._fill_(tensor, 1.0, 0.0, _normal_post(mean, std))

    def truncated_normal_(
        self, tensor: torch.Tensor, low: float, high: float, scale: float = 1.0, shift: float = 0.0
    ) -> torch.Tensor:
        """``shift + scale z``, ``z ~ N(0, 1)`` truncated to ``[low, high]`` (inverse CDF):
        ``z = sqrt(2) erfinv(c + h v)`` with ``c +/- h = 2 Phi(high|low) - 1``, clamped to the
        bounds against rounding. float64 when both bounds lie beyond 5 std; far tails (both
        bounds beyond 3 std on one side) use ``ndtri`` on the mirrored lower tail."""
        if not low < high:
            raise ValueError(f"truncation bounds must satisfy low < high; got [{low}, {high}]")
        if low * high > 0 and min(abs(low), abs(high)) > 3:
            half, mid, post = _far_tail_plan(low, high, scale, shift)
            return self._fill_(tensor, half, mid, post, torch.float64)
        u_low, u_high = (math.erf(b / _SQRT2) for b in (low, high))
        centre, half = (u_low + u_high) / 2, (u_high - u_low) / 2
        wide = min(abs(low), abs(high)) > 5
        post = _truncated_post(low, high, scale, shift)
        return self._fill_(tensor, half, centre, post, torch.float64 if wide else None)

    # ------------------------------------------------------------------ machinery
    def _fill_(
        self,
        tensor: torch.Tensor,
        half: float,
        mid: float,
        post: Callable[[torch.Tensor], None] | None,
        work_dtype: torch.dtype | None = None,
    ) -> torch.Tensor:
        """Fill ``tensor`` with ``post(mid + half v)``: on the CPU piece by piece with NumPy's
        Philox (on threads when large), elsewhere with torch operations on the tensor's device."""
        if tuple(tensor.shape) != self.local_shape:
            raise ValueError(
                f"counter stream covers shape {self.local_shape}; got a tensor of shape "
                f"{tuple(tensor.shape)}"
            )
        n = tensor.numel()
        if n == 0:
            return tensor
        work_dtype = work_dtype_of(tensor.dtype, work_dtype)
        # Parameters are contiguous; other tensors go through one contiguous copy.
        target = tensor if tensor.is_contiguous() else torch.empty_like(tensor.contiguous())
        flat = target.view(-1)
        affine = affine_step(half, mid, work_dtype)
        if flat.device.type == "cpu" and not _TORCH_WORDS:
            self._fill_numpy_(flat, affine, post, work_dtype)
        else:
            self._fill_torch_(flat, affine, post, work_dtype)
        if target is not tensor:
            tensor.copy_(target)
        return tensor

    def _fill_numpy_(self, flat, affine, post, work_dtype) -> None:
        """CPU: NumPy's Philox, piece by piece (pieces on threads for large tensors)."""
        a, b, shift_bits = affine
        direct = flat.dtype == work_dtype
        np_work = np.float64 if work_dtype == torch.float64 else np.float32

        def fill(piece: tuple[int, np.ndarray, int]) -> None:
            at, starts, length = piece
            j = _gather(self.key, starts, length)  # a fresh array: shifted in place
            if shift_bits:
                np.right_shift(j, shift_bits, out=j)
            count = j.size
            out = flat[at : at + count] if direct else torch.empty(count, dtype=work_dtype)
            values = out.numpy()
            values[...] = j  # exact conversion of j (24 or 32 bits)
            np.multiply(values, np_work(a), out=values)
            np.add(values, np_work(b), out=values)
            if post is not None:
                post(out)
            if not direct:
                flat[at : at + count].copy_(out)

        workers = None if flat.numel() >= _PARALLEL else 1
        parallel_map(fill, _pieces(*self._runs()), workers=workers)

    def _fill_torch_(self, flat, affine, post, work_dtype) -> None:
        """Any device: Philox in torch integer operations (:mod:`initlab._core.philox`) on
        ``flat``'s device, chunk by chunk, then the same float operations as the CPU path."""
        starts, length = self._runs()
        device = flat.device
        starts_t = torch.as_tensor(starts, device=device) if starts.size > 1 else None
        for c0 in range(0, flat.numel(), _DEVICE_CHUNK):
            c1 = min(flat.numel(), c0 + _DEVICE_CHUNK)
            local = torch.arange(c0, c1, device=device)
            if starts_t is None:
                index = local + int(starts[0])
            else:
                index = starts_t[local // length] + local % length
            first = int(starts[c0 // length]) + c0 % length  # the runs ascend
            last = int(starts[(c1 - 1) // length]) + (c1 - 1) % length
            w = _torch_words(self.key, index, first, last)
            flat[c0:c1].copy_(values_from_words(w, affine, post, work_dtype))


def values_from_words(
    w: torch.Tensor,
    affine: tuple[float, float, int],
    post: Callable[[torch.Tensor], None] | None,
    work_dtype: torch.dtype,
) -> torch.Tensor:
    """``post(a j + b)`` in ``work_dtype`` for the 32-bit words ``w`` (int64 holding
    ``0 .. 2^32 - 1``), ``j`` the word as a signed int32 shifted right by ``shift_bits``
    (``affine = (a, b, shift_bits)``): the same float operations as the NumPy path."""
    a, b, shift_bits = affine
    j = (w ^ 0x80000000) - 0x80000000  # the word as a signed int32
    if shift_bits:
        j >>= shift_bits
    out = j.to(work_dtype)
    out.mul_(a).add_(b)
    if post is not None:
        post(out)
    return out


def _torch_words(key: tuple[int, int], index: torch.Tensor, first: int, last: int) -> torch.Tensor:
    """The 32-bit words (in int64) of the logical elements ``index`` (ascending, from
    ``first`` to ``last``), computed on ``index``'s device: the blocks of the span when they
    are few, else one block per element."""
    b0, b1 = first // 8, last // 8
    if 8 * (b1 - b0 + 1) <= 2 * index.numel() + 64:
        blocks = philox4x64(torch.arange(b0, b1 + 1, device=index.device), *key)
        return words32(blocks, index - 8 * b0)
    blocks = philox4x64(index >> 3, *key)
    return words32(blocks, torch.arange(index.numel(), device=index.device) * 8 + (index & 7))


def work_dtype_of(dtype: torch.dtype, requested: torch.dtype | None) -> torch.dtype:
    """The dtype values are computed in: ``requested``, else float64 for float64 tensors and
    float32 for the others (half precision is computed in float32 and rounded)."""
    if requested is not None:
        return requested
    return torch.float64 if dtype == torch.float64 else torch.float32


def affine_step(half: float, mid: float, work_dtype: torch.dtype) -> tuple[float, float, int]:
    """``(a, b, shift_bits)`` with ``mid + half v = a j + b``, ``j = word >> shift_bits``:
    float64 ``v = (w + 1/2) 2^-31``; otherwise ``v = (w >> 8 + 1/2) 2^-23``."""
    unit, shift_bits = (2.0**-31, 0) if work_dtype == torch.float64 else (2.0**-23, 8)
    return half * unit, mid + half * unit / 2, shift_bits


# The float steps after the affine one, made once per distinct argument tuple: equal arguments
# give the same function object, so a batch (:mod:`initlab._core.counter_batch`) can group
# the tensors that share their whole transform.
@functools.lru_cache(maxsize=1024)
def _normal_post(mean: float, std: float) -> Callable[[torch.Tensor], None]:
    scale = std * _SQRT2

    def post(x: torch.Tensor) -> None:
        x.erfinv_().mul_(scale)
        if mean != 0.0:
            x.add_(mean)

    return post


@functools.lru_cache(maxsize=1024)
def _truncated_post(
    low: float, high: float, scale: float, shift: float
) -> Callable[[torch.Tensor], None]:
    def post(x: torch.Tensor) -> None:
        x.erfinv_().mul_(_SQRT2).clamp_(low, high)
        if scale != 1.0:
            x.mul_(scale)
        if shift != 0.0:
            x.add_(shift)

    return post


@functools.lru_cache(maxsize=1024)
def _far_tail_plan(low: float, high: float, scale: float, shift: float):
    """``(half, mid, post)`` of the normal truncated to ``[low, high]`` far in one tail:
    ``ndtri`` on the mirrored lower tail, in float64."""
    sign = -1.0 if low > 0 else 1.0
    a, b = min(sign * low, sign * high), max(sign * low, sign * high)
    phi_a, phi_b = (0.5 * math.erfc(-x / _SQRT2) for x in (a, b))

    def post(x: torch.Tensor) -> None:
        torch.special.ndtri(x, out=x).clamp_(a, b).mul_(sign * scale)
        if shift != 0.0:
            x.add_(shift)

    return (phi_b - phi_a) / 2, (phi_a + phi_b) / 2, post


def _pieces(starts: np.ndarray, length: int) -> list[tuple[int, np.ndarray, int]]:
    """Cut the runs into pieces of about ``_PIECE`` elements, each ``(offset in the local
    tensor, run starts, run length)``: several short runs, or a part of a long one."""
    if length >= _PIECE:
        return [
            (r * length + sub, starts[r : r + 1] + sub, min(_PIECE, length - sub))
            for r in range(starts.size)
            for sub in range(0, length, _PIECE)
        ]
    per_piece = _PIECE // length
    return [
        (i * length, starts[i : i + per_piece], length) for i in range(0, starts.size, per_piece)
    ]


def _gather(key: tuple[int, int], starts: np.ndarray, length: int) -> np.ndarray:
    """The words of the runs ``starts[j] .. starts[j] + length - 1``, concatenated."""
    if starts.size == 1:
        return words(key, int(starts[0]), length)
    span = int(starts[-1]) + length - int(starts[0])
    if span <= starts.size * (length + _RUN_COST):  # generate the span, keep what is ours
        all_words = words(key, int(starts[0]), span)
        index = (starts - starts[0])[:, None] + np.arange(length, dtype=np.int64)[None, :]
        return all_words[index.reshape(-1)]
    return np.concatenate([words(key, int(s), length) for s in starts])
