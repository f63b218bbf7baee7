"""Apply a codebase's init recipe to any model, and compare two recipes parameter by parameter.

``init_model(model, recipe="megatron", seed=0)`` (or :func:`init_with_recipe`) finds each
parameter's role (:func:`initlab.roles`), looks its rule up in the recipe
(:mod:`initlab.initializers.recipe_data`), evaluates the rule's std formula with the model's
``d``, ``L``, ``i``, fans, ... and draws. Each parameter draws from its own generator seeded
from ``seed`` and its name, as ``init_model`` does for schemes.

Checks that come with recipes:

- a truncation given by absolute bounds (torchtitan's ``trunc_normal_(std=0.02)`` keeps
  PyTorch's ``a=-2, b=2``) is reported in units of sigma, with a :class:`TruncationWarning`
  when it lies beyond 6 sigma: such a "truncated" normal is an untruncated one with rare
  +-2 outliers (pytorch#155588);
- a norm whose forward is ``1 + w`` (Gemma, Megatron ``1p``) gets ``value - 1`` (0 for a neutral
  norm), never ones;
- fans come from the logical shape (Hugging Face ``Conv1D`` stores ``(in, out)``; fused q/k/v
  are three blocks).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from initlab._core.rng import as_seed
from initlab._core.table import format_table
from initlab._core.validation import check_choice
from initlab.initializers.decisions import RuleKey, Rules, _bias_scheme, _check_rules, _rule_for
from initlab.initializers.fans import FanChunk
from initlab.initializers.fill import (
    RNG,
    RNGS,
    _block,
    _Fill,
    _record_stds,
    _seed_deriver,
    fill_batched,
)
from initlab.initializers.recipe_data import Recipe
from initlab.initializers.recipe_diff import DiffRow, RecipeDiff, recipe_diff  # noqa: F401
from initlab.initializers.recipe_plan import (  # noqa: F401 (re-exported)
    FAR_SIGMA,
    SYMBOLS,
    PlanRow,
    RecipePlan,
    TruncationWarning,
    evaluate,
    get_recipe,
    list_recipes,
    plan,
)
from initlab.initializers.registry import Spec, get
from initlab.initializers.schemes import Constant, Initializer, Normal, TruncatedNormal, Uniform
from initlab.initializers.sharded import is_dtensor


# ---------------------------------------------------------------------- apply
@dataclass
class RecipeRow:
    """One parameter (or fused block) initialized by a recipe: the columns of ``InitReport``
    (``parameter``, ``shape``, ``scheme``, ``action``, fans, ``target_std``, ``realized_std``)
    plus the role, block and rule."""

    parameter: str
    shape: tuple[int, ...]
    scheme: str
    action: str
    role: str
    rule: str = ""
    block: int | None = None
    fan_in: int | None = None
    fan_out: int | None = None
    activation: str | None = None
    activation_source: str | None = None
    gain: float | None = None
    target_std: float | None = None
    realized_std: float | None = None
    trunc_sigma: float | None = None
    note: str = ""


@dataclass
class RecipeReport:
    """What :func:`init_with_recipe` did; ``str()`` is a table with a role column, followed by
    the recipe's warnings and notes; ``to_dict()`` plain data (the ``InitReport`` keys plus
    ``recipe``, ``warnings``, ``notes``, ``symbols``)."""

    recipe: str
    rows: list[RecipeRow] = field(default_factory=list)
    seed: int | None = None
    symbols: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    _HEADERS = ("parameter", "shape", "role", "block", "rule", "scheme", "trunc (sigma)",
                "target std", "realized std")  # fmt: skip

    def __str__(self) -> str:
        rows = [(r.parameter, r.shape, r.role, r.block, r.rule, r.scheme, r.trunc_sigma,
                 r.target_std, r.realized_std) for r in self.rows]  # fmt: skip
        text = f"recipe: {self.recipe}\n" + format_table(self._HEADERS, rows)
        for w in self.warnings:
            text += f"\nwarning: {w}"
        for n in self.notes:
            text += f"\nnote: {n}"
        return text

    def __getitem__(self, parameter: str) -> RecipeRow:
        for row in self.rows:
            if row.parameter == parameter:
                return row
        raise KeyError(f"no row for {parameter!r}; parameters: "
                       f"{', '.join(r.parameter for r in self.rows)}")  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return {
            "recipe": self.recipe,
            "seed": self.seed,
            "symbols": dict(self.symbols),
            "warnings": list(self.warnings),
            "notes": list(self.notes),
            "rows": [asdict(r) | {"shape": list(r.shape)} for r in self.rows],
        }


def _scheme(p: PlanRow) -> Initializer | None:
    if p.dist in ("keep", "tied"):
        return None
    if p.dist == "constant":
        return Constant(p.value)
    if p.dist == "uniform":
        return Uniform(-p.value, p.value)
    if p.dist == "trunc_normal" and p.bounds is not None:
        return TruncatedNormal(std=p.param_std, low=p.bounds[0], high=p.bounds[1])
    return Normal(std=p.param_std)


def _with_options(
    p: PlanRow, scheme: Initializer | None, module: nn.Module, param: torch.Tensor,
    rules: dict[RuleKey, Initializer | str], bias: Spec,
) -> tuple[Initializer | None, str | None]:  # fmt: skip
    """The recipe's scheme for a row, unless the caller's ``rules`` (first match, by name glob
    or module type) or a ``bias`` policy other than the default name it: (scheme, note)."""
    matched, rule = _rule_for(rules, p.parameter, module)
    if matched:
        return (None if rule == "keep" else rule), "rule"  # type: ignore[return-value]
    if p.role == "bias" and bias != "zeros" and p.dist != "tied":
        weight = module._parameters.get("weight")
        return _bias_scheme(bias, weight, module), "bias policy"
    return scheme, None


def init_with_recipe(
    model: nn.Module,
    recipe: str | Recipe,
    *,
    seed: int | None = None,
    example_input: Any = None,
    overrides: Mapping[str, str] | None = None,
    bias: Spec = "zeros",
    rules: Rules = None,
    rng: RNG = "counter",
    **options: float,
) -> RecipeReport:
    """Initialize ``model`` in place with ``recipe`` and report what was done per parameter.

    ``options`` override the symbols the recipe reads from the model (``sigma``, ``L``, ``d``,
    ``base_width``, ...). ``rules`` (``{glob or module type: scheme or "keep"}``, first match
    wins) and a ``bias`` policy other than ``"zeros"`` override the recipe's rows, as in
    :func:`~initlab.init_model`; ``rng`` draws as there (``"counter"``: the same values on
    any sharding). Same ``seed``, same values. A :class:`TruncationWarning` is issued when a
    recipe's absolute truncation bounds lie beyond 6 sigma.

    >>> import torch.nn as nn
    >>> model = nn.Sequential(nn.Embedding(100, 16), nn.Linear(16, 100))
    >>> report = init_with_recipe(model, "gpt2", seed=0)
    >>> report["0.weight"].role, report["0.weight"].target_std
    ('embedding', 0.02)
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"init_model needs a torch.nn.Module; got {type(model).__name__}")
    chosen = get_recipe(recipe)
    checked_rules = _check_rules(rules)
    if bias not in ("keep", "default"):
        get(bias)  # validate once, up front
    check_choice("rng", rng, RNGS)
    seed = as_seed(seed)
    planned = plan(model, chosen, example_input=example_input, overrides=overrides, **options)
    params = dict(model.named_parameters(remove_duplicate=False))
    modules = dict(model.named_modules())
    report = RecipeReport(chosen.name, seed=seed, symbols=planned.symbols,
                          warnings=list(planned.warnings), notes=list(planned.notes))  # fmt: skip
    fills: dict[str, _Fill] = {}
    measured: dict[str, list[RecipeRow]] = {}  # per parameter, in the order of its blocks
    derive = _seed_deriver(seed)
    for p in planned.rows:
        param = params[p.parameter]
        module = modules[p.parameter.rpartition(".")[0]]
        scheme, override = _with_options(p, _scheme(p), module, param, checked_rules, bias)
        label = p.parameter if p.chunk is None else f"{p.parameter}[{p.role}]"
        action = "tied" if p.dist == "tied" else "keep" if scheme is None else "recipe"
        text = _scheme_text(p) if override is None or scheme is None else str(scheme)
        note = p.note if override is None else f"{override} instead of the recipe's {p.rule}"
        row = RecipeRow(label, p.shape if p.chunk is None else _chunk_shape(p), text, action,
                        p.role, p.rule, p.block, p.fan_in, p.fan_out,
                        target_std=p.target_std if override is None else None,
                        trunc_sigma=p.trunc_sigma, note=note)  # fmt: skip
        report.rows.append(row)
        if scheme is None:
            continue
        if rng == "torch" and is_dtensor(param):
            raise ValueError(
                f"rng='torch' cannot initialize DTensor parameters ({p.parameter}); "
                "use rng='counter'"
            )
        fill = fills.get(p.parameter)
        if fill is None:
            fill_seed = seed if rng == "counter" else derive(p.parameter)
            fill = fills[p.parameter] = _Fill(fill_seed, param.device, [], rng, p.parameter)
            padding = getattr(module, "padding_idx", None)
            if chosen.zero_padding_row and isinstance(module, nn.Embedding) and padding is not None:
                fill.zero_rows = (param, [int(padding)])
        view, start, stop = param, None, None
        if p.chunk is not None:
            dim, start, stop = p.chunk
            view = param.t() if dim == 1 and param.dim() == 2 else param
        chunk = None if start is None else FanChunk(start, stop, p.fan_in or 1, p.fan_out or 1)
        if rng == "counter":
            target = _block(rng, view, chunk)
        else:
            target = view if chunk is None else view[chunk.start : chunk.stop]
        scheme._check_shape(tuple(target.shape))
        fill.blocks.append((label, target, scheme, None, None))
        measured.setdefault(p.parameter, []).append(row)
    rest = fill_batched(list(fills.values()))
    for fill in rest:
        fill.run()
    with torch.no_grad():
        rows = [row for name in fills for row in measured[name]]
        _record_stds(rows, [s for f in fills.values() for s in f.stds])  # type: ignore[arg-type]
    if report.warnings:
        warnings.warn(TruncationWarning(report.warnings[0]), stacklevel=3)
    return report


def _scheme_text(p: PlanRow) -> str:
    if p.dist == "tied":
        return f"tied to {p.tied_to}"
    if p.dist == "keep":
        return "kept"
    if p.dist == "constant":
        return f"constant {p.value:g}"
    if p.dist == "uniform":
        return f"U(-{p.value:.4g}, {p.value:.4g})"
    text = f"N(0, {p.param_std:.4g}^2)"
    if p.bounds is not None:
        text += f" trunc [{p.bounds[0]:.4g}, {p.bounds[1]:.4g}]"
    return text


def _chunk_shape(p: PlanRow) -> tuple[int, ...]:
    dim, start, stop = p.chunk
    shape = list(p.shape)
    shape[dim] = stop - start
    return tuple(shape)
