"""Structured initializers that need a whole matrix: orthogonal, identity, Dirac,
delta-orthogonal and sparse."""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import ClassVar

import torch

from initlab._core.counter_rng import CounterStream
from initlab._core.threads import few_threads
from initlab._core.validation import check_number
from initlab.initializers.distributions import (
    Initializer,
    Source,
    _auto_gain,
    _check_gain,
    _normal_,
    _uniform_,
)

# ---------------------------------------------------------------------- structured
# torch.set_num_threads is process-wide: one QR at a time changes it.
_QR_LOCK = threading.Lock()


def _qr(matrix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """QR that gives the same bits whatever the thread count: on the CPU, LAPACK's blocked QR
    splits work by thread (a 512 x 512 float32 Q differs in 95% of entries between 1 and 2
    threads), so it runs on one thread, in the matrix's dtype (a float32 QR is 1.7-2.3x faster
    than a float64 one and orthonormal to ~1e-6, as ``torch.nn.init.orthogonal_``'s); on GPUs,
    as is."""
    if matrix.device.type != "cpu":
        return torch.linalg.qr(matrix)
    with _QR_LOCK, few_threads(1):
        return torch.linalg.qr(matrix)


def _orthogonal_matrix(rows: int, cols: int, generator: Source, device, dtype) -> torch.Tensor:
    """A ``(rows, cols)`` matrix with orthonormal columns (or rows, if fewer): ``Q`` of the QR
    of a matrix ``G`` of N(0, 1) draws (``G^T`` when ``rows < cols``), times ``sign(diag R)``
    so that it is Haar-distributed; in the work dtype (float32, or float64 for float64).

    From a counter stream, ``G`` (float32 draws for float32 and half tensors) and its QR are
    computed on the CPU, QR in the work dtype on one thread, and ``Q`` is then moved to
    ``device``: the same bits on every device and thread count (a GPU's QR differs from the
    CPU's by ~4e-6). From a torch generator, ``G`` is drawn on ``device`` and QR runs there.
    """
    work_dtype = torch.float64 if dtype == torch.float64 else torch.float32
    if isinstance(generator, CounterStream):  # the whole block's own matrix of N(0, 1) draws
        generator, where = generator.derived("orthogonal", (rows, cols)), torch.device("cpu")
    else:
        where = device
    flat = torch.empty(rows, cols, device=where, dtype=work_dtype)
    _normal_(flat, 0.0, 1.0, generator)
    if rows < cols:
        flat = flat.T
    q, r = _qr(flat)
    # Multiply by the signs of diag(R) so Q is uniformly (Haar) distributed.
    q = q * torch.sign(torch.diagonal(r)).where(torch.diagonal(r) != 0, 1.0)
    q = q.to(device)  # the QR ran in the work dtype
    return q.T if rows < cols else q


@dataclass(frozen=True)
class Orthogonal(Initializer):
    """A (semi-)orthogonal matrix times ``gain`` (Saxe et al. 2014; PyTorch ``orthogonal_``).

    The tensor is viewed as ``(shape[0], prod(shape[1:]))``; a normal matrix is QR-factorized
    and sign-corrected, so rows (if fewer) or columns are orthonormal:
    ``W W^T = gain^2 I`` or ``W^T W = gain^2 I``. Entry std ``gain / sqrt(max(rows, cols))``.
    Needs >= 2 dims. ``gain="auto"`` uses the gain of the activation that follows.
    """

    gain: float | str = 1.0
    name: ClassVar[str] = "orthogonal"
    formula: ClassVar[str] = "W = gain * Q, Q^T Q = I (or Q Q^T = I)"
    min_dims: ClassVar[int] = 2
    needs_whole: ClassVar[bool] = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "gain", _check_gain(self.gain))

    def _fill(self, tensor, generator, fans, activation):
        rows = tensor.shape[0]
        cols = tensor.numel() // rows if rows else 0
        if tensor.numel() == 0:
            return
        q = _orthogonal_matrix(rows, cols, generator, tensor.device, tensor.dtype)
        tensor.copy_(q.reshape(tensor.shape)).mul_(_auto_gain(self.gain, activation))

    def gain_for(self, activation=None):
        return _auto_gain(self.gain, activation)

    def target_std(self, shape, fans=None, activation=None):
        rows = shape[0]
        cols = math.prod(shape[1:])
        return _auto_gain(self.gain, activation) / math.sqrt(max(rows, cols))


def _population_std(ones: int, total: int, value: float) -> float:
    p = ones / total if total else 0.0
    return abs(value) * math.sqrt(max(p - p * p, 0.0))


@dataclass(frozen=True)
class Identity(Initializer):
    """``gain`` times the identity matrix (``torch.eye``; rectangular: ones on the main
    diagonal). PyTorch ``eye_``, Keras ``Identity``. Exactly 2 dims; deterministic.
    """

    gain: float = 1.0
    name: ClassVar[str] = "identity"
    formula: ClassVar[str] = "W = gain * I"
    min_dims: ClassVar[int] = 2
    needs_whole: ClassVar[bool] = True
    max_dims: ClassVar[int | None] = 2

    def __post_init__(self) -> None:
        object.__setattr__(self, "gain", check_number("gain", self.gain))

    def _fill(self, tensor, generator, fans, activation):
        tensor.copy_(torch.eye(*tensor.shape, dtype=tensor.dtype, device=tensor.device))
        tensor.mul_(self.gain)

    def target_std(self, shape, fans=None, activation=None):
        return _population_std(min(shape), math.prod(shape), self.gain)


@dataclass(frozen=True)
class Dirac(Initializer):
    """The Dirac delta for convolutions (PyTorch ``dirac_``): weight ``(out, in, *k)`` with
    ``w[g*out_g + d, d, centre] = 1`` for ``d < min(out_g, in)`` in each of ``groups`` groups
    (``out_g = out / groups``), zero elsewhere, so the layer passes its input through.
    3 to 5 dims (Conv1d/2d/3d); deterministic.
    """

    groups: int = 1
    name: ClassVar[str] = "dirac"
    formula: ClassVar[str] = "w[o, i, centre] = 1 if o == i (per group), else 0"
    min_dims: ClassVar[int] = 3
    needs_whole: ClassVar[bool] = True
    max_dims: ClassVar[int | None] = 5

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "groups", check_number("groups", self.groups, minimum=1, integer=True)
        )

    def _check_shape(self, shape):
        super()._check_shape(shape)
        if shape[0] % self.groups:
            raise ValueError(f"dirac: dim 0 ({shape[0]}) must be divisible by groups={self.groups}")

    def _diagonal_count(self, shape) -> int:
        return self.groups * min(shape[0] // self.groups, shape[1])

    def _fill(self, tensor, generator, fans, activation):
        out_per_group = tensor.shape[0] // self.groups
        n = min(out_per_group, tensor.shape[1])
        tensor.zero_()
        centre = tuple(k // 2 for k in tensor.shape[2:])
        d = torch.arange(n, device=tensor.device)
        for g in range(self.groups):
            tensor[(g * out_per_group + d, d, *centre)] = 1

    def target_std(self, shape, fans=None, activation=None):
        return _population_std(self._diagonal_count(shape), math.prod(shape), 1.0)


@dataclass(frozen=True)
class DeltaOrthogonal(Initializer):
    """Delta-orthogonal convolution kernels (Xiao et al. 2018; JAX ``delta_orthogonal``):
    weight ``(out, in, *k)`` is zero except at the kernel centre, where it is an orthogonal
    ``(out, in)`` matrix times ``gain`` (needs ``in <= out``). Dynamical isometry for deep CNNs.
    """

    gain: float | str = 1.0
    name: ClassVar[str] = "delta_orthogonal"
    formula: ClassVar[str] = "w[:, :, centre] = gain * Q (Q^T Q = I), 0 elsewhere"
    min_dims: ClassVar[int] = 3
    needs_whole: ClassVar[bool] = True
    max_dims: ClassVar[int | None] = 5

    def __post_init__(self) -> None:
        object.__setattr__(self, "gain", _check_gain(self.gain))

    def _check_shape(self, shape):
        super()._check_shape(shape)
        if shape[1] > shape[0]:
            raise ValueError(
                f"delta_orthogonal needs in_channels <= out_channels; got shape {shape}"
            )

    def _fill(self, tensor, generator, fans, activation):
        q = _orthogonal_matrix(
            tensor.shape[0], tensor.shape[1], generator, tensor.device, tensor.dtype
        )
        tensor.zero_()
        centre = tuple(k // 2 for k in tensor.shape[2:])
        tensor[(slice(None), slice(None), *centre)] = q.to(tensor.dtype) * _auto_gain(
            self.gain, activation
        )

    def gain_for(self, activation=None):
        return _auto_gain(self.gain, activation)

    def target_std(self, shape, fans=None, activation=None):
        g = _auto_gain(self.gain, activation)
        total = math.prod(shape)
        # sum of squares = gain^2 * in; the mean is ~0.
        return g * math.sqrt(shape[1] / total)


@dataclass(frozen=True)
class Sparse(Initializer):
    """Sparse init (Martens 2010; PyTorch ``sparse_``): ``N(0, std^2)`` entries, then in every
    column ``ceil(sparsity * rows)`` randomly chosen rows set to zero. Exactly 2 dims.
    """

    sparsity: float = 0.1
    std: float = 0.01
    name: ClassVar[str] = "sparse"
    formula: ClassVar[str] = "w ~ N(0, std^2), ceil(sparsity * rows) zeros per column"
    min_dims: ClassVar[int] = 2
    needs_whole: ClassVar[bool] = True
    max_dims: ClassVar[int | None] = 2

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "sparsity", check_number("sparsity", self.sparsity, minimum=0.0, maximum=1.0)
        )
        object.__setattr__(self, "std", check_number("std", self.std, minimum=0.0))

    def _fill(self, tensor, generator, fans, activation):
        rows, cols = tensor.shape
        zeros = math.ceil(self.sparsity * rows)
        _normal_(tensor, 0.0, self.std, generator)
        if zeros and cols:
            keys = torch.empty(rows, cols, device=tensor.device)
            if isinstance(generator, CounterStream):
                _uniform_(keys, 0.0, 1.0, generator.derived("sparse", (rows, cols)))
            else:
                keys.uniform_(generator=generator)
            chosen = keys.argsort(dim=0)[:zeros]
            tensor.scatter_(0, chosen, 0.0)

    def target_std(self, shape, fans=None, activation=None):
        rows = shape[0]
        return self.std * math.sqrt(1 - math.ceil(self.sparsity * rows) / rows) if rows else 0.0
