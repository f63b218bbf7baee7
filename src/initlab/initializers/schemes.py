"""The initializers: one small class per scheme, built on a shared variance-scaling core.

Every scheme fills a torch tensor in place (``scheme(tensor, generator)``) and samples a NumPy
array (``scheme.sample(shape, seed)``). Fans follow :mod:`initlab.fans` (PyTorch layout
``(out, in, *kernel)``); gains follow :mod:`initlab.gains`.

The variance-scaling core draws weights with variance ``scale / n`` where ``n`` is ``fan_in``,
``fan_out`` or ``(fan_in + fan_out) / 2`` (the ``mode``), from one of three distributions with
that same variance:

- ``normal``: ``N(0, std^2)``, ``std = sqrt(scale / n)`` (PyTorch's ``*_normal_``);
- ``uniform``: ``U(-limit, limit)``, ``limit = sqrt(3 scale / n)``;
- ``truncated_normal``: a normal truncated at two of its standard deviations and widened by
  ``1 / 0.87962566103423978`` so that the variance *after* truncation is ``scale / n``
  (Keras and JAX).

LeCun, Glorot/Xavier and He/Kaiming are named configurations of it.

``"auto"`` gains: He's ``nonlinearity="auto"`` and Xavier's or orthogonal's ``gain="auto"``
take the gain of the activation that follows the layer when :func:`initlab.init_model` knows it;
used alone they fall back to PyTorch's defaults (leaky_relu with slope ``negative_slope`` for
He, 1 for the others).
"""

from __future__ import annotations

import dataclasses
import math
import threading
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
            if isinstance(source, CounterStream) and type(self)._fill.__module__ != __name__:
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


# ---------------------------------------------------------------------- variance scaling
class _VarianceScalingCore(Initializer):
    """Shared core: ``Var(w) = scale / n(mode)`` with the chosen distribution."""

    uses_fans: ClassVar[bool] = True

    def _scale_mode_distribution(self, activation: Activation | None) -> tuple[float, str, str]:
        raise NotImplementedError

    def _std(self, shape, fans, activation) -> tuple[float, str]:
        scale, mode, distribution = self._scale_mode_distribution(activation)
        fan_in, fan_out = fans if fans is not None else fan_in_fan_out(shape)
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": fan_in + fan_out}[mode]
        if n <= 0:
            raise ValueError(f"{self.name}: {mode} of shape {tuple(shape)} is 0; nothing to scale")
        variance = 2.0 * scale / n if mode == "fan_avg" else scale / n
        return math.sqrt(variance), distribution

    def _fill(self, tensor, generator, fans, activation):
        std, distribution = self._std(tensor.shape, fans, activation)
        if distribution == "normal":
            _normal_(tensor, 0.0, std, generator)
        elif distribution == "uniform":
            limit = math.sqrt(3.0) * std
            _uniform_(tensor, -limit, limit, generator)
        else:
            _truncated_(tensor, -2.0, 2.0, generator, scale=std / TRUNCATED_STD)

    def target_std(self, shape, fans=None, activation=None):
        return self._std(tuple(shape), fans, activation)[0]

    def gain_for(self, activation=None):
        return math.sqrt(self._scale_mode_distribution(activation)[0])


@dataclass(frozen=True)
class VarianceScaling(_VarianceScalingCore):
    """``Var(w) = scale / n``, ``n`` = fan_in, fan_out or (fan_in + fan_out) / 2.

    ``distribution``: ``normal`` (std ``sqrt(scale / n)``), ``uniform`` (limit
    ``sqrt(3 scale / n)``) or ``truncated_normal`` (a normal truncated at 2 std, widened by
    ``1 / 0.8796`` so the truncated variance is ``scale / n``; the default, as in Keras).
    Needs >= 2 dims. ``variance_scaling:scale=2,mode=fan_in,distribution=normal`` is He normal.
    """

    scale: float = 1.0
    mode: Mode = "fan_in"
    distribution: Distribution = "truncated_normal"
    name: ClassVar[str] = "variance_scaling"
    formula: ClassVar[str] = "Var(w) = scale / n, n = fan_in | fan_out | fan_avg"

    def __post_init__(self) -> None:
        object.__setattr__(self, "scale", check_number("scale", self.scale, minimum=0.0))
        check_choice("mode", self.mode, MODES)
        distribution = "normal" if self.distribution == "untruncated_normal" else self.distribution
        object.__setattr__(
            self, "distribution", check_choice("distribution", distribution, DISTRIBUTIONS)
        )

    def _scale_mode_distribution(self, activation):
        return self.scale, self.mode, self.distribution


_SUFFIX = {"normal": "normal", "uniform": "uniform", "truncated_normal": "truncated"}


class _NamedVarianceScaling(_VarianceScalingCore):
    """A named configuration of the core; the distribution is part of the name."""

    family: ClassVar[str]

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"{self.family}_{_SUFFIX[self.distribution]}"

    def get_config(self) -> dict[str, Any]:
        config = {"name": self.name, **dataclasses.asdict(self)}  # type: ignore[call-overload]
        del config["distribution"]
        return config


@dataclass(frozen=True)
class Lecun(_NamedVarianceScaling):
    """LeCun: ``Var(w) = 1 / fan_in`` (the right scale for SELU; several course texts call this
    "Xavier"). ``lecun_normal`` std ``1/sqrt(fan_in)``; ``lecun_uniform`` limit
    ``sqrt(3/fan_in)``; ``lecun_truncated`` as Keras's ``LecunNormal``.
    """

    distribution: Distribution = "normal"
    family: ClassVar[str] = "lecun"
    formula: ClassVar[str] = "Var(w) = 1 / fan_in"

    def __post_init__(self) -> None:
        check_choice("distribution", self.distribution, DISTRIBUTIONS)

    def _scale_mode_distribution(self, activation):
        return 1.0, "fan_in", self.distribution


@dataclass(frozen=True)
class Xavier(_NamedVarianceScaling):
    """Glorot/Xavier: ``Var(w) = gain^2 * 2 / (fan_in + fan_out)`` (Glorot & Bengio 2010,
    PyTorch ``xavier_*_``, Keras ``Glorot*``). ``xavier_normal`` std
    ``gain sqrt(2/(fan_in+fan_out))``; ``xavier_uniform`` limit ``gain sqrt(6/(fan_in+fan_out))``.
    ``gain`` defaults to 1; ``gain="auto"`` uses the gain of the activation that follows.
    """

    gain: float | str = 1.0
    distribution: Distribution = "normal"
    family: ClassVar[str] = "xavier"
    formula: ClassVar[str] = "Var(w) = gain^2 * 2 / (fan_in + fan_out)"

    def __post_init__(self) -> None:
        object.__setattr__(self, "gain", _check_gain(self.gain))
        check_choice("distribution", self.distribution, DISTRIBUTIONS)

    def _scale_mode_distribution(self, activation):
        return _auto_gain(self.gain, activation) ** 2, "fan_avg", self.distribution


@dataclass(frozen=True)
class He(_NamedVarianceScaling):
    """He/Kaiming: ``Var(w) = gain^2 / fan`` with ``gain = gain(nonlinearity, negative_slope)``
    (He et al. 2015, PyTorch ``kaiming_*_``). For ReLU: ``std = sqrt(2 / fan_in)``
    (``he_normal``), limit ``sqrt(6 / fan_in)`` (``he_uniform``).

    ``mode`` is ``fan_in`` (preserves the forward signal) or ``fan_out`` (the backward one).
    ``nonlinearity="auto"`` (initlab's default) uses the activation that follows the layer in
    :func:`init_model`, and PyTorch's default (leaky_relu with ``negative_slope``, i.e. ReLU
    for 0) when used alone.
    """

    mode: Mode = "fan_in"
    nonlinearity: str = "auto"
    negative_slope: float = 0.0
    distribution: Distribution = "normal"
    family: ClassVar[str] = "he"
    formula: ClassVar[str] = "Var(w) = gain(nonlinearity)^2 / fan_in   (relu: 2 / fan_in)"

    def __post_init__(self) -> None:
        check_choice("mode", self.mode, MODES[:2])
        if self.nonlinearity != "auto":
            object.__setattr__(self, "nonlinearity", gains.canonical_activation(self.nonlinearity))
        object.__setattr__(
            self, "negative_slope", check_number("negative_slope", self.negative_slope)
        )
        check_choice("distribution", self.distribution, DISTRIBUTIONS)

    def _scale_mode_distribution(self, activation):
        if self.nonlinearity == "auto" and activation is not None:
            name, param = activation
        elif self.nonlinearity in ("auto", "leaky_relu"):
            name, param = "leaky_relu", self.negative_slope
        else:
            name, param = self.nonlinearity, None
        # Exact squares for the ReLU family, so He normal is bit-identical to sqrt(2. / n).
        if name == "linear":
            return 1.0, self.mode, self.distribution
        if name == "relu":
            return 2.0, self.mode, self.distribution
        if name == "leaky_relu":
            slope = 0.01 if param is None else param
            return 2.0 / (1 + slope**2), self.mode, self.distribution
        g = gains.gain(name, param)
        return g * g, self.mode, self.distribution


# ---------------------------------------------------------------------- structured
# torch.set_num_threads is process-wide: one QR at a time changes it.
_QR_LOCK = threading.Lock()


def _qr(matrix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """QR that gives the same bits whatever the thread count: on the CPU, LAPACK's blocked QR
    splits work by thread (a 512 x 512 float32 Q differs in 95% of entries between 1 and 2
    threads), so it runs in float64 on one thread; on GPUs, as is."""
    if matrix.device.type != "cpu":
        return torch.linalg.qr(matrix)
    with _QR_LOCK:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return torch.linalg.qr(matrix.double())
        finally:
            torch.set_num_threads(threads)


def _orthogonal_matrix(rows: int, cols: int, generator: Source, device, dtype) -> torch.Tensor:
    work_dtype = torch.float64 if dtype == torch.float64 else torch.float32
    flat = torch.empty(rows, cols, device=device, dtype=work_dtype)
    if isinstance(generator, CounterStream):  # the whole block's own matrix of N(0, 1) draws
        generator = generator.derived("orthogonal", (rows, cols))
    _normal_(flat, 0.0, 1.0, generator)
    if rows < cols:
        flat = flat.T
    q, r = _qr(flat)
    # Multiply by the signs of diag(R) so Q is uniformly (Haar) distributed.
    q = q * torch.sign(torch.diagonal(r)).where(torch.diagonal(r) != 0, 1.0)
    q = q.to(work_dtype)
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


SCHEME_CLASSES: tuple[type[Initializer], ...] = (
    Constant, Normal, Random, Uniform, TruncatedNormal, VarianceScaling, Lecun, Xavier, He,
    Orthogonal, Identity, Dirac, DeltaOrthogonal, Sparse,
)  # fmt: skip
