"""``init_model``: initialize every parameter of an ``nn.Module`` in one call.

Per parameter, in this order of precedence:

1. ``rules``: the first rule that matches, by parameter-name glob (``"*.bias"``,
   ``"head.weight"``) or by module type (``nn.Embedding``); its value is a scheme spec or
   ``"keep"`` (leave the parameter as it is).
2. Parameters that are not floating point (an int64 table) and empty ones (``Linear(4, 0)``)
   are kept: there is nothing to draw. So is what the model meant to keep: frozen parameters
   (``requires_grad=False``: Whisper's sinusoidal positions), parameters marked
   ``_no_reinit`` (or, by Hugging Face, ``_is_hf_initialized``: loaded from a checkpoint), a
   norm scale its constructor set to zeros in a layer that writes into a residual stream
   (timm's ``zero_init_last``, torchvision's ``zero_init_residual``) and, under the default
   ``bias="zeros"``, a time-step bias (Mamba's ``dt_proj.bias``, the inverse softplus of
   log-uniform steps: every ``softplus(b)`` distinct and below 0.3). The report says why.
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

import math
from typing import Any

from torch import nn

from initlab._core.collector import collector_paused
from initlab._core.rng import as_seed
from initlab._core.validation import check_choice
from initlab.initializers.activations import discover
from initlab.initializers.decisions import (  # noqa: F401  (re-exported: import paths keep working)
    _EMBEDDINGS,
    _NORM_TYPES,
    Layouts,
    RuleKey,
    Rules,
    _check_layouts,
    _check_rules,
    _decide,
    _kept_parameters,
    _zero_centred_detector,
)
from initlab.initializers.fans import fan_in_fan_out
from initlab.initializers.fill import RNG, RNGS, _Fill, _record_stds  # noqa: F401
from initlab.initializers.init_report import InitReport, InitRow  # noqa: F401
from initlab.initializers.plan import InitPlan, Planner
from initlab.initializers.registry import Spec, get

# CPU models with at least this many parameter elements are filled on several threads, one
# parameter per task; each parameter has its own generator, so values do not change.
_PARALLEL_NUMEL = 1 << 22


def _planner(
    model: nn.Module, scheme: Spec, bias: Spec, rules: Rules, example: Any, layouts: Layouts,
    rng: RNG,
) -> Planner:  # fmt: skip
    """Validate the options once and plan every parameter of ``model``."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"init_model needs a torch.nn.Module; got {type(model).__name__}")
    weight_scheme = get(scheme)
    checked_rules = _check_rules(rules)
    checked_layouts = _check_layouts(layouts)
    if bias not in ("keep", "default"):
        get(bias)  # validate once, up front
    check_choice("rng", rng, RNGS)
    planner = Planner(
        model, weight_scheme, bias, checked_rules, checked_layouts, rng, discover(model, example)
    )
    for module_name, module in model.named_modules():
        for name, param in module._parameters.items():
            if param is not None:
                planner.add(module_name, module, name, param)
    return planner


# Planning makes a few small objects per parameter: see _core/collector.py.
@collector_paused()
def plan_init(
    model: nn.Module,
    scheme: Spec = "he_normal",
    *,
    bias: Spec = "zeros",
    rules: Rules = None,
    example: Any = None,
    layouts: Layouts = None,
    rng: RNG = "counter",
) -> InitPlan:
    """Decide, for every parameter of ``model``, what :func:`init_model` would do, and draw
    nothing: an :class:`~initlab.initializers.plan.InitPlan` to print, save as JSON, check
    or apply with :func:`apply_plan` (as often as you like, with any seed).

    The arguments are :func:`init_model`'s. The model is traced once (on ``example``, or on
    an input made from the model itself), nothing about it changes, and the global RNG is left
    as it was.

    >>> import torch.nn as nn
    >>> plan = plan_init(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1)))
    >>> plan["0.weight"].activation, round(plan["0.weight"].target_std, 4)  # sqrt(2 / 4)
    ('relu', 0.7071)
    """
    planner = _planner(model, scheme, bias, rules, example, layouts, rng)
    return InitPlan(planner.rows, rng, planner.found.source, planner.found.example_source,
                    planner)  # fmt: skip


def apply_plan(model: nn.Module, plan: InitPlan, *, seed: int | None = None) -> InitReport:
    """Fill ``model``'s parameters as ``plan`` says, from ``seed`` (``None``: a fresh seed,
    recorded in the report), and report what was done with each parameter's realized std.

    ``plan`` must come from :func:`plan_init` on this same model object (its rows point at
    the model's tensors). Values are those of :func:`init_model` with the plan's arguments
    and the same seed, bit for bit.
    """
    if not isinstance(plan, InitPlan):
        raise TypeError(f"apply_plan needs an InitPlan from plan_init; got {type(plan).__name__}")
    if plan.model is not model:
        raise ValueError(
            f"this plan was made for another model object ({type(plan.model).__name__} at "
            f"{id(plan.model):#x}); make one for this model with plan_init(model, ...)"
        )
    return plan._planner.run(as_seed(seed), _PARALLEL_NUMEL)


@collector_paused()
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
    """Initialize every parameter of ``model`` in place and report what was done:
    :func:`plan_init` then :func:`apply_plan`.

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
    nothing about the model changes). Without it, an input made from the model itself (a
    Hugging Face config, timm's ``input_size``, the first layer's shape: see
    :mod:`initlab.initializers.examples`); only when none runs, ``torch.fx`` or, failing
    that, registration order (a guess, with a warning).
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
    if recipe is not None:  # a codebase's recipe: initializers/recipes.py plans it
        from initlab.initializers.recipes import init_with_recipe

        if scheme != "he_normal":
            raise ValueError(
                f"init_model got both scheme={scheme!r} and recipe={recipe!r}: a recipe says "
                "how every parameter is drawn; give one of them"
            )
        if layouts is not None:
            raise ValueError(
                "layouts is not used with recipe=...: a recipe reads fans from each parameter's "
                "role; leave layouts out"
            )
        if example is not None:
            recipe_options.setdefault("example_input", example)
        return init_with_recipe(  # type: ignore[return-value]
            model, recipe, seed=seed, bias=bias, rules=rules, rng=rng, **recipe_options
        )
    if recipe_options:
        raise TypeError(f"init_model got unexpected options {sorted(recipe_options)}: "
                        f"they are only valid with recipe=...")  # fmt: skip
    seed = as_seed(seed)  # checked before the work of planning
    planner = _planner(model, scheme, bias, rules, example, layouts, rng)
    return planner.run(seed, _PARALLEL_NUMEL, copy_rows=False)


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
