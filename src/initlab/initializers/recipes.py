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

from initlab._core.rng import as_seed, derive_seed
from initlab._core.table import format_table
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
from initlab.initializers.schemes import Constant, Initializer, Normal, TruncatedNormal, Uniform


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


def init_with_recipe(
    model: nn.Module,
    recipe: str | Recipe,
    *,
    seed: int | None = None,
    example_input: Any = None,
    overrides: Mapping[str, str] | None = None,
    **options: float,
) -> RecipeReport:
    """Initialize ``model`` in place with ``recipe`` and report what was done per parameter.

    ``options`` override the symbols the recipe reads from the model (``sigma``, ``L``, ``d``,
    ``base_width``, ...). Same ``seed``, same values. A :class:`TruncationWarning` is issued
    when a recipe's absolute truncation bounds lie beyond 6 sigma.

    >>> import torch.nn as nn
    >>> model = nn.Sequential(nn.Embedding(100, 16), nn.Linear(16, 100))
    >>> report = init_with_recipe(model, "gpt2", seed=0)
    >>> report["0.weight"].role, report["0.weight"].target_std
    ('embedding', 0.02)
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"init_model needs a torch.nn.Module; got {type(model).__name__}")
    chosen = get_recipe(recipe)
    seed = as_seed(seed)
    planned = plan(model, chosen, example_input=example_input, overrides=overrides, **options)
    params = dict(model.named_parameters(remove_duplicate=False))
    modules = dict(model.named_modules())
    report = RecipeReport(chosen.name, seed=seed, symbols=planned.symbols,
                          warnings=list(planned.warnings), notes=list(planned.notes))  # fmt: skip
    generators: dict[str, torch.Generator] = {}
    for p in planned.rows:
        param = params[p.parameter]
        scheme = _scheme(p)
        label = p.parameter if p.chunk is None else f"{p.parameter}[{p.role}]"
        action = "tied" if p.dist == "tied" else "keep" if scheme is None else "recipe"
        row = RecipeRow(label, p.shape if p.chunk is None else _chunk_shape(p),
                        _scheme_text(p), action, p.role,
                        p.rule, p.block, p.fan_in, p.fan_out, target_std=p.target_std,
                        trunc_sigma=p.trunc_sigma, note=p.note)  # fmt: skip
        report.rows.append(row)
        if scheme is None or param.device.type == "meta":
            continue
        if p.parameter not in generators:
            generators[p.parameter] = torch.Generator(param.device).manual_seed(
                derive_seed(seed, p.parameter)
            )
        generator = generators[p.parameter]
        with torch.no_grad():
            if p.chunk is None:
                scheme(param.data, generator)
                target = param.data
            else:
                dim, start, stop = p.chunk
                target = param.data.narrow(dim, start, stop - start)
                work = torch.empty(target.shape, dtype=param.dtype, device=param.device)
                scheme(work, generator)
                target.copy_(work)
            if chosen.zero_padding_row:
                _zero_padding_row(modules, p.parameter, param)
            if target.numel() > 1:
                row.realized_std = float(target.float().std())
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


def _zero_padding_row(modules: dict[str, nn.Module], parameter: str, param: torch.Tensor) -> None:
    module = modules.get(parameter.rpartition(".")[0])
    if isinstance(module, nn.Embedding) and module.padding_idx is not None:
        param.data[module.padding_idx].zero_()
