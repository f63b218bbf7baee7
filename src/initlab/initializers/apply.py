"""``init_model``: initialize every parameter of an ``nn.Module`` in one call.

Per parameter, in this order of precedence:

1. ``rules``: the first rule that matches, by parameter-name glob (``"*.bias"``,
   ``"head.weight"``) or by module type (``nn.Embedding``); its value is a scheme spec or
   ``"keep"`` (leave the parameter as it is).
2. Parameters that are not floating point (an int64 table) and empty ones (``Linear(4, 0)``)
   are kept: there is nothing to draw. The report says so.
3. Normalization layers, known by type (BatchNorm, LayerNorm, GroupNorm, InstanceNorm, RMSNorm)
   or by name (a class whose name contains ``Norm``: ``LlamaRMSNorm``, ``T5LayerNorm``, timm's
   ``LayerNorm2d``), 1-D parameters: scale 1, shift 0, so they start as the identity; a
   zero-centred scale (the forward uses ``1 + w``, as Gemma's and Megatron's "layernorm 1p") is
   detected by behaviour (with ``w = 0`` the output is the plain normalization, not zero) and
   gets 0.
4. Biases (1-D parameters named ``*bias*``: ``in_proj_bias``, ``bias_ih_l0``): the ``bias``
   policy (zeros by default).
5. Weights: ``weight`` (or a recurrent/attention layer's ``weight_*``/``*_proj_weight``) with
   >= 2 dims gets ``scheme``, with layer-aware fans (``fans.parameter_fans``, one block per
   LSTM/GRU gate or q/k/v projection, Hugging Face ``Conv1D``'s ``(in, out)`` layout) and, for
   activation-aware schemes, the gain of the activation that follows the layer
   (:mod:`initlab.initializers.activations`) or that acts inside it (LSTM gates). Embeddings'
   ``padding_idx`` rows stay zero.
6. Every other parameter has no layer role initlab knows (ViT's ``pos_embedding`` and
   ``class_token``, ConvNeXt's layer-scale ``gamma``, PReLU slopes, any ``nn.Parameter`` set
   directly on a module): it keeps its module's value, and the report says why.

**Tied parameters** (GPT-2's ``wte``/``lm_head``) are initialized once. When one tensor is both
an input embedding and an output projection, the output use decides: the scheme is applied with
the projection's fans and activation (He/LeCun: ``std = 1 / sqrt(d_model)``), so the logits
start at unit scale (first loss near ``ln(vocab)``); an input embedding read through ``N(0, 1)``
or ``sqrt(2)`` would make the tied head's logits ``sqrt(d_model)`` times too large. The
embedding use then starts small, which the norm after it (every tied language model has one)
absorbs. The report's ``note`` says which use decided.

Each parameter draws from its own stream, keyed by ``seed`` and the parameter's qualified
name, so its values do not depend on the other parameters. By default (``rng="counter"``) every
element is a pure function of (seed, name, its index in the logical tensor), so DTensor shards
and pipeline stages get the values a single process gets (:mod:`initlab.initializers.sharded`);
``rng="torch"`` keeps the previous ``torch.Generator`` streams and their exact values.
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from initlab._core.rng import as_seed, parallel_map, reseeded_generator
from initlab._core.table import format_table
from initlab._core.validation import check_choice
from initlab.initializers.activations import discover
from initlab.initializers.fans import (
    WEIGHT_LAYOUTS,
    FanChunk,
    fan_in_fan_out,
    parameter_fans,
    weight_layout,
)
from initlab.initializers.registry import Spec, get
from initlab.initializers.schemes import Constant, Initializer, Uniform
from initlab.initializers.sharded import Rows, fill_rows, is_dtensor
from initlab.initializers.trace import _restored_state

RuleKey = str | type
Rules = Mapping[RuleKey, Spec] | None
Layouts = Mapping[str | type, str] | None

_NORM_TYPES = (
    nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm,
    *((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ()),
)  # fmt: skip
# Layers whose >= 2-D parameters initlab knows how to initialize (fans by layer type).
_WEIGHT_LAYERS = (
    nn.Linear, nn.Bilinear, nn.modules.conv._ConvNd, nn.Embedding, nn.EmbeddingBag, nn.RNNBase,
    nn.MultiheadAttention,
)  # fmt: skip
_SHIFT_NAMES = ("bias", "beta", "shift", "offset")
_EMBEDDINGS = (nn.Embedding, nn.EmbeddingBag)

# Realized std is measured exactly up to _STD_EXACT elements and beyond that on _STD_RUNS
# evenly spaced contiguous runs totalling _STD_SAMPLE elements (a strided sample would read a
# cache line per element). The sample stays under torch's intra-op grain size (32768), so the
# reduction runs inline: a parallel one waits for a free core, milliseconds on a loaded machine.
_STD_EXACT = 1 << 18
_STD_SAMPLE = 1 << 15
_STD_RUNS = 32
# Parameters up to this size have their realized std measured together, in one reduction per
# dtype and device (per-parameter reductions dominate on models with many small layers).
_STD_BATCH = 1 << 12

# CPU models with at least this many parameter elements are filled on several threads, one
# parameter per task; each parameter has its own generator, so values do not change.
_PARALLEL_NUMEL = 1 << 22


@dataclass
class InitRow:
    """What ``init_model`` did to one parameter (or one gate/projection block of it).

    ``action``: ``rule``, ``norm``, ``bias``, ``weight``, ``tied`` or ``keep``;
    ``activation_source``: how the activation after the layer was found (``trace``,
    ``measured``, ``sequential``, ``fx``, ``order``, ``layer``, ``none``); ``note``: why a
    parameter was kept, which use of a tied tensor decided, a non-default layout, a padding row.
    """

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
    note: str | None = None


@dataclass
class InitReport:
    """The per-parameter plan and outcome of :func:`init_model`; ``str()`` is a table."""

    rows: list[InitRow] = field(default_factory=list)
    seed: int | None = None
    activations_found_by: str | None = None  # how activations were found, for the model

    _HEADERS = ("parameter", "shape", "scheme", "fan_in", "fan_out", "activation", "found by",
                "gain", "target std", "realized std", "note")  # fmt: skip

    def __str__(self) -> str:
        table = [
            (r.parameter, r.shape, r.scheme, r.fan_in, r.fan_out, r.activation,
             r.activation_source, r.gain, r.target_std, r.realized_std, r.note or "")
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

    def kept(self) -> dict[str, str]:
        """Parameters left as they were, with the reason: ``{name: note}``."""
        return {r.parameter: r.note or "kept" for r in self.rows if r.action == "keep"}

    def to_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "activations_found_by": self.activations_found_by,
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


@functools.cache
def _named(spec: str) -> Initializer:
    """``get(spec)`` for the fixed specs used per parameter (``zeros``, ``ones``), once."""
    return get(spec)


@functools.cache
def _is_norm_type(kind: type) -> bool:
    return issubclass(kind, _NORM_TYPES) or "norm" in kind.__name__.lower()


def _bias_scheme(
    bias: Spec, weight: torch.Tensor | None, module: nn.Module | None = None
) -> Initializer | None:
    if bias == "keep":
        return None
    if bias == "zeros":
        return _named("zeros")
    if bias == "default" and isinstance(module, nn.RNNBase):
        bound = 1 / math.sqrt(module.hidden_size)  # PyTorch's U(-1/sqrt(h), 1/sqrt(h))
        return Uniform(-bound, bound)
    if bias == "default":
        if weight is None or weight.dim() < 2 or weight.numel() == 0:
            return _named("zeros")
        bound = 1 / math.sqrt(fan_in_fan_out(weight.shape)[0])
        return Uniform(-bound, bound)
    return get(bias)


def _is_weight(module: nn.Module, name: str, param: torch.Tensor) -> bool:
    """A >= 2-D parameter with a layer role: a known layer's weight, or any ``weight``."""
    if param.dim() < 2:
        return False
    if name == "weight":
        return True
    if isinstance(module, nn.RNNBase):
        return name.startswith(("weight_ih", "weight_hh"))
    if isinstance(module, nn.MultiheadAttention):
        return name.endswith("proj_weight")
    return False


def _keep_reason(module: nn.Module, name: str, param: torch.Tensor) -> str:
    if isinstance(module, nn.PReLU):
        return "PReLU slope: kept"
    kind = type(module).__name__
    return (
        f"no known layer role ({name!r} set directly on {kind}): kept its value; "
        "name it in rules to initialize it"
    )


def _decide(
    rules: dict[RuleKey, Initializer | str], qualified: str, module: nn.Module, name: str,
    param: torch.Tensor, weight_scheme: Initializer, bias: Spec, own_weight: Any,
    zero_centred: Callable[[nn.Module], bool] | None = None,
) -> tuple[Initializer | str | None, str, str | None]:  # fmt: skip
    """The scheme (``None`` or ``"keep"``: leave as is), action and note for one parameter."""
    # Tensor attribute reads dispatch through Parameter's torch-function handling: read once.
    dtype, shape = param.dtype, tuple(param.shape)
    ndim = len(shape)
    if not dtype.is_floating_point:
        return None, "keep", f"{str(dtype).removeprefix('torch.')}: not floating point"
    if rules:
        matched, rule = _rule_for(rules, qualified, module)
        if matched:
            return rule, "rule", None
    if 0 in shape:
        return None, "keep", "empty: nothing to draw"
    if ndim <= 1 and _is_norm_type(type(module)):
        if any(s in name for s in _SHIFT_NAMES):
            return _named("zeros"), "norm", None
        if zero_centred is not None and zero_centred(module):
            return _named("zeros"), "norm", "zero-centred norm (forward uses 1 + w): zeros"
        return _named("ones"), "norm", None
    if "bias" in name and (ndim <= 1 or isinstance(module, _WEIGHT_LAYERS)):
        return _bias_scheme(bias, own_weight, module), "bias", None
    if isinstance(module, nn.Embedding):
        owner = qualified.rpartition(".")[0].rpartition(".")[2]
        if "bias" in owner:
            # T5's relative_attention_bias: an Embedding used as an attention bias table
            return None, "keep", f"attention bias table (an Embedding named {owner!r}): kept"
    if ndim >= 2 and _is_weight(module, name, param):
        return weight_scheme, "weight", None
    return None, "keep", _keep_reason(module, name, param)


def _zero_centred_detector() -> Callable[[nn.Module], bool]:
    """Whether a norm's scale is used as ``1 + w``: with scale and shift 0, its output is the
    plain normalization instead of zeros. Probed once per module type (torch's own norms are
    multiplicative and are not probed)."""
    cache: dict[type, bool] = {}

    def detect(module: nn.Module) -> bool:
        if isinstance(module, _NORM_TYPES):
            return False
        kind = type(module)
        if kind not in cache:
            cache[kind] = _probe_one_plus(module)
        return cache[kind]

    return detect


def _probe_one_plus(module: nn.Module) -> bool:
    scales = [p for n, p in module.named_parameters(recurse=False) if p.dim() == 1]
    if not scales or any(p.device.type == "meta" for p in scales):
        return False
    size = scales[0].shape[0]
    saved = [p.detach().clone() for p in scales]
    try:
        with torch.no_grad(), _restored_state(module):
            for p in scales:
                p.zero_()
            generator = torch.Generator().manual_seed(0)
            for shape in ((2, 3, size), (2, size, 3, 3), (2, size, 3)):
                x = torch.randn(shape, generator=generator).to(scales[0])
                try:
                    out = module(x)
                except Exception:  # this layout is not the module's: try the next
                    continue
                if isinstance(out, torch.Tensor) and out.shape == x.shape:
                    return bool(out.abs().max() > 1e-3)
    finally:
        with torch.no_grad():
            for p, value in zip(scales, saved, strict=True):
                p.copy_(value)
    return False


def _owners(model: nn.Module) -> dict[int, list[tuple[str, nn.Module, str]]]:
    """``id(param)`` -> every (module name, module, attribute) that holds it, in order, for the
    parameters held in more than one place (tied); others are left out."""
    first: dict[int, tuple[str, nn.Module, str]] = {}
    owners: dict[int, list[tuple[str, nn.Module, str]]] = {}
    for module_name, module in model.named_modules(remove_duplicate=False):
        for name, param in module._parameters.items():
            if param is None:
                continue
            entry = (module_name, module, name)
            earlier = first.setdefault(id(param), entry)
            if earlier is entry or (earlier[1] is module and earlier[2] == name):
                continue
            found = owners.setdefault(id(param), [earlier])
            if all(e[1] is not module or e[2] != name for e in found):
                found.append(entry)
    return owners


def _deciding_use(
    uses: list[tuple[str, nn.Module, str]],
) -> tuple[tuple[str, nn.Module, str], str | None]:
    """The use of a tied tensor that decides its init, and a note saying so."""
    if len(uses) < 2:
        return uses[0], None
    inputs = [u for u in uses if isinstance(u[1], nn.Embedding | nn.EmbeddingBag)]
    outputs = [u for u in uses if u not in inputs]
    names = ", ".join(_qualified(u) for u in uses)
    if inputs and outputs:
        decider = outputs[0]
        return decider, (
            f"tied ({names}): initialized for its output use {_qualified(decider)} "
            f"({type(decider[1]).__name__}), so the logits start at unit scale"
        )
    return uses[0], f"tied ({names}): initialized once, for {_qualified(uses[0])}"


def _tied_rule(
    rules: dict[RuleKey, Initializer | str], uses: list[tuple[str, nn.Module, str]]
) -> Initializer | str | None:
    for use in uses:
        matched, rule = _rule_for(rules, _qualified(use), use[1])
        if matched:
            return rule
    return None


def _qualified(use: tuple[str, nn.Module, str]) -> str:
    return f"{use[0]}.{use[2]}" if use[0] else use[2]


def _padding_rows(uses: list[tuple[str, nn.Module, str]]) -> list[int]:
    rows = []
    for _, module, _ in uses:
        if isinstance(module, nn.Embedding | nn.EmbeddingBag) and module.padding_idx is not None:
            rows.append(int(module.padding_idx))
    return sorted(set(rows))


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
            chosen, _, _ = _decide(
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


# ---- rng="counter" | "torch": how each parameter draws
RNG = Literal["counter", "torch"]
RNGS = ("counter", "torch")


def _block(rng: str, param: torch.Tensor, chunk: FanChunk | None) -> Any:
    """What a counter-stream fill writes: a row block of the parameter (``Rows``: any DTensor
    sharding), its logical indices those of ``param`` (for ``(in, out)`` layers, the transposed
    view the fans read)."""
    return Rows.of(param, *(() if chunk is None else (chunk.start, chunk.stop)))


def _small_stds(targets: list[torch.Tensor]) -> torch.Tensor:
    """Sample std of many small tensors of one shape, dtype and device: one reduction."""
    return torch.stack(targets).reshape(len(targets), -1).float().std(dim=1)


class _Fill:
    """One parameter's work: its stream seed, its (block, scheme, fans, activation) list, the
    rows of an embedding's padding indices to zero afterwards, and how it draws (``rng``; with
    the counter stream the seed and the qualified ``name`` key the stream)."""

    __slots__ = ("blocks", "device", "name", "rng", "seed", "stds", "zero_rows")

    def __init__(self, seed: int, device: torch.device, blocks: list[Any], rng: str = "torch",
                 name: str = "") -> None:  # fmt: skip
        self.seed = seed
        self.device = device
        self.blocks: list[tuple[str, Any, Initializer, Any, Any]] = blocks
        self.stds: list[torch.Tensor | None] = []
        self.zero_rows: tuple[torch.Tensor, list[int]] | None = None
        self.rng = rng
        self.name = name

    def run(self) -> None:
        if self.device.type == "meta":  # no values to fill; shapes were checked already
            self.stds.extend([None] * len(self.blocks))
            return
        if self.rng == "counter":
            self._run_counter()
            return
        generator = reseeded_generator(self.seed, self.device)
        with torch.no_grad():
            for label, target, chosen, fans, act in self.blocks:
                # shapes and fans were checked when planning: fill directly (what
                # Initializer.__call__ does after its checks)
                try:
                    chosen._fill(target, generator, fans, act)
                except ValueError as error:
                    raise ValueError(f"cannot initialize {label}: {error}") from None
            if self.zero_rows is not None:
                param, rows = self.zero_rows
                param[rows] = 0
            for _, target, *_ in self.blocks:
                # small: the values themselves, measured in batches by _record_stds
                # (a 0-d entry is a measured std; 0-d parameters have none: None)
                small = 2 <= target.numel() <= _STD_BATCH
                self.stds.append(target if small else _realized_std(target))

    def _run_counter(self) -> None:
        """Fill every block from the counter stream of (seed, name): this rank's part only."""
        for label, block, chosen, fans, act in self.blocks:
            try:
                local = fill_rows(chosen, block, self.seed, self.name, fans, act)
            except ValueError as error:
                raise ValueError(f"cannot initialize {label}: {error}") from None
            with torch.no_grad():  # a shard's std is not the parameter's: see audit_init
                if block.sharded or local is None:
                    self.stds.append(None)
                elif 2 <= local.numel() <= _STD_BATCH:
                    self.stds.append(local)
                else:
                    self.stds.append(_realized_std(local))
        if self.zero_rows is not None:
            param, rows = self.zero_rows
            with torch.no_grad():
                param[rows] = 0


def _check_layouts(layouts: Layouts) -> dict[str | type, str]:
    if layouts is None:
        return {}
    if not isinstance(layouts, Mapping):
        raise TypeError(
            f"layouts must be a mapping {{layer type or its name: 'in_out' or 'out_in'}}; "
            f"got {layouts!r}"
        )
    checked: dict[str | type, str] = {}
    for key, value in layouts.items():
        if not isinstance(key, str | type):
            raise TypeError(f"layouts keys are layer types or type names; got {key!r}")
        checked[key] = check_choice(f"layouts[{key!r}]", value, WEIGHT_LAYOUTS)
    return checked


def init_model(
    model: nn.Module,
    scheme: Spec = "he_normal",
    *,
    bias: Spec = "zeros",
    rules: Rules = None,
    seed: int | None = None,
    example: Any = None,
    layouts: Layouts = None,
    rng: RNG = "counter",
    recipe: str | None = None,
    **recipe_options: Any,
) -> InitReport:
    """Initialize every parameter of ``model`` in place and report what was done.

    ``recipe``: a training codebase's init (``"megatron"``, ``"gpt2"``, ``"olmo2"``, ...;
    ``initlab recipes`` lists them) instead of ``scheme``; ``recipe_options`` override what
    the recipe reads from the model (``sigma``, ``L``, ``base_width``, ``example_input``,
    ``overrides``). Returns a ``RecipeReport``: the same columns plus each parameter's role.

    ``scheme``: any spec :func:`initlab.get` accepts, for weights (>= 2 dims). Activation-aware
    schemes (``he_*`` by default, ``xavier_*:gain=auto``, ``orthogonal:gain=auto``) take the
    gain of the activation that follows each layer, e.g. ``std = sqrt(2 / fan_in)`` before a
    ReLU and ``1 / sqrt(fan_in)`` before nothing.
    ``bias``: ``"zeros"`` (default), ``"keep"``, ``"default"`` (PyTorch's
    ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``) or a scheme spec.
    ``rules``: ``{glob or module type: spec or "keep"}``, first match wins.
    ``seed``: same seed, same values; ``None`` draws a fresh seed (recorded in the report).
    ``example``: an input the model accepts (tensor, tuple of positional arguments or dict of
    keyword arguments): activations are then found from one real forward pass (no gradients,
    nothing about the model changes). Without it, ``torch.fx`` or, failing that, registration
    order (a guess, with a warning).
    ``layouts``: ``{layer type or type name: "in_out" | "out_in"}`` for layers of your own that
    store their weight as ``(in, out)``; Hugging Face's ``Conv1D`` is known.
    ``rng``: ``"counter"`` (default): each element is a pure function of (seed, parameter
    name, its index in the logical tensor), so the values are the same on one process or on
    any sharding (DTensor ``Shard``/``Replicate`` placements, FSDP2, a pipeline stage that
    keeps the parameter names) and on any thread count; see :mod:`initlab.initializers.sharded`.
    ``"torch"``: one ``torch.Generator`` per parameter, seeded from (seed, name): the values
    initlab gave before the counter stream existed (not for DTensors).

    See the module docstring for norms, biases, tied tensors, padding rows and kept parameters.

    >>> import torch.nn as nn
    >>> report = init_model(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1)), seed=0)
    >>> round(report["0.weight"].target_std, 4)  # sqrt(2 / 4)
    0.7071
    """
    if recipe is not None:  # a codebase's recipe: initializers/recipes.py does the work
        from initlab.initializers.recipes import init_with_recipe

        if example is not None:
            recipe_options.setdefault("example_input", example)
        return init_with_recipe(model, recipe, seed=seed, **recipe_options)  # type: ignore[return-value]
    if recipe_options:
        raise TypeError(f"init_model got unexpected options {sorted(recipe_options)}: "
                        f"they are only valid with recipe=...")  # fmt: skip
    if not isinstance(model, nn.Module):
        raise TypeError(f"init_model needs a torch.nn.Module; got {type(model).__name__}")
    weight_scheme = get(scheme)
    checked_rules = _check_rules(rules)
    checked_layouts = _check_layouts(layouts)
    if bias not in ("keep", "default"):
        get(bias)  # validate once, up front
    check_choice("rng", rng, RNGS)
    seed = as_seed(seed)
    found = discover(model, example)
    activations = found.activations
    report = InitReport(seed=seed, activations_found_by=found.source)
    fills: list[_Fill] = []
    measured: list[InitRow] = []
    owners = _owners(model)
    zero_centred = _zero_centred_detector()
    seen: dict[int, str] = {}  # id -> first qualified name (tied parameters)
    plans: dict[tuple[Any, ...], tuple[float, float | None]] = {}  # (scheme, shape, ...) -> stds
    constants: dict[tuple[Any, ...], list[torch.Tensor]] = {}  # (value, device, dtype) -> 1-D
    derive = _seed_deriver(seed)

    spec_text: dict[int, str] = {}  # id(scheme) -> str(scheme), computed once
    fan_cache: dict[tuple[Any, ...], list[FanChunk] | None] = {}
    for module_name, module in model.named_modules():
        for name, param in module._parameters.items():
            if param is None:
                continue
            qualified = f"{module_name}.{name}" if module_name else name
            shape = tuple(param.shape)
            if id(param) in seen:
                report.rows.append(InitRow(qualified, shape, f"tied to {seen[id(param)]}", "tied"))
                continue
            seen[id(param)] = qualified
            uses = owners.get(id(param))
            if uses is None:  # not tied: the common case, kept cheap (models of many layers)
                use_module_name, use_module, use_name, tie_note = module_name, module, name, None
                uses = [(module_name, module, name)]
            else:
                (use_module_name, use_module, use_name), tie_note = _deciding_use(uses)
            own_weight = use_module._parameters.get("weight")
            tied_rule = _tied_rule(checked_rules, uses) if tie_note and checked_rules else None
            if tied_rule is not None:  # a rule naming any use of a tied tensor applies to it
                chosen, action, note = tied_rule, "rule", None
            else:
                chosen, action, note = _decide(
                    checked_rules, qualified, use_module, use_name, param, weight_scheme, bias,
                    own_weight, zero_centred,
                )  # fmt: skip
            if chosen is None or chosen == "keep":
                report.rows.append(InitRow(qualified, shape, "kept", "keep", note=note))
                continue
            assert isinstance(chosen, Initializer)
            layout = (
                weight_layout(use_module, use_name, param, checked_layouts, found.flow)
                if param.dim() == 2 and use_name == "weight"
                else "out_in"
            )
            view = param.t() if layout == "in_out" else param
            notes = [n for n in (tie_note, note) if n]
            if layout == "in_out":
                notes.append(f"{type(use_module).__name__} stores (in, out)")
            chunks: list[FanChunk] | None = None
            if chosen.uses_fans or param.dim() >= 2:
                # fans depend on the layer type, the parameter and its shape (and a conv's groups)
                attributes = use_module.__dict__
                fan_key = (
                    type(use_module),
                    use_name,
                    tuple(view.shape),
                    attributes.get("groups"),
                    attributes.get("mode"),
                )
                if isinstance(use_module, nn.RNNBase | nn.MultiheadAttention):
                    chunks = parameter_fans(use_module, use_name, view)
                elif fan_key in fan_cache:
                    chunks = fan_cache[fan_key]
                else:
                    chunks = fan_cache[fan_key] = parameter_fans(use_module, use_name, view)
            if chosen.uses_fans and chunks is None:
                raise ValueError(
                    f"{qualified} has shape {shape}: {chosen.name} needs fans (>= 2 dims); "
                    f"give it a rule with a scheme that needs none (zeros, normal, uniform)"
                )
            following = activations.get(use_module_name)
            if isinstance(chosen, Constant) and param.dim() <= 1 and not is_dtensor(param):
                # biases, norm scales: no generator, filled together below; std exactly 0
                constants.setdefault((chosen.value, param.device, param.dtype), []).append(param)
                report.rows.append(InitRow(
                    qualified, shape, spec_text.get(id(chosen)) or str(chosen), action,
                    target_std=0.0, realized_std=0.0 if param.numel() >= 2 else None,
                    note="; ".join(notes) or None,
                ))  # fmt: skip
                continue
            if rng == "torch" and is_dtensor(param):
                raise ValueError(
                    f"rng='torch' cannot initialize DTensor parameters ({qualified}): torch's "
                    "generators "
                    "give each shard its own stream, so values change with the sharding; use "
                    "rng='counter'"
                )
            stream_seed = seed if rng == "counter" else derive(qualified)
            fill = _Fill(stream_seed, param.device, [], rng=rng, name=qualified)
            padding = (
                _padding_rows(uses)
                if action in ("weight", "rule") and (tie_note or isinstance(module, _EMBEDDINGS))
                else []
            )
            if padding:
                fill.zero_rows = (param, padding)
                notes.append(f"padding row{'s' if len(padding) > 1 else ''} "
                             f"{', '.join(map(str, padding))} kept at zero")  # fmt: skip
            whole = chunks is None or len(chunks) == 1
            for chunk in chunks or [None]:
                whole_chunk = chunk is None or (whole and chunk.start == 0)
                if rng == "counter":
                    target = _block(rng, view, chunk)
                else:
                    target = view if whole_chunk else view[chunk.start : chunk.stop]
                act = None
                source = None
                if chunk is not None and chunk.activation is not None:
                    act, source = (chunk.activation, None), "layer"
                elif following is not None and action in ("weight", "rule"):
                    act, source = following.activation, following.source
                fans = None if chunk is None else (chunk.fan_in, chunk.fan_out)
                label = qualified if whole else f"{qualified}[{chunk.role}]"
                target_shape = tuple(target.shape)
                key = (id(chosen), target_shape, fans, act)
                stds = plans.get(key)
                if stds is None:
                    try:
                        chosen._check_shape(target_shape)
                        stds = (chosen.target_std(target_shape, fans, act), chosen.gain_for(act))
                    except ValueError as error:
                        raise ValueError(f"cannot initialize {label}: {error}") from None
                    plans[key] = stds
                row_shape = shape if whole_chunk and layout == "in_out" else target_shape
                text = spec_text.get(id(chosen))
                if text is None:
                    text = spec_text[id(chosen)] = str(chosen)
                row = InitRow(
                    label, row_shape, text, action,
                    None if fans is None else fans[0], None if fans is None else fans[1],
                    None if act is None else str(act[0]), source, stds[1], stds[0],
                    note="; ".join(notes) or None,
                )  # fmt: skip
                report.rows.append(row)
                fill.blocks.append((label, target, chosen, fans, act))
                measured.append(row)
            fills.append(fill)
    # Fill: per parameter, independent generators, so threads do not change the values.
    on_cpu = all(f.device.type == "cpu" for f in fills)
    numel = sum(t.numel() for f in fills for _, t, *_ in f.blocks)
    parallel_map(_Fill.run, fills, workers=None if on_cpu and numel >= _PARALLEL_NUMEL else 1)
    with torch.no_grad():
        for (value, device, _), tensors in constants.items():
            if device.type != "meta":
                torch._foreach_zero_(tensors)
                if value != 0:
                    torch._foreach_add_(tensors, value)
    _record_stds(measured, [s for f in fills for s in f.stds])
    return report


def _seed_deriver(seed: int) -> Callable[[str], int]:
    """``derive_seed(seed, name)`` for many names: the hash of the common prefix is computed
    once and copied per name (same bytes hashed, so the same seeds; a test checks it)."""
    base = hashlib.blake2b(f"{int(seed)}\x1f".encode(), digest_size=8)

    def derive(name: str) -> int:
        h = base.copy()
        h.update(name.encode())
        return int.from_bytes(h.digest(), "little") >> 1

    return derive


def _record_stds(rows: list[InitRow], stds: list[torch.Tensor | None]) -> None:
    """Realized stds: small tensors (``stds`` holds the tensor itself) in batched reductions
    per dtype and device, the others as 0-d tensors; one host sync for all (matters on GPUs)."""
    small: dict[tuple[Any, ...], list[tuple[InitRow, torch.Tensor]]] = {}
    pending: list[tuple[InitRow, torch.Tensor]] = []
    for row, s in zip(rows, stds, strict=True):
        if s is None:
            continue
        if s.dim() == 0:  # a std measured already
            pending.append((row, s))
        else:
            small.setdefault((s.shape, s.dtype, s.device), []).append((row, s))
    groups = []
    for group in small.values():
        groups.append(([r for r, _ in group], _small_stds([t for _, t in group])))
    if pending or groups:
        device = (pending[0][1] if pending else groups[0][1]).device
        parts = [g.to(device) for _, g in groups]
        if pending:
            parts.insert(0, torch.stack([s.to(device) for _, s in pending]).float())
        flat = torch.cat(parts).tolist()  # one host sync
        ordered = [r for r, _ in pending] + [r for g, _ in groups for r in g]
        for row, value in zip(ordered, flat, strict=True):
            row.realized_std = value


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
