"""``init_model``: initialize every parameter of an ``nn.Module`` in one call.

Per parameter, in this order of precedence:

1. ``rules``: the first rule that matches, by parameter-name glob (``"*.bias"``,
   ``"head.weight"``) or by module type (``nn.Embedding``); its value is a scheme spec or
   ``"keep"`` (leave the parameter as it is).
2. Normalization layers (BatchNorm, LayerNorm, GroupNorm, InstanceNorm, RMSNorm): weight 1,
   bias 0, so they start as the identity.
3. Biases and other parameters named ``*bias*`` (``in_proj_bias``, ``bias_ih_l0``): the ``bias``
   policy (zeros by default).
4. Parameters with >= 2 dims: ``scheme``, with layer-aware fans (``fans.parameter_fans``,
   one block per LSTM/GRU gate or q/k/v projection) and, for activation-aware schemes, the gain
   of the activation that follows the layer (:mod:`initlab.activations`) or that acts inside it
   (LSTM gates).
5. Other 1-D parameters (PReLU slopes, ...) are kept.

Each parameter draws from its own stream, keyed by ``seed`` and the parameter's qualified
name, so its values do not depend on the other parameters. By default (``rng="counter"``) every
element is a pure function of (seed, name, its index in the logical tensor), so DTensor shards
and pipeline stages get the values a single process gets (:mod:`initlab.initializers.sharded`);
``rng="torch"`` keeps the previous ``torch.Generator`` streams and their exact values.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from initlab._core.rng import as_seed, derive_seed, parallel_map, reseeded_generator
from initlab._core.table import format_table
from initlab._core.validation import check_choice
from initlab.initializers.activations import following_activations
from initlab.initializers.fans import FanChunk, fan_in_fan_out, parameter_fans
from initlab.initializers.registry import Spec, get
from initlab.initializers.schemes import Initializer, Uniform
from initlab.initializers.sharded import Rows, fill_rows, is_dtensor

RuleKey = str | type
Rules = Mapping[RuleKey, Spec] | None

_NORM_TYPES = (
    nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm,
    *((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ()),
)  # fmt: skip

# Realized std is measured exactly up to _STD_EXACT elements and beyond that on _STD_RUNS
# evenly spaced contiguous runs totalling _STD_SAMPLE elements (a strided sample would read a
# cache line per element). The sample stays under torch's intra-op grain size (32768), so the
# reduction runs inline: a parallel one waits for a free core, milliseconds on a loaded machine.
_STD_EXACT = 1 << 18
_STD_SAMPLE = 1 << 15
_STD_RUNS = 32

# CPU models with at least this many parameter elements are filled on several threads, one
# parameter per task; each parameter has its own generator, so values do not change.
_PARALLEL_NUMEL = 1 << 22


@dataclass
class InitRow:
    """What ``init_model`` did to one parameter (or one gate/projection block of it)."""

    parameter: str
    shape: tuple[int, ...]
    scheme: str
    action: str
    fan_in: int | None = None
    fan_out: int | None = None
    activation: str | None = None
    activation_source: str | None = None
    gain: float | None = None
    target_std: float | None = None
    realized_std: float | None = None


@dataclass
class InitReport:
    """The per-parameter plan and outcome of :func:`init_model`; ``str()`` is a table."""

    rows: list[InitRow] = field(default_factory=list)
    seed: int | None = None

    _HEADERS = ("parameter", "shape", "scheme", "fan_in", "fan_out", "activation", "gain",
                "target std", "realized std")  # fmt: skip

    def __str__(self) -> str:
        table = [
            (r.parameter, r.shape, r.scheme, r.fan_in, r.fan_out, r.activation, r.gain,
             r.target_std, r.realized_std)
            for r in self.rows
        ]  # fmt: skip
        return format_table(self._HEADERS, table)

    def __getitem__(self, parameter: str) -> InitRow:
        for row in self.rows:
            if row.parameter == parameter:
                return row
        raise KeyError(
            f"no row for {parameter!r}; parameters: {', '.join(r.parameter for r in self.rows)}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "rows": [asdict(r) | {"shape": list(r.shape)} for r in self.rows],
        }


def _rule_for(rules: Rules, qualified: str, module: nn.Module) -> tuple[bool, Spec | None]:
    if not rules:
        return False, None
    for key, value in rules.items():
        if isinstance(key, str) and fnmatch.fnmatchcase(qualified, key):
            return True, value
        if isinstance(key, type) and isinstance(module, key):
            return True, value
    return False, None


def _check_rules(rules: Rules) -> dict[RuleKey, Initializer | str]:
    if rules is None:
        return {}
    if not isinstance(rules, Mapping):
        raise TypeError(f"rules must be a mapping {{glob or module type: scheme}}; got {rules!r}")
    checked: dict[RuleKey, Initializer | str] = {}
    for key, value in rules.items():
        if not isinstance(key, str) and not (isinstance(key, type) and issubclass(key, nn.Module)):
            raise TypeError(
                f"rule keys are parameter-name globs or nn.Module subclasses; got {key!r}"
            )
        checked[key] = "keep" if value == "keep" else get(value)
    return checked


def _bias_scheme(
    bias: Spec, weight: torch.Tensor | None, module: nn.Module | None = None
) -> Initializer | None:
    if bias == "keep":
        return None
    if bias == "default" and isinstance(module, nn.RNNBase):
        bound = 1 / math.sqrt(module.hidden_size)  # PyTorch's U(-1/sqrt(h), 1/sqrt(h))
        return Uniform(-bound, bound)
    if bias == "default":
        if weight is None or weight.dim() < 2:
            return get("zeros")
        bound = 1 / math.sqrt(fan_in_fan_out(weight.shape)[0])
        return Uniform(-bound, bound)
    return get(bias)


def _decide(
    rules: dict[RuleKey, Initializer | str], qualified: str, module: nn.Module, name: str,
    param: torch.Tensor, weight_scheme: Initializer, bias: Spec, own_weight: Any,
) -> tuple[Initializer | str | None, str]:  # fmt: skip
    """The scheme (``None`` or ``"keep"``: leave as is) and action for one parameter."""
    matched, rule = _rule_for(rules, qualified, module)
    if matched:
        return rule, "rule"
    if isinstance(module, _NORM_TYPES):
        return get("ones" if name == "weight" else "zeros"), "norm"
    if "bias" in name:
        return _bias_scheme(bias, own_weight, module), "bias"
    if param.dim() >= 2:
        return weight_scheme, "weight"
    return None, "keep"


def _kept_parameters(model: nn.Module, scheme: Spec, bias: Spec, rules: Rules) -> list[str]:
    """Qualified names of the parameters :func:`init_model` would leave as they are."""
    weight_scheme, checked_rules = get(scheme), _check_rules(rules)
    kept: list[str] = []
    seen: set[int] = set()
    for module_name, module in model.named_modules():
        own_weight = getattr(module, "weight", None)
        for name, param in module.named_parameters(recurse=False):
            if id(param) in seen:
                continue
            seen.add(id(param))
            qualified = f"{module_name}.{name}" if module_name else name
            chosen, _ = _decide(
                checked_rules, qualified, module, name, param, weight_scheme, bias, own_weight
            )
            if chosen is None or chosen == "keep":
                kept.append(qualified)
    return kept


def _realized_std(tensor: torch.Tensor) -> torch.Tensor | None:
    if tensor.device.type == "meta" or tensor.numel() < 2:
        return None
    flat = tensor.detach().reshape(-1)
    n = flat.numel()
    if n > _STD_EXACT:
        run = _STD_SAMPLE // _STD_RUNS
        flat = flat.as_strided((_STD_RUNS, run), ((n - run) // (_STD_RUNS - 1), 1))
    return flat.float().std()


# ---- rng="counter" | "torch": how each parameter draws (kept apart from the planning above)
RNG = Literal["counter", "torch"]
RNGS = ("counter", "torch")


def _block(rng: str, param: torch.Tensor, chunk: FanChunk | None) -> Any:
    """What a fill writes: a row block of the parameter (``Rows``: any DTensor sharding) for
    the counter stream, the tensor itself or a slice of it for a torch generator."""
    if rng == "counter":
        return Rows.of(param, *(() if chunk is None else (chunk.start, chunk.stop)))
    if is_dtensor(param):
        raise ValueError(
            "rng='torch' cannot initialize DTensor parameters: torch's generators give each "
            "shard its own stream, so values change with the sharding; use rng='counter'"
        )
    return param if chunk is None else param[chunk.start : chunk.stop]


@dataclass
class _Fill:
    """One parameter's work: its stream seed and its (block, scheme, fans, activation) list."""

    seed: int
    device: torch.device
    blocks: list[tuple[str, Any, Initializer, tuple[int, int] | None, Any]]
    stds: list[torch.Tensor | None] = field(default_factory=list)
    rng: str = "torch"
    name: str = ""  # the parameter's qualified name: with the seed, the counter stream's key

    def run(self) -> None:
        if self.device.type == "meta":  # no values to fill; shapes were checked already
            self.stds.extend([None] * len(self.blocks))
            return
        if self.rng == "counter":
            for label, block, chosen, fans, act in self.blocks:
                try:
                    local = fill_rows(chosen, block, self.seed, self.name, fans, act)
                except ValueError as error:
                    raise ValueError(f"cannot initialize {label}: {error}") from None
                with torch.no_grad():  # a shard's std is not the parameter's: see audit_init
                    sharded = block.sharded or local is None
                    self.stds.append(None if sharded else _realized_std(local))
            return
        generator = reseeded_generator(self.seed, self.device)
        for label, target, chosen, fans, act in self.blocks:
            try:
                chosen(target.data, generator, fans=fans, activation=act)
            except ValueError as error:
                raise ValueError(f"cannot initialize {label}: {error}") from None
            with torch.no_grad():
                self.stds.append(_realized_std(target))


def init_model(
    model: nn.Module,
    scheme: Spec = "he_normal",
    *,
    bias: Spec = "zeros",
    rules: Rules = None,
    seed: int | None = None,
    rng: RNG = "counter",
) -> InitReport:
    """Initialize every parameter of ``model`` in place and report what was done.

    ``scheme``: any spec :func:`initlab.get` accepts, for weights (>= 2 dims). Activation-aware
    schemes (``he_*`` by default, ``xavier_*:gain=auto``, ``orthogonal:gain=auto``) take the
    gain of the activation that follows each layer, e.g. ``std = sqrt(2 / fan_in)`` before a
    ReLU and ``1 / sqrt(fan_in)`` before nothing.
    ``bias``: ``"zeros"`` (default), ``"keep"``, ``"default"`` (PyTorch's
    ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``) or a scheme spec.
    ``rules``: ``{glob or module type: spec or "keep"}``, first match wins.
    ``seed``: same seed, same values; ``None`` draws a fresh seed (recorded in the report).
    ``rng``: ``"counter"`` (default): each element is a pure function of (seed, parameter
    name, its index in the logical tensor), so the values are the same on one process or on
    any sharding (DTensor ``Shard``/``Replicate`` placements, FSDP2, a pipeline stage that
    keeps the parameter names) and on any thread count; see :mod:`initlab.initializers.sharded`.
    ``"torch"``: one ``torch.Generator`` per parameter, seeded from (seed, name): the values
    initlab gave before the counter stream existed (not for DTensors).

    >>> import torch.nn as nn
    >>> report = init_model(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1)), seed=0)
    >>> round(report["0.weight"].target_std, 4)  # sqrt(2 / 4)
    0.7071
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"init_model needs a torch.nn.Module; got {type(model).__name__}")
    weight_scheme = get(scheme)
    checked_rules = _check_rules(rules)
    if bias not in ("keep", "default"):
        get(bias)  # validate once, up front
    check_choice("rng", rng, RNGS)
    seed = as_seed(seed)
    activations = following_activations(model)
    report = InitReport(seed=seed)
    fills: list[_Fill] = []
    measured: list[InitRow] = []
    seen: dict[int, str] = {}  # id -> first qualified name (tied parameters)

    for module_name, module in model.named_modules():
        own_weight = getattr(module, "weight", None)
        for name, param in module.named_parameters(recurse=False):
            qualified = f"{module_name}.{name}" if module_name else name
            shape = tuple(param.shape)
            if id(param) in seen:
                report.rows.append(InitRow(qualified, shape, f"tied to {seen[id(param)]}", "tied"))
                continue
            seen[id(param)] = qualified
            chosen, action = _decide(
                checked_rules, qualified, module, name, param, weight_scheme, bias, own_weight
            )
            if chosen is None or chosen == "keep":
                report.rows.append(InitRow(qualified, shape, "kept", "keep"))
                continue
            assert isinstance(chosen, Initializer)
            chunks: list[FanChunk] | None = None
            if chosen.uses_fans or param.dim() >= 2:
                chunks = parameter_fans(module, name, param)
            if chosen.uses_fans and chunks is None:
                raise ValueError(
                    f"{qualified} has shape {shape}: {chosen.name} needs fans (>= 2 dims); "
                    f"give it a rule with a scheme that needs none (zeros, normal, uniform)"
                )
            found = activations.get(module_name)
            stream_seed = seed if rng == "counter" else derive_seed(seed, qualified)
            fill = _Fill(stream_seed, param.device, [], rng=rng, name=qualified)
            for chunk in chunks or [None]:
                target = _block(rng, param, chunk)
                act = None
                source = None
                if chunk is not None and chunk.activation is not None:
                    act, source = (chunk.activation, None), "layer"
                elif found is not None and action in ("weight", "rule"):
                    act, source = found.activation, found.source
                fans = None if chunk is None else (chunk.fan_in, chunk.fan_out)
                label = qualified if chunk is None or len(chunks) == 1 else (
                    f"{qualified}[{chunk.role}]"
                )  # fmt: skip
                try:
                    chosen._check_shape(tuple(target.shape))
                    target_std = chosen.target_std(tuple(target.shape), fans, act)
                except ValueError as error:
                    raise ValueError(f"cannot initialize {label}: {error}") from None
                row = InitRow(
                    parameter=label,
                    shape=tuple(target.shape),
                    scheme=str(chosen),
                    action=action,
                    fan_in=None if fans is None else fans[0],
                    fan_out=None if fans is None else fans[1],
                    activation=None if act is None else act[0],
                    activation_source=source,
                    gain=chosen.gain_for(act),
                    target_std=target_std,
                )
                report.rows.append(row)
                fill.blocks.append((label, target, chosen, fans, act))
                measured.append(row)
            fills.append(fill)
    # Fill: per parameter, independent generators, so threads do not change the values.
    on_cpu = all(f.device.type == "cpu" for f in fills)
    numel = sum(t.numel() for f in fills for _, t, *_ in f.blocks)
    parallel_map(_Fill.run, fills, workers=None if on_cpu and numel >= _PARALLEL_NUMEL else 1)
    # One host sync for all realized stds (matters on GPUs).
    stds = [s for f in fills for s in f.stds]
    pending = [(row, s) for row, s in zip(measured, stds, strict=True) if s is not None]
    if pending:
        device = pending[0][1].device
        values = torch.stack([s.to(device) for _, s in pending]).tolist()
        for (row, _), value in zip(pending, values, strict=True):
            row.realized_std = value
    return report


def default_init_std(module: nn.Module) -> dict[str, float]:
    """The std of each parameter under PyTorch's own default initialization.

    ``Linear``/``Conv``: ``kaiming_uniform_(a=sqrt(5))``, i.e. ``U(-1/sqrt(fan_in),
    1/sqrt(fan_in))``, std ``1/sqrt(3 fan_in)`` -- a sixth of He's variance ``2 / fan_in``
    for the weight, and the same for the bias. ``Embedding``: ``N(0, 1)``. ``RNN``/``LSTM``/
    ``GRU``: ``U(-1/sqrt(hidden), 1/sqrt(hidden))``. ``MultiheadAttention``: Xavier-uniform
    ``in_proj_weight``, zero biases. Norm layers: weight 1, bias 0 (std 0). Parameters of
    other modules are left out.
    """
    result: dict[str, float] = {}
    for module_name, sub in module.named_modules():
        prefix = f"{module_name}." if module_name else ""
        params = dict(sub.named_parameters(recurse=False))
        if isinstance(sub, nn.Linear | nn.modules.conv._ConvNd):
            fan_in = fan_in_fan_out(sub.weight.shape)[0]
            for name in params:
                result[prefix + name] = 1 / math.sqrt(3 * fan_in)
        elif isinstance(sub, nn.Bilinear):
            for name in params:
                result[prefix + name] = 1 / math.sqrt(3 * sub.weight.shape[1])
        elif isinstance(sub, nn.Embedding | nn.EmbeddingBag):
            result[prefix + "weight"] = 1.0
        elif isinstance(sub, nn.RNNBase):
            for name in params:
                result[prefix + name] = 1 / math.sqrt(3 * sub.hidden_size)
        elif isinstance(sub, nn.MultiheadAttention):
            for name, p in params.items():
                if "bias" in name and name != "bias_k" and name != "bias_v":
                    result[prefix + name] = 0.0
                elif name.endswith("proj_weight") or name in ("bias_k", "bias_v"):
                    # xavier_normal_ on bias_k/bias_v (1, 1, E): fans (E, E), std 1/sqrt(E)
                    fan_in, fan_out = fan_in_fan_out(p.shape)
                    result[prefix + name] = math.sqrt(2.0 / (fan_in + fan_out))
        elif isinstance(sub, _NORM_TYPES):
            for name in params:
                result[prefix + name] = 0.0
    # MultiheadAttention zeroes its out_proj bias after the Linear default.
    for module_name, sub in module.named_modules():
        if isinstance(sub, nn.MultiheadAttention) and sub.out_proj.bias is not None:
            prefix = f"{module_name}." if module_name else ""
            result[prefix + "out_proj.bias"] = 0.0
    return result
