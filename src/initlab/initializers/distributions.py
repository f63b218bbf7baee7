"""The initializer base class, its draw helpers, and the constant and raw-distribution schemes.

Every scheme fills a torch tensor in place (``scheme(tensor, source)``: a ``torch.Generator``
or a counter stream, :mod:`initlab._core.counter_rng`) and samples a NumPy array
(``scheme.sample(shape, seed)``). The named schemes live in
:mod:`initlab.initializers.variance_scaling` and :mod:`initlab.initializers.structured`;
:mod:`initlab.initializers.schemes` gathers them all.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import torch

from initlab._core.counter_rng import CounterStream
from initlab._core.rng import SeedLike, make_generator, truncated_standard_normal_
from initlab._core.validation import check_choice, check_number
from initlab.initializers import gains
from initlab.initializers.fans import LAYOUTS, Layout, _shape_of, fan_in_fan_out

Mode = Literal["fan_in", "fan_out", "fan_avg"]
Distribution = Literal["normal", "truncated_normal", "uniform"]
MODES = ("fan_in", "fan_out", "fan_avg")
DISTRIBUTIONS = ("normal", "truncated_normal", "uniform")

# std of N(0, 1) truncated to [-2, 2]: sqrt(1 - 4 phi(2) / (2 Phi(2) - 1)).
TRUNCATED_STD = 0.87962566103423978

# Modules whose schemes draw through _normal_/_uniform_/_truncated_ (so from a counter stream
# element by element); a scheme defined elsewhere gets a torch generator seeded from the stream.
_NATIVE = frozenset({
    "initlab.initializers.distributions",
    "initlab.initializers.variance_scaling",
    "initlab.initializers.structured",
})  # fmt: skip

Activation = tuple[str, float | None]
"""An activation as ``(name, parameter)``, e.g. ``("leaky_relu", 0.2)``."""

Source = torch.Generator | CounterStream
"""Where a fill draws from: a torch generator (a stream of draws) or a counter-based stream
(each element a pure function of its logical index; :mod:`initlab._core.counter_rng`)."""


def _normal_(tensor: torch.Tensor, mean: float, std: float, source: Source) -> torch.Tensor:
    if isinstance(source, CounterStream):
        return source.normal_(tensor, mean, std)
    return tensor.normal_(mean, std, generator=source)


def _uniform_(tensor: torch.Tensor, low: float, high: float, source: Source) -> torch.Tensor:
    if isinstance(source, CounterStream):
        return source.uniform_(tensor, low, high)
    return tensor.uniform_(low, high, generator=source)


def _truncated_(
    tensor: torch.Tensor, low: float, high: float, source: Source, scale: float = 1.0
) -> torch.Tensor:
    """``scale z``, ``z ~ N(0, 1)`` truncated to ``[low, high]`` (standardized bounds)."""
    if isinstance(source, CounterStream):
        return source.truncated_normal_(tensor, low, high, scale)
    return truncated_standard_normal_(tensor, low, high, source, scale=scale)


_SAMPLE_DTYPES = ("float16", "float32", "float64")  # NumPy has no bfloat16
_DTYPES = {
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float32": torch.float32,
    "float64": torch.float64,
}


def _check_gain(value: Any, argument: str = "gain") -> float | str:
    if value == "auto":
        return "auto"
    return check_number(argument, value, minimum=0.0)


def _auto_gain(value: float | str, activation: Activation | None) -> float:
    if value != "auto":
        return float(value)
    if activation is None:
        return 1.0
    return gains.gain(activation[0], activation[1])


class Initializer:
    """Base class of every scheme.

    Subclasses are frozen dataclasses whose fields are the scheme's parameters; they implement
    :meth:`_fill` and :meth:`target_std`.
    """

    name: ClassVar[str]
    formula: ClassVar[str]
    uses_fans: ClassVar[bool] = False
    min_dims: ClassVar[int] = 0
    max_dims: ClassVar[int | None] = None
    # Schemes whose values depend on the whole tensor (a QR, a diagonal, per-column choices):
    # a counter stream over a part of it (a shard) computes the whole block, then keeps its part.
    needs_whole: ClassVar[bool] = False

    # ------------------------------------------------------------------ public API
    def __call__(
        self,
        tensor: torch.Tensor,
        generator: SeedLike = None,
        *,
        fans: tuple[int, int] | None = None,
        activation: Activation | None = None,
    ) -> torch.Tensor:
        """Fill ``tensor`` in place and return it.

        ``generator`` is a ``torch.Generator`` on the tensor's device, an int seed, ``None``
        (a fresh seed from the OS; the global RNG is never used), or a counter stream
        (:class:`initlab._core.counter_rng.CounterStream`, what :func:`initlab.init_model` uses
        by default): then ``tensor`` may be a part (a shard) of the stream's logical tensor, and
        shape checks and fans use the logical shape. ``fans`` overrides the fans computed from
        the shape (layer-aware fans, per-gate blocks); ``activation`` resolves ``"auto"`` gains.
        """
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"expected a torch.Tensor to fill; got {type(tensor).__name__}")
        if isinstance(generator, CounterStream):
            if tuple(tensor.shape) != generator.local_shape:
                raise ValueError(
                    f"the counter stream covers a part of shape {generator.local_shape}; got a "
                    f"tensor of shape {tuple(tensor.shape)}"
                )
            logical = generator.block_shape
            source: Source = generator
        else:
            logical = tuple(tensor.shape)
            source = make_generator(generator, tensor.device)
        self._check_shape(logical)
        if self.uses_fans and fans is None:
            fans = fan_in_fan_out(logical)
        with torch.no_grad():
            if isinstance(source, CounterStream) and type(self)._fill.__module__ not in _NATIVE:
                # A scheme defined elsewhere may draw with torch.Generator calls: give it one
                # seeded from the stream's key and block, on the whole block, and keep the part
                # (same values on any sharding; not independent of the torch version).
                whole = torch.empty(logical, dtype=tensor.dtype, device=tensor.device)
                generator = torch.Generator(device=tensor.device)
                self._fill(whole, generator.manual_seed(source.seed()), fans, activation)
                tensor.copy_(whole[source.local_slices()])
            elif isinstance(source, CounterStream) and source.is_partial and self.needs_whole:
                whole = torch.empty(logical, dtype=tensor.dtype, device=tensor.device)
                self._fill(whole, source.whole(), fans, activation)
                tensor.copy_(whole[source.local_slices()])
            else:
                self._fill(tensor, source, fans, activation)
        return tensor

    def sample(
        self,
        shape: Sequence[int],
        seed: int | np.random.Generator | None = None,
        layout: Layout = "torch",
        dtype: str | np.dtype = "float32",
    ) -> np.ndarray:
        """A NumPy array of ``shape`` drawn from this scheme.

        ``layout="keras"`` reads ``shape`` as ``(*kernel, in, out)``: fans and structured
        schemes (orthogonal, dirac, identity) then act on the right axes.
        """
        check_choice("layout", layout, LAYOUTS)
        shape = _shape_of(shape)
        if any(d < 0 for d in shape):
            raise ValueError(f"shape dimensions must be >= 0; got {shape}")
        try:
            dtype_name = np.dtype(dtype).name
        except TypeError:
            dtype_name = str(dtype)
        check_choice("dtype", dtype_name, _SAMPLE_DTYPES)
        if layout == "keras" and len(shape) >= 2:
            torch_shape = (shape[-1], shape[-2], *shape[:-2])
        else:
            torch_shape = shape
        # Sample in float64 when float64 is asked for, else float32, then cast.
        work = torch.empty(
            torch_shape, dtype=torch.float64 if dtype_name == "float64" else torch.float32
        )
        self(work, make_generator(seed))
        if layout == "keras" and len(shape) >= 2:
            work = work.permute(*range(2, len(shape)), 1, 0)
        return work.numpy().astype(dtype_name, copy=True)

    def get_config(self) -> dict[str, Any]:
        """A plain dict that :func:`initlab.get` turns back into an equal initializer."""
        return {"name": self.name, **dataclasses.asdict(self)}  # type: ignore[call-overload]

    @property
    def activation_aware(self) -> bool:
        """Whether a parameter is ``"auto"``: the gain then follows the layer's activation."""
        return any(v == "auto" for v in dataclasses.asdict(self).values())  # type: ignore[call-overload]

    def target_std(
        self, shape: Sequence[int], fans: tuple[int, int] | None = None,
        activation: Activation | None = None,
    ) -> float:  # fmt: skip
        """The standard deviation of the values this scheme draws for ``shape``."""
        raise NotImplementedError

    def gain_for(self, activation: Activation | None = None) -> float | None:
        """The gain this scheme uses for ``activation`` (``None`` for schemes without one)."""
        return None

    def __str__(self) -> str:
        """The short spec: the name and the parameters that differ from their defaults
        (``"he_normal:mode=fan_out"``); ``initlab.get`` turns it back into this initializer.
        """
        defaults = {f.name: f.default for f in dataclasses.fields(self)}  # type: ignore[arg-type]
        params = ",".join(
            f"{k}={v}"
            for k, v in self.get_config().items()
            if k != "name" and not (k in defaults and v == defaults[k])
        )
        return f"{self.name}:{params}" if params else self.name

    # ------------------------------------------------------------------ internals
    def _fill(
        self, tensor: torch.Tensor, generator: torch.Generator,
        fans: tuple[int, int] | None, activation: Activation | None,
    ) -> None:  # fmt: skip
        raise NotImplementedError

    def _check_shape(self, shape: tuple[int, ...]) -> None:
        ndim = len(shape)
        if ndim < self.min_dims or (self.max_dims is not None and ndim > self.max_dims):
            wanted = (
                f"{self.min_dims}" if self.max_dims == self.min_dims
                else f"{self.min_dims} to {self.max_dims}" if self.max_dims
                else f"at least {self.min_dims}"
            )  # fmt: skip
            raise ValueError(
                f"{self.name} needs a tensor with {wanted} dimensions; got shape {shape}"
            )
        if self.uses_fans:
            fan_in_fan_out(shape)  # raises the standard message for < 2 dims


# ---------------------------------------------------------------------- constant family
@dataclass(frozen=True)
class Constant(Initializer):
    """Every entry equals ``value``. ``zeros`` is ``value=0``, ``ones`` is ``value=1``.

    Any shape. Note that a constant weight matrix makes every unit of a layer compute the same
    function: gradient descent cannot break that symmetry.
    """

    value: float = 0.0
    name: ClassVar[str] = "constant"
    formula: ClassVar[str] = "w = value"

    def __post_init__(self) -> None:
        object.__setattr__(self, "value", check_number("value", self.value))

    def __str__(self) -> str:
        return {0.0: "zeros", 1.0: "ones"}.get(self.value, f"constant:value={self.value}")

    def _fill(self, tensor, generator, fans, activation):
        tensor.fill_(self.value)

    def target_std(self, shape, fans=None, activation=None):
        return 0.0


# ---------------------------------------------------------------------- raw distributions
@dataclass(frozen=True)
class Normal(Initializer):
    """``N(mean, std^2)``; PyTorch's ``normal_`` (defaults mean 0, std 1). Any shape."""

    mean: float = 0.0
    std: float = 1.0
    name: ClassVar[str] = "normal"
    formula: ClassVar[str] = "w ~ N(mean, std^2)"

    def __post_init__(self) -> None:
        object.__setattr__(self, "mean", check_number("mean", self.mean))
        object.__setattr__(self, "std", check_number("std", self.std, minimum=0.0))

    def _fill(self, tensor, generator, fans, activation):
        _normal_(tensor, self.mean, self.std, generator)

    def target_std(self, shape, fans=None, activation=None):
        return self.std


@dataclass(frozen=True)
class Random(Initializer):
    """The course's "random" initialization: ``N(0, 1)`` times ``scale`` (default 1).

    ``random:scale=10`` is the course's ``np.random.randn(n_l, n_prev) * 10``. Any shape.
    """

    scale: float = 1.0
    name: ClassVar[str] = "random"
    formula: ClassVar[str] = "w = scale * z, z ~ N(0, 1)"

    def __post_init__(self) -> None:
        object.__setattr__(self, "scale", check_number("scale", self.scale, minimum=0.0))

    def _fill(self, tensor, generator, fans, activation):
        _normal_(tensor, 0.0, self.scale, generator)

    def target_std(self, shape, fans=None, activation=None):
        return self.scale


@dataclass(frozen=True)
class Uniform(Initializer):
    """``U(low, high)``; PyTorch's ``uniform_`` (defaults 0 and 1). Any shape."""

    low: float = 0.0
    high: float = 1.0
    name: ClassVar[str] = "uniform"
    formula: ClassVar[str] = "w ~ U(low, high); std = (high - low) / sqrt(12)"

    def __post_init__(self) -> None:
        object.__setattr__(self, "low", check_number("low", self.low))
        object.__setattr__(self, "high", check_number("high", self.high))
        if not self.low <= self.high:
            raise ValueError(f"uniform needs low <= high; got low={self.low}, high={self.high}")

    def _fill(self, tensor, generator, fans, activation):
        _uniform_(tensor, self.low, self.high, generator)

    def target_std(self, shape, fans=None, activation=None):
        return (self.high - self.low) / math.sqrt(12.0)


def _far_tail_standard_normal_(
    tensor: torch.Tensor, low: float, high: float, generator: torch.Generator
) -> None:
    """``N(0, 1)`` truncated to ``[low, high]`` lying wholly in one tail beyond 3 std.

    There ``2 Phi(x) - 1`` rounds to -/+1 (from 8.3 std on, even in float64) and an
    erfinv-based inverse CDF returns the bound for every draw. The mirror image in the lower
    tail keeps full relative precision: ``x = sign * ndtri(u)``, ``u ~ U(Phi(a), Phi(b))``
    with ``[a, b] = sign * [low, high]`` below zero.
    """
    sign = -1.0 if low > 0 else 1.0
    a, b = min(sign * low, sign * high), max(sign * low, sign * high)
    # Phi(v) = erfc(-v / sqrt 2) / 2 keeps full relative precision in the lower tail.
    phi_a, phi_b = (0.5 * math.erfc(-v / math.sqrt(2.0)) for v in (a, b))
    work = torch.empty(tensor.shape, dtype=torch.float64, device=tensor.device)
    work.uniform_(phi_a, phi_b, generator=generator)
    torch.special.ndtri(work, out=work).clamp_(a, b).mul_(sign)
    tensor.copy_(work)


@dataclass(frozen=True)
class TruncatedNormal(Initializer):
    """``N(mean, std^2)`` conditioned on ``low <= w <= high``.

    ``std`` is the standard deviation of the parent normal (PyTorch's ``trunc_normal_``,
    Keras's ``TruncatedNormal``). ``low``/``high`` are absolute bounds; left as ``None`` they
    are ``mean -/+ 2 std`` (Keras, JAX). PyTorch's spelling ``trunc_normal_`` keeps PyTorch's
    absolute defaults ``[-2, 2]``. Any shape.
    """

    mean: float = 0.0
    std: float = 1.0
    low: float | None = None
    high: float | None = None
    name: ClassVar[str] = "truncated_normal"
    formula: ClassVar[str] = "w ~ N(mean, std^2) truncated to [low, high] (default mean -/+ 2 std)"

    def __post_init__(self) -> None:
        object.__setattr__(self, "mean", check_number("mean", self.mean))
        object.__setattr__(self, "std", check_number("std", self.std, minimum=0.0))
        for side in ("low", "high"):
            if getattr(self, side) is not None:
                object.__setattr__(self, side, check_number(side, getattr(self, side)))
        low, high = self.bounds
        if not low < high:
            raise ValueError(f"truncated_normal needs low < high; got low={low}, high={high}")
        if self.std > 0 and not (
            low <= self.mean + 10 * self.std and high >= self.mean - 10 * self.std
        ):
            raise ValueError(
                f"truncated_normal: [low, high] = [{low}, {high}] lies more than 10 std from "
                f"mean={self.mean}, std={self.std}; the distribution is degenerate there"
            )

    @property
    def bounds(self) -> tuple[float, float]:
        low = self.mean - 2 * self.std if self.low is None else self.low
        high = self.mean + 2 * self.std if self.high is None else self.high
        return low, high

    def _fill(self, tensor, generator, fans, activation):
        low, high = self.bounds
        if self.std == 0:
            tensor.fill_(min(max(self.mean, low), high))
            return
        a, b = (low - self.mean) / self.std, (high - self.mean) / self.std
        if isinstance(generator, CounterStream):
            generator.truncated_normal_(tensor, a, b, self.std, self.mean)
            return
        if a * b > 0 and min(abs(a), abs(b)) > 3:
            _far_tail_standard_normal_(tensor, a, b, generator)
        else:
            truncated_standard_normal_(tensor, a, b, generator)
        tensor.mul_(self.std).add_(self.mean)

    def target_std(self, shape, fans=None, activation=None):
        if self.std == 0:
            return 0.0
        low, high = self.bounds
        a, b = (low - self.mean) / self.std, (high - self.mean) / self.std
        from scipy import stats  # imported here: SciPy costs ~1 s at import time

        return float(stats.truncnorm.std(a, b, loc=self.mean, scale=self.std))
