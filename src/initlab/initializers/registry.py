"""Scheme names and aliases, and parsing of scheme specs.

A spec is one of:

- a name or alias: ``"he_normal"``, PyTorch's ``"kaiming_normal_"``, Keras's ``"GlorotUniform"``,
  Flax's ``"flax.lecun_normal"``;
- a name with parameters: ``"random:scale=10"``, ``"variance_scaling:scale=2,mode=fan_out"``;
- a config dict: ``{"name": "he_normal", "mode": "fan_out"}`` (what ``get_config`` returns);
- framework spellings take their framework's parameter names too: ``"kaiming_normal_:a=0.2"``
  (``negative_slope``), ``"trunc_normal_:a=-1,b=1"``, ``"RandomUniform:minval=-1,maxval=1"``,
  ``"TruncatedNormal:stddev=0.02"``, ``"flax.orthogonal:scale=2"`` (``gain``);
- an :class:`~initlab.schemes.Initializer`, returned as is (or rebuilt with overrides).

Plain snake_case names follow PyTorch where frameworks disagree: ``xavier_normal`` draws an
untruncated normal, Keras's ``GlorotNormal`` (and JAX's ``glorot_normal``, spelled
``flax.glorot_normal``/``jax.glorot_normal`` here) the truncated one, ``xavier_truncated``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from initlab._core.validation import unknown_name_error
from initlab.initializers import schemes as s

Spec = str | Mapping[str, Any] | s.Initializer


@dataclass(frozen=True)
class Entry:
    """A registered name: the class, the parameters the name fixes, and its defaults."""

    cls: type[s.Initializer]
    fixed: Mapping[str, Any] = field(default_factory=dict)
    defaults: Mapping[str, Any] = field(default_factory=dict)
    source: str = "initlab"


def _vs(family: type[s.Initializer], dist: str, source: str = "initlab", **defaults: Any) -> Entry:
    return Entry(family, {"distribution": dist}, defaults, source)


_CANONICAL: dict[str, Entry] = {
    "zeros": Entry(s.Constant, {"value": 0.0}),
    "ones": Entry(s.Constant, {"value": 1.0}),
    "constant": Entry(s.Constant),
    "normal": Entry(s.Normal),
    "uniform": Entry(s.Uniform),
    "truncated_normal": Entry(s.TruncatedNormal),
    "random": Entry(s.Random),
    "variance_scaling": Entry(s.VarianceScaling),
    "orthogonal": Entry(s.Orthogonal),
    "identity": Entry(s.Identity),
    "dirac": Entry(s.Dirac),
    "delta_orthogonal": Entry(s.DeltaOrthogonal),
    "sparse": Entry(s.Sparse),
}
for _family in (s.Lecun, s.Xavier, s.He):
    for _dist, _suffix in s._SUFFIX.items():
        _CANONICAL[f"{_family.family}_{_suffix}"] = _vs(_family, _dist)

_KERAS = "Keras"
_TORCH = "PyTorch torch.nn.init"
_FLAX = "JAX/Flax"

# alias -> (canonical name, defaults that differ from initlab's, where the spelling comes from)
_ALIASES: dict[str, tuple[str, dict[str, Any], str]] = {
    # initlab synonyms and the course's names
    "zero": ("zeros", {}, "initlab"),
    "he": ("he_normal", {}, "course"),
    "kaiming": ("he_normal", {}, "initlab"),
    "xavier": ("xavier_normal", {}, "course"),
    "glorot": ("xavier_normal", {}, "initlab"),
    "lecun": ("lecun_normal", {}, "initlab"),
    "eye": ("identity", {}, "initlab"),
    "randn": ("random", {}, "course"),
    # PyTorch torch.nn.init (PyTorch's own defaults)
    "zeros_": ("zeros", {}, _TORCH),
    "ones_": ("ones", {}, _TORCH),
    "constant_": ("constant", {}, _TORCH),
    "normal_": ("normal", {}, _TORCH),
    "uniform_": ("uniform", {}, _TORCH),
    "trunc_normal_": ("truncated_normal", {"low": -2.0, "high": 2.0}, _TORCH),
    "xavier_normal_": ("xavier_normal", {}, _TORCH),
    "xavier_uniform_": ("xavier_uniform", {}, _TORCH),
    "kaiming_normal_": ("he_normal", {"nonlinearity": "leaky_relu"}, _TORCH),
    "kaiming_uniform_": ("he_uniform", {"nonlinearity": "leaky_relu"}, _TORCH),
    "orthogonal_": ("orthogonal", {}, _TORCH),
    "eye_": ("identity", {}, _TORCH),
    "dirac_": ("dirac", {}, _TORCH),
    "sparse_": ("sparse", {}, _TORCH),
    # Keras 3 classes (Keras's defaults; the *Normal classes are truncated)
    "Zeros": ("zeros", {}, _KERAS),
    "Ones": ("ones", {}, _KERAS),
    "Constant": ("constant", {}, _KERAS),
    "RandomNormal": ("normal", {"std": 0.05}, _KERAS),
    "RandomUniform": ("uniform", {"low": -0.05, "high": 0.05}, _KERAS),
    "TruncatedNormal": ("truncated_normal", {"std": 0.05}, _KERAS),
    "VarianceScaling": ("variance_scaling", {}, _KERAS),
    "GlorotNormal": ("xavier_truncated", {}, _KERAS),
    "GlorotUniform": ("xavier_uniform", {}, _KERAS),
    "HeNormal": ("he_truncated", {"nonlinearity": "relu"}, _KERAS),
    "HeUniform": ("he_uniform", {"nonlinearity": "relu"}, _KERAS),
    "LecunNormal": ("lecun_truncated", {}, _KERAS),
    "LecunUniform": ("lecun_uniform", {}, _KERAS),
    "Orthogonal": ("orthogonal", {}, _KERAS),
    "Identity": ("identity", {}, _KERAS),
    "keras.random_normal": ("normal", {"std": 0.05}, _KERAS),
    "keras.random_uniform": ("uniform", {"low": -0.05, "high": 0.05}, _KERAS),
    "keras.truncated_normal": ("truncated_normal", {"std": 0.05}, _KERAS),
    "keras.glorot_normal": ("xavier_truncated", {}, _KERAS),
    "keras.glorot_uniform": ("xavier_uniform", {}, _KERAS),
    "keras.he_normal": ("he_truncated", {"nonlinearity": "relu"}, _KERAS),
    "keras.he_uniform": ("he_uniform", {"nonlinearity": "relu"}, _KERAS),
    "keras.lecun_normal": ("lecun_truncated", {}, _KERAS),
    "keras.lecun_uniform": ("lecun_uniform", {}, _KERAS),
    "keras.variance_scaling": ("variance_scaling", {}, _KERAS),
    "keras.orthogonal": ("orthogonal", {}, _KERAS),
    # JAX jax.nn.initializers / flax.linen.initializers (JAX's defaults)
    "flax.zeros": ("zeros", {}, _FLAX),
    "flax.ones": ("ones", {}, _FLAX),
    "flax.constant": ("constant", {}, _FLAX),
    "flax.normal": ("normal", {"std": 0.01}, _FLAX),
    "flax.uniform": ("uniform", {"low": 0.0, "high": 0.01}, _FLAX),
    "flax.truncated_normal": ("truncated_normal", {"std": 0.01}, _FLAX),
    "flax.variance_scaling": ("variance_scaling", {}, _FLAX),
    "flax.glorot_normal": ("xavier_truncated", {}, _FLAX),
    "flax.xavier_normal": ("xavier_truncated", {}, _FLAX),
    "flax.glorot_uniform": ("xavier_uniform", {}, _FLAX),
    "flax.xavier_uniform": ("xavier_uniform", {}, _FLAX),
    "flax.he_normal": ("he_truncated", {"nonlinearity": "relu"}, _FLAX),
    "flax.kaiming_normal": ("he_truncated", {"nonlinearity": "relu"}, _FLAX),
    "flax.he_uniform": ("he_uniform", {"nonlinearity": "relu"}, _FLAX),
    "flax.kaiming_uniform": ("he_uniform", {"nonlinearity": "relu"}, _FLAX),
    "flax.lecun_normal": ("lecun_truncated", {}, _FLAX),
    "flax.lecun_uniform": ("lecun_uniform", {}, _FLAX),
    "flax.orthogonal": ("orthogonal", {}, _FLAX),
    "flax.delta_orthogonal": ("delta_orthogonal", {}, _FLAX),
}
for _alias in [a for a in _ALIASES if a.startswith("flax.")]:
    _ALIASES["jax." + _alias[5:]] = _ALIASES[_alias]
for _name in ("he", "xavier", "lecun", "glorot", "kaiming"):
    for _suffix in ("truncated_normal",):
        _target = {"glorot": "xavier", "kaiming": "he"}.get(_name, _name)
        _ALIASES[f"{_name}_{_suffix}"] = (f"{_target}_truncated", {}, "initlab")
for _name, _target in (("glorot", "xavier"), ("kaiming", "he")):
    for _suffix in ("normal", "uniform", "truncated"):
        _ALIASES[f"{_name}_{_suffix}"] = (f"{_target}_{_suffix}", {}, "initlab")


# Parameter spellings of the frameworks, per alias: PyTorch's ``a``/``b``, Keras's ``stddev``,
# ``minval``/``maxval``, JAX's ``stddev``/``scale``; renamed to initlab's before validation.
_TORCH_BOUNDS = {"a": "low", "b": "high"}
_KERAS_RANDOM = {"stddev": "std", "minval": "low", "maxval": "high"}
_PARAMETER_NAMES: dict[str, dict[str, str]] = {
    "uniform_": _TORCH_BOUNDS,
    "trunc_normal_": _TORCH_BOUNDS,
    "kaiming_normal_": {"a": "negative_slope"},
    "kaiming_uniform_": {"a": "negative_slope"},
    "constant_": {"val": "value"},
    **{a: _KERAS_RANDOM for a in ("RandomNormal", "RandomUniform", "TruncatedNormal",
                                  "keras.random_normal", "keras.random_uniform",
                                  "keras.truncated_normal")},
    **{f"{p}.{n}": {"stddev": "std"} for p in ("flax", "jax") for n in ("normal",
                                                                        "truncated_normal")},
    **{f"{p}.uniform": {"scale": "high"} for p in ("flax", "jax")},
    **{f"{p}.{n}": {"scale": "gain"} for p in ("flax", "jax")
       for n in ("orthogonal", "delta_orthogonal")},
}  # fmt: skip


def names() -> list[str]:
    """Canonical scheme names."""
    return sorted(_CANONICAL)


def aliases(name: str | None = None) -> dict[str, str] | list[str]:
    """All aliases as ``{alias: canonical}``, or the aliases of one canonical ``name``."""
    if name is None:
        return {a: target for a, (target, _, _) in _ALIASES.items()}
    return sorted(a for a, (target, _, _) in _ALIASES.items() if target == name)


def all_names() -> list[str]:
    """Every accepted spelling: canonical names and aliases."""
    return sorted({*_CANONICAL, *_ALIASES})


def _parse_value(text: str) -> Any:
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return text.strip()


def parse(spec: str) -> tuple[str, dict[str, Any]]:
    """Split ``"name:k=v,k=v"`` into the name and a dict of parsed values."""
    name, _, rest = spec.partition(":")
    params: dict[str, Any] = {}
    for item in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise ValueError(
                f"cannot parse scheme parameter {item!r} in {spec!r}; expected key=value, "
                f"e.g. 'random:scale=10' or 'variance_scaling:scale=2,mode=fan_out'"
            )
        params[key.strip()] = _parse_value(value)
    return name.strip(), params


def _lookup(name: str) -> tuple[str, dict[str, Any], dict[str, str]]:
    """``(canonical name, the alias's defaults, the alias's parameter spellings)``."""
    if name in _CANONICAL:
        return name, {}, {}
    if name in _ALIASES:
        target, defaults, _ = _ALIASES[name]
        return target, dict(defaults), _PARAMETER_NAMES.get(name, {})
    lowered = {k.lower(): k for k in [*_CANONICAL, *_ALIASES]}
    if name.lower() in lowered:
        return _lookup(lowered[name.lower()])
    raise unknown_name_error("scheme", name, all_names())


def get(spec: Spec, **overrides: Any) -> s.Initializer:
    """Build an initializer from a name, ``"name:k=v"`` string, config dict or initializer.

    ``overrides`` set parameters on top of the spec's (``get("he_normal", mode="fan_out")``).
    Unknown names raise ``ValueError`` listing the closest valid ones; unknown parameters name
    the scheme's valid parameters.

    >>> get("random:scale=10").get_config()
    {'name': 'random', 'scale': 10}
    """
    if isinstance(spec, s.Initializer):
        if not overrides:
            return spec
        return get(spec.get_config(), **overrides)
    if isinstance(spec, Mapping):
        params = dict(spec)
        if "name" not in params:
            raise ValueError(f"a scheme config dict needs a 'name' key; got {dict(spec)!r}")
        name = params.pop("name")
        if not isinstance(name, str):
            raise TypeError(f"scheme name must be a string; got {name!r}")
    elif isinstance(spec, str):
        name, params = parse(spec)
    else:
        raise TypeError(
            f"a scheme spec is a name, 'name:k=v' string, config dict or Initializer; "
            f"got {type(spec).__name__}"
        )
    canonical, defaults, spellings = _lookup(name)
    entry = _CANONICAL[canonical]
    given = {**params, **overrides}
    for theirs, ours in spellings.items():  # e.g. kaiming_normal_'s a= is negative_slope=
        if theirs in given:
            if ours in given:
                raise ValueError(f"{name}: give {theirs} or {ours}, not both")
            given[ours] = given.pop(theirs)
    params = {**defaults, **given}
    valid = [f.name for f in dataclasses.fields(entry.cls) if f.name not in entry.fixed]  # type: ignore[arg-type]
    for key in params:
        if key in entry.fixed:
            if params[key] == entry.fixed[key]:
                continue
            raise ValueError(
                f"{canonical} fixes {key}={entry.fixed[key]!r}; got {key}={params[key]!r}. "
                f"Choose the scheme by name instead (e.g. {canonical.rsplit('_', 1)[0]}_uniform)"
            )
        if key not in valid:
            from initlab._core.validation import closest

            hint = closest(key, valid)
            raise ValueError(
                f"{canonical} has no parameter {key!r}"
                + (f" (did you mean {hint[0]!r}?)" if hint else "")
                + f"; its parameters are: {', '.join(valid) or 'none'}"
            )
    return entry.cls(**{**entry.fixed, **params})


_DRAWS = {
    s.Constant: "constant", s.Normal: "normal", s.Random: "normal", s.Uniform: "uniform",
    s.TruncatedNormal: "truncated normal", s.VarianceScaling: "per distribution parameter",
    s.Orthogonal: "orthogonal", s.Identity: "deterministic", s.Dirac: "deterministic",
    s.DeltaOrthogonal: "orthogonal", s.Sparse: "sparse normal",
}  # fmt: skip
_DISTRIBUTION_DRAWS = {
    "normal": "normal (untruncated)",
    "uniform": "uniform",
    "truncated_normal": "truncated at 2 std, rescaled",
}


def describe() -> list[dict[str, str]]:
    """One row per canonical scheme: name, what it draws, free parameters with their
    defaults, formula and aliases."""
    rows = []
    for name in names():
        entry = _CANONICAL[name]
        init = entry.cls(**entry.fixed)
        params = {
            k: v for k, v in init.get_config().items() if k != "name" and k not in entry.fixed
        }
        draws = (
            _DISTRIBUTION_DRAWS[entry.fixed["distribution"]]
            if "distribution" in entry.fixed
            else _DRAWS[entry.cls]
        )
        rows.append(
            {
                "name": name,
                "draws": draws,
                "parameters": ", ".join(f"{k}={v}" for k, v in params.items()),
                "formula": entry.cls.formula,
                "aliases": ", ".join(aliases(name)),
            }
        )
    return rows
