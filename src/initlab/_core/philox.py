"""Philox4x64-10 in torch integer operations, on any device, vectorized over keys and counters.

The same function as NumPy's ``np.random.Philox`` (Salmon et al., "Parallel random numbers:
as easy as 1, 2, 3", SC 2011): the 256-bit counter ``(c0, c1, c2, c3)`` goes through ten rounds

    (c0, c1, c2, c3) <- (hi(M1 c2) ^ c1 ^ k0,  lo(M1 c2),  hi(M0 c0) ^ c3 ^ k1,  lo(M0 c0))

with the 128-bit key ``(k0, k1)`` bumped by ``(W0, W1)`` between rounds (all mod 2^64;
``hi``/``lo`` the halves of the 128-bit product). torch has no uint64 arithmetic, so the
words live in int64 tensors holding the same 64 bits: additions, multiplications (low half)
and xor wrap alike; the high half of a 64x64-bit product is assembled from four 32x32-bit
partial products, and right shifts are masked to be logical. Every operation is exact
integer arithmetic, so the words are bit-identical on every device and thread count.

Here ``c1 = c2 = c3 = 0`` (the counter stream never exceeds 2^64 blocks); keys may be Python
ints (one stream) or int64 tensors broadcastable with the counters (many streams at once).
"""

from __future__ import annotations

import torch

_M0 = 0xD2E7470EE14C6C93
_M1 = 0xCA5A826395121157
_W0 = 0x9E3779B97F4A7C15
_W1 = 0xBB67AE8584CAA73B
_MASK32 = 0xFFFFFFFF
_ROUNDS = 10

KeyPart = int | torch.Tensor


def signed64(value: int) -> int:
    """The int64 with the same 64 bits as the unsigned ``value`` (taken mod 2^64)."""
    value &= (1 << 64) - 1
    return value - (1 << 64) if value >= 1 << 63 else value


def unsigned64(value: int) -> int:
    """The unsigned 64-bit integer with the bits of int64 ``value``."""
    return value & ((1 << 64) - 1)


def _mulhilo(a: torch.Tensor, m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(hi, lo)`` of the 128-bit product of the 64-bit words ``a`` and the constant ``m``."""
    m0, m1 = m & _MASK32, m >> 32
    a0 = a & _MASK32
    a1 = (a >> 32) & _MASK32  # logical shift
    lo = a * signed64(m)  # wraps mod 2^64
    p00, p01, p10, p11 = a0 * m0, a0 * m1, a1 * m0, a1 * m1  # each < 2^64, wraps into int64
    middle = ((p00 >> 32) & _MASK32) + (p01 & _MASK32) + (p10 & _MASK32)  # < 3 * 2^32
    hi = p11 + ((p01 >> 32) & _MASK32) + ((p10 >> 32) & _MASK32) + (middle >> 32)
    return hi, lo


def _bump(key: KeyPart, weyl: int) -> KeyPart:
    if isinstance(key, torch.Tensor):
        return key + signed64(weyl)
    return (key + weyl) & ((1 << 64) - 1)


def _xor(x: torch.Tensor, key: KeyPart) -> torch.Tensor:
    return x ^ (key if isinstance(key, torch.Tensor) else signed64(key))


def philox4x64(counter: torch.Tensor, k0: KeyPart, k1: KeyPart) -> torch.Tensor:
    """The four 64-bit output words (as int64, shape ``counter.shape + (4,)``) of
    Philox4x64-10 at counters ``(counter, 0, 0, 0)`` under keys ``(k0, k1)`` (unsigned Python
    ints or int64 tensors broadcastable with ``counter``). Word ``w`` of block ``b`` equals
    the ``4 b + w``-th ``random_raw`` output of ``np.random.Philox(key=[k0, k1])`` started
    at counter ``b`` (NumPy increments its counter before each block)."""
    c0 = counter.to(torch.int64)
    zero = torch.zeros_like(c0)
    c1, c2, c3 = zero, zero, zero
    for round_ in range(_ROUNDS):
        if round_:
            k0, k1 = _bump(k0, _W0), _bump(k1, _W1)
        hi0, lo0 = _mulhilo(c0, _M0)
        hi1, lo1 = _mulhilo(c2, _M1)
        c0, c1, c2, c3 = _xor(hi1 ^ c1, k0), lo1, _xor(hi0 ^ c3, k1), lo0
    return torch.stack((c0, c1, c2, c3), dim=-1)


def words32(counter_words: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """The 32-bit words (values ``0 .. 2^32 - 1`` in int64) at flat positions ``index`` of
    the blocks' output, read as 32-bit halves, low half first (as NumPy's ``view(np.int32)``
    on a little-endian machine): position ``8 b + 2 w + h`` is half ``h`` of word ``w`` of
    block ``b``. ``counter_words`` has shape ``(blocks, 4)``; ``index`` counts from its first
    block."""
    word = counter_words.reshape(-1)[index >> 1]
    return (word >> ((index & 1) * 32)) & _MASK32
