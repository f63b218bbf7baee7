"""A recipe's plan for a model, before anything is drawn: each parameter's rule (by its role,
:func:`initlab.roles`), the rule's std formula evaluated with the model's symbols (``d``,
``L``, ``i``, fans, ... : :func:`evaluate`, a safe arithmetic evaluator), the distribution,
truncation in units of sigma, and ``1 + w`` norms stored as ``value - 1``. A recipe keyed by
module (``hf_default``) is planned by replaying its codebase's dispatch instead: which module
sets each parameter last, with which rule (:func:`_module_writes`). Applying the plan is
:func:`initlab.initializers.recipes.init_with_recipe`; comparing two plans is
:mod:`initlab.initializers.recipe_diff`.
"""

from __future__ import annotations

import ast
import fnmatch
import math
import operator
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from initlab._core.validation import unknown_name_error
from initlab.initializers.recipe_data import ALIASES, RECIPES, Recipe, Rule
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
            "variants": {
                owner: {key: rule.describe() for key, rule in rules} for owner, rules in r.variants
            },
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
    one_plus_w = bool(row.zero_centered) and role in ("norm_scale", "norm_branch_out")
    _set_draw(plan, rule, evaluate(rule.std, local), fans, one_plus_w)
    return plan


def _set_draw(
    plan: PlanRow, rule: Rule, value: float, fans: tuple[int | None, int | None],
    one_plus_w: bool = False,
) -> None:  # fmt: skip
    """Fill ``plan``'s value, std and truncation from ``rule`` and its evaluated formula."""
    if rule.dist == "constant":
        if one_plus_w:
            plan.note = "forward uses 1 + w: stored value - 1"
            value -= 1.0
        plan.value, plan.target_std = value, 0.0
    elif rule.dist == "uniform":
        plan.value = value
        plan.target_std = value / math.sqrt(3.0)
    elif rule.dist == "xavier_normal":
        if fans[0] is None or fans[1] is None:
            raise ValueError(f"{plan.parameter}: xavier_normal needs fans (a >= 2-D weight)")
        plan.param_std = plan.target_std = value * math.sqrt(2.0 / (fans[0] + fans[1]))
    else:
        plan.param_std = value
        plan.target_std = value
        if rule.dist == "trunc_normal" and value > 0:
            low, high = rule.bounds if rule.bounds else (-rule.trunc * value, rule.trunc * value)
            plan.bounds = (low, high)
            plan.trunc_sigma = min(-low, high) / value
            plan.target_std = TruncatedNormal(std=value, low=low, high=high).target_std(plan.shape)


# ---------------------------------------------------------------------- keyed by module
# A Hugging Face model: a module with a config and an ``_init_weights`` (duck-typed, so that
# transformers stays optional).
def _is_hf_model(module: nn.Module) -> bool:
    return callable(getattr(module, "_init_weights", None)) and _config_of(module) is not None


def _config_of(module: nn.Module) -> Any:
    config = getattr(module, "config", None)
    if config is None or isinstance(config, nn.Module | torch.Tensor | Mapping):
        return None
    return config


def _init_owner(model: nn.Module) -> str:
    """The class whose ``_init_weights`` a Hugging Face model runs (``CLIPPreTrainedModel``)."""
    for klass in type(model).__mro__:
        if "_init_weights" in vars(klass):
            return klass.__name__
    return type(model).__name__


def _config_number(config: Any, name: str) -> float | None:
    value = getattr(config, name, None) if config is not None else None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _base_sigma(config: Any) -> float | None:
    """The std of Hugging Face's base ``_init_weights``: ``initializer_range`` (0.02 when it is
    unset), else ``init_std``, else ``initializer_factor``, else the text config's
    ``initializer_range``."""
    if config is None:
        return None
    if hasattr(config, "initializer_range"):
        return _config_number(config, "initializer_range") or 0.02
    for name in ("init_std", "initializer_factor"):
        if hasattr(config, name):
            return _config_number(config, name)
    text = getattr(config, "get_text_config", None)
    return _config_number(text(), "initializer_range") if callable(text) else None


@dataclass(frozen=True)
class _Key:
    """A parsed module key ``Class.path[attr=value]``."""

    cls: str
    path: str
    attr: str | None
    value: str | None

    @classmethod
    def parse(cls, key: str) -> _Key:
        attr = value = None
        if key.endswith("]") and "[" in key:
            key, _, condition = key[:-1].partition("[")
            attr, _, value = condition.partition("=")
        owner, _, path = key.partition(".")
        return cls(owner, path, attr, value)

    def names(self, module: nn.Module) -> bool:
        if "*" in self.cls or "?" in self.cls:
            return fnmatch.fnmatchcase(type(module).__name__, self.cls)
        return any(k.__name__ == self.cls for k in type(module).__mro__)

    def holds(self, config: Any) -> bool:
        return self.attr is None or str(getattr(config, self.attr, None)) == self.value


@dataclass
class _Write:
    """The rule a module applies to one parameter, with what its formula reads."""

    key: str
    rule: Rule
    owner: str
    owner_config: Any
    module_config: Any


def _module_writes(model: nn.Module, recipe: Recipe) -> tuple[dict[int, _Write], list[str]]:
    """Per parameter (by identity) the last rule that sets it, replaying a module-keyed
    recipe's dispatch: children before their parent (as ``nn.Module.apply`` and Hugging Face's
    ``smart_apply``), each module once, under the rules of the nearest model that owns it (a
    sub-model runs its own ``_init_weights``). Also the owners initlab has no rules for."""
    base = [(_Key.parse(k), k, r) for k, r in recipe.rules]
    variants = {owner: [(_Key.parse(k), k, r) for k, r in rules]
                for owner, rules in recipe.variants}  # fmt: skip
    writes: dict[int, _Write] = {}
    unknown: list[str] = []
    visited: set[int] = set()

    def visit(module: nn.Module, owner: nn.Module | None, config: Any) -> None:
        if _is_hf_model(module):
            owner = module
        config = _config_of(module) or config
        for child in module._modules.values():
            if child is not None:
                visit(child, owner, config)
        if id(module) in visited:
            return
        visited.add(id(module))
        owner_name = _init_owner(owner) if owner is not None else ""
        owner_config = _config_of(owner) if owner is not None else None
        known = not owner_name or owner_name in variants or owner_name == "PreTrainedModel"
        if not known and owner_name not in unknown:
            unknown.append(owner_name)
        rules = [*variants.get(owner_name, ()), *base]
        matching = [(k, key, r) for k, key, r in rules if k.names(module)]
        if not matching:
            return
        done: set[int] = set()
        for path, param in module.named_parameters(remove_duplicate=False):
            if id(param) in done:
                continue
            for k, key, rule in matching:
                if fnmatch.fnmatchcase(path, k.path) and k.holds(owner_config):
                    writes[id(param)] = _Write(key, rule, owner_name, owner_config, config)
                    done.add(id(param))
                    break

    visit(model, None, None)
    return writes, unknown


def _torch_fans(shape: tuple[int, ...]) -> tuple[int | None, int | None]:
    """Fans as ``torch.nn.init`` computes them from the stored shape."""
    if len(shape) < 2:
        return None, None
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def _formula_symbols(formula: str, local: dict[str, float], configs: tuple[Any, ...]) -> None:
    """Add to ``local`` the config numbers that ``formula`` names and ``local`` lacks."""
    for node in ast.walk(ast.parse(formula, mode="eval")):
        if isinstance(node, ast.Name) and node.id not in local and node.id != "sqrt":
            for config in configs:
                value = _config_number(config, node.id)
                if value is not None:
                    local[node.id] = value
                    break


def _plan_by_module(
    model: nn.Module, recipe: Recipe, table: RoleTable, options: dict[str, float]
) -> RecipePlan:
    """The plan of a module-keyed recipe: each parameter's last write (:func:`_module_writes`),
    its formula evaluated with the owner's and the module's config; parameters that no rule
    sets keep their value."""
    writes, unknown = _module_writes(model, recipe)
    params = dict(model.named_parameters(remove_duplicate=False))
    result = RecipePlan(recipe.name, [], dict(recipe.defaults) | options, notes=list(recipe.notes))
    for owner in unknown:
        result.notes.append(
            f"{owner} has its own _init_weights, which initlab has no rules for: its modules get "
            f"the base rules, and parameters it sets itself may differ"
        )
    for row in table.rows:
        write = writes.get(id(params[row.parameter]))
        fans = _torch_fans(row.shape)
        plan = PlanRow(row.parameter, row.shape, row.role, write.key if write else "", "keep",
                       write.rule.describe() if write else "keep", block=row.block,
                       n_blocks=row.n_blocks, fan_in=fans[0], fan_out=fans[1],
                       tied_to=row.tied_to)  # fmt: skip
        result.rows.append(plan)
        if row.tied_to:
            plan.dist = "tied"
            continue
        if write is None or write.rule.dist == "keep":
            plan.note = write.rule.note if write else "no rule sets it: the constructor's value"
            continue
        local = dict(recipe.defaults)
        sigma = _base_sigma(write.owner_config)
        if sigma is not None:
            local["sigma"] = sigma
        factor = _config_number(write.owner_config, "initializer_factor")
        if factor is not None:
            local["factor"] = factor
        local.update(options)
        if row.n_blocks is not None:
            local.setdefault("L", float(row.n_blocks))
        if row.block is not None:
            local.setdefault("i", float(row.block))
        local.update({n: float(v) for n, v in zip(("fan_in", "fan_out"), fans, strict=True)
                      if v is not None})  # fmt: skip
        _formula_symbols(write.rule.std, local, (write.module_config, write.owner_config))
        plan.dist, plan.note = write.rule.dist, write.rule.note
        _set_draw(plan, write.rule, evaluate(write.rule.std, local), fans)
    far = [p for p in result.rows if p.trunc_sigma is not None and p.trunc_sigma > FAR_SIGMA]
    if far:
        result.notes.append(
            f"{len(far)} parameters use trunc_normal with absolute bounds {far[0].bounds}, "
            f"{min(p.trunc_sigma for p in far):.0f} sigma or more from zero, as the codebase "
            f"calls it: nothing is truncated"
        )
    return result


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
    if chosen.keyed == "module":
        return _plan_by_module(model, chosen, table, checked)
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
