"""Sweep specs: which axes to sweep, how to expand them into configs, and how each is seeded.

A spec names values for any of the :data:`AXES` (scheme, scale, activation, depth, width, lr,
optimizer, data, seed) and fixed options (iterations, dtype, clipping, the model). An axis given
one value is fixed; an axis left out takes its default from :data:`DEFAULTS`.

- ``search="grid"``: every combination, in the order of :data:`AXES` (the last varies fastest).
- ``search="random"``: ``samples`` configs; each axis draws uniformly from its list, or from a
  range ``{"low": a, "high": b, "log": true}`` (continuous axes: scale and lr). Draws come from
  a generator seeded by the sweep seed, so the same spec gives the same configs.

Seeding: a run's initial weights come from ``init_seed = derive_seed(sweep seed, "init",
scheme, activation, depth, width, data, model, seed)`` -- a function of the config, never of
its position in the sweep or its chunk. Configs that differ only in ``scale``, ``lr`` or
``optimizer`` therefore start from the same draw (scaled by ``sqrt(scale)``), so the
difference between them is the axis and not the noise of another draw (common random numbers).

``scale`` is a variance multiplier: after the scheme draws, every weight (a parameter with at
least 2 dims) is multiplied by ``sqrt(scale)``, so ``Var(w) = scale x`` the scheme's variance.
With ``lecun_normal`` (``Var = 1 / fan_in``), ``scale`` is the ``sigma_w^2`` of the
mean-field papers.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from initlab._core.rng import derive_seed
from initlab._core.validation import check_choice, check_number, closest

AXES = ("scheme", "scale", "activation", "depth", "width", "lr", "optimizer", "data", "seed")
"""The axes a sweep can vary, in grid order (the last varies fastest)."""

DEFAULTS: dict[str, Any] = {
    "scheme": "he",
    "scale": 1.0,
    "activation": "relu",
    "depth": 2,
    "width": 16,
    "lr": 0.01,
    "optimizer": "gd",
    "data": "circles",
    "seed": 0,
}
"""The value of every axis a spec leaves out."""

SWEEP_OPTIMIZERS = ("gd", "momentum", "adam")
_CONTINUOUS = ("scale", "lr")
_INTEGER = ("depth", "width", "seed")
_INIT_AXES = ("scheme", "activation", "depth", "width", "data", "seed")
_ARCH_AXES = ("activation", "depth", "width", "data")
_PLURALS = {"schemes": "scheme", "scales": "scale", "activations": "activation",
            "depths": "depth", "widths": "width", "lrs": "lr", "optimizers": "optimizer",
            "seeds": "seed", "datasets": "data"}  # fmt: skip
_OPTIONS = ("search", "samples", "sweep_seed", "iterations", "dtype", "model", "layer_dims",
            "clip_norm", "clip_value", "momentum", "betas", "eps", "output", "chunk",
            "log_every", "engine")  # fmt: skip

Config = dict[str, Any]


@dataclass
class SweepSpec:
    """What to sweep. ``axes``: ``{axis: [values]}`` for any of :data:`AXES` (or a range dict
    for scale/lr with ``search="random"``); everything else fixed for all runs.

    ``model``: ``None`` for the built-in MLP (``layer_dims = [features] + [width] * depth +
    [outputs]``, or fixed ``layer_dims``), a ``"FILE.py:FACTORY"`` string, or a callable; a
    factory gets the architecture axes it accepts (``depth``, ``width``, ``activation``,
    ``in_features``, ``out_features``) as keyword arguments and returns an ``nn.Module`` whose
    ``forward(x)`` takes ``(N, features)`` and returns logits ``(N, outputs)``.
    ``output``: how logits are read (default sigmoid for one output, else softmax).
    ``log_every``: the iterations at which the training loss counts for ``best_loss``
    (default ``iterations // 100``). ``chunk``: most members per batched ensemble.
    ``engine``: ``auto`` (the fused stacked MLP where it applies, ``loop`` for models with
    convolutions, else ``vmap``), ``vmap``, ``loop`` (member by member, plain autograd) or
    ``stacked`` (built-in MLP with relu, leaky_relu, tanh, sigmoid or linear only).
    """

    axes: dict[str, Any] = field(default_factory=dict)
    search: Literal["grid", "random"] = "grid"
    samples: int | None = None
    sweep_seed: int = 0
    iterations: int = 1000
    dtype: str = "float32"
    model: str | Callable[..., Any] | None = None
    layer_dims: list[int] | None = None
    clip_norm: float | None = None
    clip_value: float | None = None
    momentum: float = 0.9
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    output: str | None = None
    chunk: int | None = None
    log_every: int | None = None
    engine: Literal["auto", "vmap", "loop", "stacked"] = "auto"

    def __post_init__(self) -> None:
        if not isinstance(self.axes, Mapping):
            raise TypeError(f"axes must be a dict {{axis: [values]}}; got {self.axes!r}")
        self.axes = {_axis_name(k): _values(_axis_name(k), v, self.search)
                     for k, v in self.axes.items()}  # fmt: skip
        check_choice("search", self.search, ("grid", "random"))
        if self.search == "random":
            if self.samples is None:
                raise ValueError("search='random' needs samples=N (how many configs to draw)")
            self.samples = int(check_number("samples", self.samples, minimum=1, integer=True))
        elif self.samples is not None:
            raise ValueError(f"samples={self.samples} is for search='random'; got search='grid'")
        for name, value in self.axes.items():
            if isinstance(value, dict) and self.search == "grid":
                raise ValueError(
                    f"axis {name!r}: a range {value} needs search='random'; a grid takes a list"
                )
        self.sweep_seed = int(check_number("sweep_seed", self.sweep_seed, minimum=0,
                                           integer=True))  # fmt: skip
        self.iterations = int(check_number("iterations", self.iterations, minimum=1,
                                           integer=True))  # fmt: skip
        check_choice("dtype", self.dtype, ("float32", "float64"))
        check_choice("engine", self.engine, ("auto", "vmap", "loop", "stacked"))
        for name in ("clip_norm", "clip_value"):
            if getattr(self, name) is not None:
                check_number(name, getattr(self, name), minimum=0.0, strict_minimum=True)
        check_number("momentum", self.momentum, minimum=0.0, maximum=1.0)
        check_number("eps", self.eps, minimum=0.0, strict_minimum=True)
        self.betas = (float(self.betas[0]), float(self.betas[1]))
        if self.output is not None:
            check_choice("output", self.output, ("sigmoid", "softmax", "linear"))
        if self.chunk is not None:
            self.chunk = int(check_number("chunk", self.chunk, minimum=1, integer=True))
        if self.log_every is not None:
            self.log_every = int(check_number("log_every", self.log_every, minimum=1,
                                              integer=True))  # fmt: skip
        if self.layer_dims is not None:
            self.layer_dims = [int(check_number(f"layer_dims[{i}]", d, minimum=1, integer=True))
                               for i, d in enumerate(self.layer_dims)]  # fmt: skip
            if len(self.layer_dims) < 2:
                raise ValueError(f"layer_dims needs at least 2 sizes; got {self.layer_dims}")
            swept = [a for a in ("depth", "width") if a in self.axes]
            if swept or self.model is not None:
                raise ValueError(
                    "layer_dims fixes the built-in MLP's sizes; it cannot be combined with "
                    + (f"a swept {swept[0]}" if swept else "model=...")
                )
        if self.model is not None and not (isinstance(self.model, str) or callable(self.model)):
            raise TypeError(f"model must be 'FILE.py:FACTORY', a callable or None; got "
                            f"{type(self.model).__name__}")  # fmt: skip

    # ------------------------------------------------------------------ building
    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SweepSpec:
        """A spec from a plain dict: axis names (singular or plural) with a value or a list,
        and any option (``iterations: 500``, ``model: net.py:make``, ...)."""
        if not isinstance(data, Mapping):
            raise TypeError(f"a sweep spec must be a mapping; got {type(data).__name__}")
        axes, options = {}, {}
        for key, value in data.items():
            key = str(key)
            if key == "axes" and isinstance(value, Mapping):
                axes.update(value)
            elif key in AXES or key in _PLURALS:
                axes[key] = value
            elif key in _OPTIONS:
                options[key] = value
            else:
                valid = [*AXES, *_OPTIONS]
                hint = closest(key, [*valid, *_PLURALS])
                raise ValueError(
                    f"unknown sweep spec key {key!r}"
                    + (f"; did you mean {hint[0]!r}?" if hint else "")
                    + f" Valid keys: {', '.join(valid)}"
                )
        if "betas" in options:
            options["betas"] = tuple(options["betas"])
        return cls(axes=axes, **options)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> SweepSpec:
        """Read a spec from a ``.json`` or ``.yaml``/``.yml`` file (YAML needs PyYAML)."""
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"sweep spec file {path!r} does not exist")
        with open(path) as handle:
            text = handle.read()
        if path.lower().endswith((".yaml", ".yml")):
            try:
                import yaml
            except ImportError:
                raise ValueError(
                    f"reading {path} needs PyYAML: pip install pyyaml (or write the spec as JSON)"
                ) from None
            try:
                data = yaml.safe_load(text)
            except yaml.YAMLError as error:
                raise ValueError(f"{path} is not valid YAML: {error}".splitlines()[0]) from None
        elif path.lower().endswith(".json"):
            try:
                data = json.loads(text)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path} is not valid JSON: {error}") from None
        else:
            raise ValueError(f"sweep spec file must end in .json, .yaml or .yml; got {path!r}")
        return cls.from_dict(data or {})

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON (a callable model is written by its qualified name)."""
        out: dict[str, Any] = {"axes": {k: v for k, v in self.axes.items()}}
        for name in _OPTIONS:
            value = getattr(self, name)
            if name == "model" and callable(value):
                value = f"{getattr(value, '__module__', '?')}.{getattr(value, '__qualname__', '?')}"
            out[name] = list(value) if isinstance(value, tuple) else value
        return out

    def settings(self) -> dict[str, Any]:
        """The options every run of the sweep shares, as plain JSON: all of :meth:`to_dict`
        but the axes and how configs are drawn and chunked (``search``, ``samples``,
        ``chunk``). Runs share a result folder only when these are equal."""
        out = self.to_dict()
        for key in ("axes", "search", "samples", "chunk"):
            del out[key]
        return out

    # ------------------------------------------------------------------ configs
    def configs(self) -> list[Config]:
        """The runs of the sweep: one dict per config with a value for every axis."""
        fixed = {a: DEFAULTS[a] for a in AXES}
        if self.layer_dims is not None:
            fixed["depth"] = len(self.layer_dims) - 2
            fixed["width"] = max(self.layer_dims[1:-1], default=0)
        lists = {a: self.axes.get(a, [fixed[a]]) for a in AXES}
        if self.search == "grid":
            configs: list[Config] = [{}]
            for axis in AXES:
                configs = [{**c, axis: v} for c in configs for v in lists[axis]]
        else:
            import numpy as np

            rng = np.random.default_rng(derive_seed(self.sweep_seed, "random-search"))
            configs, seen = [], set()
            for _ in range(int(self.samples or 0)):
                config = {}
                for axis in AXES:
                    values = lists[axis]
                    if isinstance(values, dict):
                        low, high = float(values["low"]), float(values["high"])
                        if values.get("log"):
                            value = float(np.exp(rng.uniform(np.log(low), np.log(high))))
                        else:
                            value = float(rng.uniform(low, high))
                    else:
                        value = values[int(rng.integers(len(values)))]
                    config[axis] = value
                key = config_key(config)
                if key not in seen:
                    seen.add(key)
                    configs.append(config)
        return configs


# ---------------------------------------------------------------------------- helpers
def _axis_name(name: Any) -> str:
    name = _PLURALS.get(str(name), str(name))
    return check_choice("sweep axis", name, AXES)


def _values(axis: str, value: Any, search: str) -> Any:
    """Validate one axis's values; returns a list (or a range dict for scale/lr)."""
    if isinstance(value, Mapping):
        if axis not in _CONTINUOUS:
            raise ValueError(f"axis {axis!r} takes a list of values; a range is only for "
                             f"{' and '.join(_CONTINUOUS)}; got {dict(value)}")  # fmt: skip
        unknown = sorted(set(value) - {"low", "high", "log"})
        if unknown or "low" not in value or "high" not in value:
            raise ValueError(f"axis {axis!r}: a range is {{low: a, high: b, log: true|false}}; "
                             f"got {dict(value)}")  # fmt: skip
        low = check_number(f"{axis}.low", value["low"], minimum=0.0, strict_minimum=True)
        high = check_number(f"{axis}.high", value["high"], minimum=low)
        return {"low": float(low), "high": float(high), "log": bool(value.get("log", False))}
    if isinstance(value, str) and axis not in ("scheme", "activation", "optimizer", "data"):
        value = [v for v in value.replace(" ", "").split(",") if v]
        value = [_number(axis, v) for v in value]
    elif isinstance(value, str | int | float) or not isinstance(value, Sequence):
        value = [value]
    values = list(value)
    if not values:
        raise ValueError(f"axis {axis!r} has no values")
    out = [_check_value(axis, v, i) for i, v in enumerate(values)]
    if len({json.dumps(v) for v in out}) != len(out):
        raise ValueError(f"axis {axis!r} lists a value twice: {values}")
    return out


def _number(axis: str, text: str) -> float | int:
    try:
        return int(text) if axis in _INTEGER else float(text)
    except ValueError:
        kind = "integers" if axis in _INTEGER else "numbers"
        raise ValueError(f"axis {axis!r} takes {kind}; got {text!r}") from None


def _check_value(axis: str, value: Any, i: int) -> Any:
    where = f"{axis}[{i}]"
    if axis == "scheme":
        from initlab.initializers.registry import get

        if isinstance(value, Mapping):
            value = dict(value)
        get(value)  # raises with the closest valid name
        return value
    if axis == "activation":
        from initlab.bench.choices import HIDDEN_ACTIVATION_NAMES

        return check_choice(where, value, HIDDEN_ACTIVATION_NAMES)
    if axis == "optimizer":
        if value == "sgd":
            raise ValueError(
                f"{where}: sweeps train full-batch, so 'sgd' would be 'gd'; use one of "
                f"{', '.join(SWEEP_OPTIMIZERS)}"
            )
        return check_choice(where, value, SWEEP_OPTIMIZERS)
    if axis == "data":
        if not isinstance(value, str):
            raise TypeError(f"{where} must be a dataset name or path; got {value!r}")
        return value
    if axis in _INTEGER:
        minimum = 0 if axis in ("depth", "seed") else 1
        return int(check_number(where, value, minimum=minimum, integer=True))
    if axis == "scale":
        return float(check_number(where, value, minimum=0.0))
    return float(check_number(where, value, minimum=0.0, strict_minimum=True))  # lr


def config_key(config: Mapping[str, Any]) -> str:
    """A canonical string of a config (its identity in the result store)."""
    return json.dumps({a: config[a] for a in AXES}, sort_keys=True, default=str)


def config_id(config: Mapping[str, Any]) -> str:
    """A short stable id of a config: 12 hex digits of the hash of :func:`config_key`."""
    return hashlib.blake2b(config_key(config).encode(), digest_size=6).hexdigest()


def init_seed(sweep_seed: int, config: Mapping[str, Any], model: Any = None) -> int:
    """The seed of a config's initial weights (see the module docstring)."""
    keys = [json.dumps(config[a], sort_keys=True, default=str) for a in _INIT_AXES]
    return derive_seed(sweep_seed, "init", *keys, model_name(model))


def model_name(model: Any) -> str:
    """``"mlp"`` for the built-in MLP, the spec string of a model file, or a callable's name."""
    if model is None:
        return "mlp"
    if isinstance(model, str):
        return model
    return f"{getattr(model, '__module__', '?')}.{getattr(model, '__qualname__', '?')}"


def arch_key(config: Mapping[str, Any]) -> tuple[Any, ...]:
    """Configs with the same key build the same architecture (and train on the same data)."""
    return tuple(config[a] for a in _ARCH_AXES)


__all__ = ["AXES", "DEFAULTS", "Config", "SweepSpec", "config_id", "config_key", "init_seed"]
