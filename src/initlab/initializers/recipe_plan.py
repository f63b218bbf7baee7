"""A recipe's plan for a model, before anything is drawn: each parameter's rule (by its role,
:func:`initlab.roles`), the rule's std formula evaluated with the model's symbols (``d``,
``L``, ``i``, fans, ... : :func:`evaluate`, a safe arithmetic evaluator), the distribution,
truncation in units of sigma, and ``1 + w`` norms stored as ``value - 1``. Applying the plan is
:func:`initlab.initializers.recipes.init_with_recipe`; comparing two plans is
:mod:`initlab.initializers.recipe_diff`.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from initlab._core.validation import unknown_name_error
from initlab.initializers.recipe_data import ALIASES, RECIPES, Recipe
from initlab.initializers.roles import RoleRow, RoleTable, roles
from initlab.initializers.schemes import TruncatedNormal

# Truncation beyond this many sigma is no truncation at all, and is reported as such.
FAR_SIGMA = 6.0

SYMBOLS = ("sigma", "d", "d_ff", "d_kv", "n_heads", "vocab", "L", "i", "N", "M", "fan_in",
           "fan_out", "m", "base_width", "factor", "branch_layers")  # fmt: skip


class TruncationWarning(UserWarning):
    """A truncated normal whose bounds lie so far out that nothing is truncated."""


# ---------------------------------------------------------------------- formulas
_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
        ast.Div: operator.truediv, ast.Pow: operator.pow, ast.USub: operator.neg,
        ast.UAdd: operator.pos}  # fmt: skip


def evaluate(formula: str, symbols: Mapping[str, float]) -> float:
    """The value of a recipe formula (``"sigma / sqrt(2 * L)"``): numbers, the symbols of
    :data:`SYMBOLS`, ``+ - * / **`` and ``sqrt``; nothing else is evaluated."""

    def walk(node: ast.AST) -> float:
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
            return float(node.value)
        if isinstance(node, ast.Name):
            if node.id not in symbols:
                raise ValueError(
                    f"formula {formula!r} needs {node.id!r}, which this model does not give; "
                    f"pass it as an option ({node.id}=...)"
                )
            return float(symbols[node.id])
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](walk(node.left), walk(node.right))
        if isinstance(node, ast.UnaryOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](walk(node.operand))
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id == "sqrt" and len(node.args) == 1):  # fmt: skip
            return math.sqrt(walk(node.args[0]))
        raise ValueError(f"formula {formula!r}: unsupported expression {ast.dump(node)}")

    try:
        return walk(ast.parse(formula, mode="eval"))
    except ZeroDivisionError:
        raise ValueError(
            f"formula {formula!r} divides by zero with "
            + ", ".join(f"{k}={v:g}" for k, v in sorted(symbols.items()))
        ) from None


# ---------------------------------------------------------------------- lookup
def get_recipe(name: str | Recipe) -> Recipe:
    """The :class:`Recipe` called ``name`` (or an alias: ``nanogpt`` is ``gpt2``)."""
    if isinstance(name, Recipe):
        return name
    if not isinstance(name, str):
        raise TypeError(f"recipe must be a recipe name or a Recipe; got {name!r}")
    key = ALIASES.get(name, name)
    if key not in RECIPES:
        raise unknown_name_error("recipe", name, [*RECIPES, *ALIASES])
    return RECIPES[key]


def list_recipes() -> list[dict[str, Any]]:
    """Every recipe as plain data: name, title, aliases, rules (role -> formula), defaults,
    source and notes (what ``initlab recipes`` prints)."""
    return [
        {
            "name": r.name,
            "title": r.title,
            "aliases": list(r.aliases),
            "rules": {role: rule.describe() for role, rule in r.rules},
            "defaults": dict(r.defaults),
            "source": str(r.source),
            "notes": list(r.notes),
        }
        for r in RECIPES.values()
    ]


# ---------------------------------------------------------------------- plan
@dataclass
class PlanRow:
    """What a recipe does to one parameter, or to one block of a fused parameter."""

    parameter: str
    shape: tuple[int, ...]
    role: str
    rule: str  # the recipe key that matched (role, fallback role, or "enc:"/"dec:" key)
    dist: str
    formula: str
    block: int | None = None
    n_blocks: int | None = None
    fan_in: int | None = None
    fan_out: int | None = None
    param_std: float | None = None  # the std argument of the draw (before truncation)
    target_std: float | None = None  # the std of the values drawn
    value: float | None = None  # constants
    trunc_sigma: float | None = None  # effective cutoff in sigma units (None: untruncated)
    bounds: tuple[float, float] | None = None
    chunk: tuple[int, int, int] | None = None  # (dim, start, stop) inside the parameter
    tied_to: str | None = None
    note: str = ""


@dataclass
class RecipePlan:
    """The per-parameter plan of a recipe on a model (no values are drawn)."""

    recipe: str
    rows: list[PlanRow]
    symbols: dict[str, float]
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _side(row: RoleRow, table: RoleTable, lm: bool) -> str:
    stack = (row.stack or "").lower()
    if "encoder" in stack:
        return "enc"
    if "decoder" in stack:
        return "dec"
    return "dec" if lm else "enc"


def _model_symbols(table: RoleTable, recipe: Recipe, options: dict[str, float]) -> dict[str, float]:
    symbols: dict[str, float] = dict(recipe.defaults)
    if "initializer_range" in table.dims and "sigma" in symbols:
        symbols["sigma"] = table.dims["initializer_range"]
    if "factor" in table.dims and "factor" in symbols:
        symbols["factor"] = table.dims["factor"]
    for key in ("d", "d_ff", "d_kv", "n_heads", "vocab"):
        if key in table.dims:
            symbols[key] = table.dims[key]
    # Two encoder towers (CLIP) are not one deep encoder: the deepest stands for N, and a
    # parameter inside an encoder (decoder) stack reads its own stack's depth (see plan).
    enc = max((n for s, n in table.stacks.items() if "encoder" in s.lower()), default=0)
    dec = max((n for s, n in table.stacks.items() if "decoder" in s.lower()), default=0)
    total = max(table.stacks.values(), default=1)
    symbols["N"] = float(enc or dec or total)
    symbols["M"] = float(dec or enc or total)
    symbols.update(options)
    if "d" in symbols and "base_width" in symbols:
        symbols.setdefault("m", symbols["d"] / symbols["base_width"])
    return symbols


def _check_options(options: Mapping[str, Any]) -> dict[str, float]:
    checked: dict[str, float] = {}
    for key, value in options.items():
        if key not in SYMBOLS:
            raise unknown_name_error("recipe option", key, SYMBOLS)
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise TypeError(f"recipe option {key} must be a finite number; got {value!r}")
        checked[key] = float(value)
    return checked


def _branch_layers(table: RoleTable) -> dict[tuple[str | None, int | None], int]:
    counts: dict[tuple[str | None, int | None], int] = {}
    for r in table.rows:
        if (r.block is not None and r.role in ("conv_body", "conv_branch_out")) or (
            r.block is not None and r.role in ("mlp_in", "mlp_down", "linear")
        ):
            key = (r.stack, r.block)
            counts[key] = counts.get(key, 0) + 1
    return counts


def _plan_one(
    recipe: Recipe, row: RoleRow, role: str, side: str, symbols: dict[str, float],
    fans: tuple[int | None, int | None], chunk: tuple[int, int, int] | None,
) -> PlanRow:  # fmt: skip
    key, rule = recipe.rule_for(role, side)
    plan = PlanRow(row.parameter, row.shape, role, key, rule.dist, rule.describe(),
                   block=row.block, n_blocks=row.n_blocks, fan_in=fans[0], fan_out=fans[1],
                   chunk=chunk, tied_to=row.tied_to)  # fmt: skip
    if row.tied_to or rule.dist == "keep":
        plan.dist = "tied" if row.tied_to else "keep"
        return plan
    local = dict(symbols)
    if row.n_blocks is not None:
        local.setdefault("L", float(row.n_blocks))
    if row.block is not None:
        local.setdefault("i", float(row.block))
    for name, value in zip(("fan_in", "fan_out"), fans, strict=True):
        if value is not None:
            local[name] = float(value)
    value = evaluate(rule.std, local)
    if rule.dist == "constant":
        if row.zero_centered and role in ("norm_scale", "norm_branch_out"):
            plan.note = "forward uses 1 + w: stored value - 1"
            value -= 1.0
        plan.value, plan.target_std = value, 0.0
    elif rule.dist == "uniform":
        plan.value = value
        plan.target_std = value / math.sqrt(3.0)
    elif rule.dist == "xavier_normal":
        if fans[0] is None or fans[1] is None:
            raise ValueError(f"{row.parameter}: xavier_normal needs fans (a >= 2-D weight)")
        plan.param_std = plan.target_std = value * math.sqrt(2.0 / (fans[0] + fans[1]))
    else:
        plan.param_std = value
        plan.target_std = value
        if rule.dist == "trunc_normal" and value > 0:
            low, high = rule.bounds if rule.bounds else (-rule.trunc * value, rule.trunc * value)
            plan.bounds = (low, high)
            plan.trunc_sigma = min(-low, high) / value
            plan.target_std = TruncatedNormal(std=value, low=low, high=high).target_std(row.shape)
    return plan


def plan(
    model: nn.Module,
    recipe: str | Recipe,
    *,
    example_input: Any = None,
    overrides: Mapping[str, str] | None = None,
    table: RoleTable | None = None,
    **options: float,
) -> RecipePlan:
    """What ``recipe`` would draw for each parameter of ``model``; nothing is changed.

    ``options`` override the recipe's symbols (``sigma=0.01``, ``L=24``, ``base_width=128``);
    ``example_input`` and ``overrides`` go to :func:`initlab.roles`.
    """
    chosen = get_recipe(recipe)
    checked = _check_options(options)
    if table is None:
        table = roles(model, example_input, overrides)
    symbols = _model_symbols(table, chosen, checked)
    lm = any(r.role == "head" for r in table.rows)
    branch = _branch_layers(table)
    result = RecipePlan(chosen.name, [], symbols, notes=list(chosen.notes))
    for row in table.rows:
        side = _side(row, table, lm)
        local = dict(symbols)
        part, depth = {"enc": ("encoder", "N"), "dec": ("decoder", "M")}[side]
        if row.n_blocks and part in (row.stack or "").lower() and depth not in checked:
            local[depth] = float(row.n_blocks)
        if (row.stack, row.block) in branch:
            local.setdefault("branch_layers", float(branch[(row.stack, row.block)]))
        fans = (row.fan_in, row.fan_out)
        if row.chunks and not row.tied_to:
            parts = [
                _plan_one(chosen, row, c.role, side, local, (row.fan_in, c.stop - c.start),
                          (c.dim, c.start, c.stop))
                for c in row.chunks
            ]  # fmt: skip
            same = len({(p.dist, p.param_std, p.value, p.bounds) for p in parts}) == 1
            if same:  # one draw for the whole fused tensor, as the codebases do
                whole = parts[0]
                whole.chunk, whole.role = None, row.role
                result.rows.append(whole)
            else:
                result.rows.extend(parts)
            continue
        result.rows.append(_plan_one(chosen, row, row.role, side, local, fans, None))
    far = [p for p in result.rows if p.trunc_sigma is not None and p.trunc_sigma > FAR_SIGMA]
    if far:
        lo = min(p.trunc_sigma for p in far)
        hi = max(p.trunc_sigma for p in far)
        bounds = far[0].bounds
        result.warnings.append(
            f"{chosen.name}: {len(far)} parameters use trunc_normal with absolute bounds "
            f"[{bounds[0]:g}, {bounds[1]:g}], {lo:.0f} to {hi:.0f} sigma from zero: nothing is "
            f"truncated (a plain normal with rare outliers up to the bound; pytorch#155588)"
        )
    return result
