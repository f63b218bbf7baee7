"""The variance-scaling core and its named configurations: LeCun, Glorot/Xavier, He/Kaiming.

Variance ``scale / n`` with ``n`` = ``fan_in``, ``fan_out`` or ``(fan_in + fan_out) / 2`` (the
``mode``), drawn from a normal, a uniform or a truncated normal of that variance (see
:mod:`initlab.initializers.schemes`)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, ClassVar

from initlab._core.validation import check_choice, check_number
from initlab.initializers import gains
from initlab.initializers.distributions import (
    DISTRIBUTIONS,
    MODES,
    TRUNCATED_STD,
    Activation,
    Distribution,
    Initializer,
    Mode,
    _auto_gain,
    _check_gain,
    _normal_,
    _truncated_,
    _uniform_,
)
from initlab.initializers.fans import fan_in_fan_out


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
