"""Which scheme each parameter gets (:func:`initlab.init_model`'s rules of precedence: rules,
non-float and empty parameters, norms, biases, weights, kept parameters), and the validation
of ``rules`` and ``layouts``. Pure decisions: nothing here draws values."""

from __future__ import annotations

import fnmatch
import functools
import math
from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from initlab._core.validation import check_choice
from initlab.initializers.fans import WEIGHT_LAYOUTS, fan_in_fan_out
from initlab.initializers.model_calls import _restored_state
from initlab.initializers.registry import Spec, get
from initlab.initializers.schemes import Initializer, Uniform
from initlab.initializers.sharded import is_dtensor

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
    feeds_residual: Callable[[], bool] | None = None,
) -> tuple[Initializer | str | None, str, str | None]:  # fmt: skip
    """The scheme (``None`` or ``"keep"``: leave as is), action and note for one parameter.

    ``feeds_residual()``: whether the parameter's module writes into a residual stream (from a
    traced data flow); a norm scale there that its constructor set to zeros is kept.
    """
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
    # the common case (trainable, no flags) costs three attribute reads: many-layer models
    if not param.requires_grad or param.__dict__ or "_no_reinit" in module.__dict__:
        intent = _intent(module, param)
        if intent is not None:
            return None, "keep", intent
    if ndim <= 1 and _is_norm_type(type(module)):
        if any(s in name for s in _SHIFT_NAMES):
            return _named("zeros"), "norm", None
        centred = zero_centred is not None and zero_centred(module)
        residual = feeds_residual is not None and not centred and _all_zero(param)
        if residual and feeds_residual():
            return (
                None,
                "keep",
                (
                    "zero-init residual scale (all zeros at construction, as timm's zero_init_last "
                    "and torchvision's zero_init_residual set it): kept"
                ),
            )
        if centred:
            return _named("zeros"), "norm", "zero-centred norm (forward uses 1 + w): zeros"
        return _named("ones"), "norm", None
    if "bias" in name and (ndim <= 1 or isinstance(module, _WEIGHT_LAYERS)):
        # Only under the default policy: a bias policy of the user's own names every bias.
        if bias == "zeros" and _projects_up(own_weight):
            structured = _time_step_bias(module, param)
            if structured is not None:
                return None, "keep", structured
        return _bias_scheme(bias, own_weight, module), "bias", None
    if isinstance(module, nn.Embedding):
        owner = qualified.rpartition(".")[0].rpartition(".")[2]
        if "bias" in owner:
            # T5's relative_attention_bias: an Embedding used as an attention bias table
            return None, "keep", f"attention bias table (an Embedding named {owner!r}): kept"
    if ndim >= 2 and _is_weight(module, name, param):
        return weight_scheme, "weight", None
    return None, "keep", _keep_reason(module, name, param)


# Flags on a parameter that say it must not be initialized again: Hugging Face marks weights
# loaded from a checkpoint ``_is_hf_initialized`` (its *modules* carry the same flag once
# ``_init_weights`` ran at construction, which says nothing about intent: not read); models
# mark structured constructor values ``_no_reinit`` (on the parameter or its module).
_PARAMETER_FLAGS = ("_is_hf_initialized", "_no_reinit")
_MODULE_FLAGS = ("_no_reinit",)


def _readable(param: torch.Tensor) -> bool:
    """Whether ``param``'s values can be read here (not on the meta device, not a DTensor)."""
    return param.device.type != "meta" and not is_dtensor(param)


def _all_zero(param: torch.Tensor) -> bool:
    return _readable(param) and param.numel() > 0 and not bool(param.detach().any())


def _intent(module: nn.Module, param: torch.Tensor) -> str | None:
    """Why ``param`` must keep its value whatever the scheme (frozen, flagged), or ``None``."""
    if not param.requires_grad:
        return "frozen (requires_grad=False): kept; name it in rules to initialize it"
    # flags live in the instance dicts (a missing attribute on a tensor is slow to look up)
    flags = param.__dict__
    for flag in _PARAMETER_FLAGS if flags else ():
        if flags.get(flag) is True:
            return f"marked {flag}: kept"
    for flag in _MODULE_FLAGS:
        if module.__dict__.get(flag) is True:
            return f"its module is marked {flag}: kept"
    return None


def _projects_up(weight: Any) -> bool:
    """A 2-D weight mapping a low rank up to at least 4x as many outputs (``dt_rank`` to
    ``d_inner``): the only layers whose bias :func:`_time_step_bias` reads."""
    if weight is None:
        return False
    shape = weight.shape
    return len(shape) == 2 and shape[0] >= 4 * shape[1]


def _time_step_bias(module: nn.Module, param: torch.Tensor) -> str | None:
    """A bias its constructor set to the inverse softplus of chosen time steps (Mamba's
    ``dt_proj.bias``: steps log-uniform in [0.001, 0.1], read by the selective scan, often
    outside the layer's forward): the bias of a linear layer that projects a low rank up to at
    least 4x as many channels (``dt_rank`` to ``d_inner``), whose every ``softplus(bias)``
    lies in (0, 0.3) and differs. Zeros, constants and PyTorch's default draws give steps of
    about 0.69 or equal ones; the garbage of uninitialized memory is rarely finite, distinct
    and all below -1.2."""
    weight = module._parameters.get("weight") if isinstance(module, nn.Linear) else None
    if weight is None or weight.dim() != 2 or weight.shape[0] < 4 * weight.shape[1]:
        return None  # checked first: no tensor work for the common layers
    if not _readable(param) or param.dim() != 1 or param.numel() < 2:
        return None
    steps = F.softplus(param.detach().double())
    if not bool(torch.isfinite(steps).all()):
        return None
    low, high = float(steps.min()), float(steps.max())
    if not (0 < low < high < 0.3):
        return None
    return (
        f"time-step bias (the inverse softplus of steps from {low:.3g} to {high:.3g}, as its "
        "constructor set them): kept; name it in rules to initialize it"
    )


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
