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

import ast
import math
import operator
import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import torch
from torch import nn

from initlab._core.rng import as_seed, derive_seed
from initlab._core.table import format_table
from initlab._core.validation import unknown_name_error
from initlab.initializers.recipe_data import ALIASES, RECIPES, Recipe
from initlab.initializers.roles import RoleRow, RoleTable, roles
from initlab.initializers.schemes import Constant, Initializer, Normal, TruncatedNormal, Uniform

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
    enc = sum(n for s, n in table.stacks.items() if "encoder" in s.lower())
    dec = sum(n for s, n in table.stacks.items() if "decoder" in s.lower())
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


# ---------------------------------------------------------------------- diff
@dataclass
class DiffRow:
    parameter: str
    role: str
    std_a: float | None
    trunc_a: float | None
    std_b: float | None
    trunc_b: float | None
    rule_a: str
    rule_b: str

    @property
    def ratio(self) -> float | None:
        """``std_b / std_a`` (``None`` when either is kept, tied or zero)."""
        if not self.std_a or self.std_b is None:
            return None
        return self.std_b / self.std_a


@dataclass
class RecipeDiff:
    """Per parameter, the std and truncation (sigma units) under two recipes and their ratio."""

    a: str
    b: str
    rows: list[DiffRow]
    warnings: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        headers = ("parameter", "role", f"std {self.a}", "trunc", f"std {self.b}", "trunc",
                   f"{self.b}/{self.a}", f"rule {self.a}", f"rule {self.b}")  # fmt: skip
        rows = [(r.parameter, r.role, r.std_a, r.trunc_a, r.std_b, r.trunc_b, r.ratio,
                 r.rule_a, r.rule_b) for r in self.rows]  # fmt: skip
        changed = sum(1 for r in self.rows if r.ratio is not None and abs(r.ratio - 1) > 1e-9)
        text = format_table(headers, rows)
        text += f"\n\n{changed} of {len(self.rows)} rows change std ('-' trunc: untruncated)"
        for w in self.warnings:
            text += f"\nwarning: {w}"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "a": self.a,
            "b": self.b,
            "warnings": list(self.warnings),
            "rows": [asdict(r) | {"ratio": r.ratio} for r in self.rows],
        }


def recipe_diff(
    model: nn.Module,
    a: str | Recipe,
    b: str | Recipe,
    *,
    example_input: Any = None,
    overrides: Mapping[str, str] | None = None,
    **options: float,
) -> RecipeDiff:
    """What switching from recipe ``a`` to recipe ``b`` changes, parameter by parameter.

    >>> import torch.nn as nn
    >>> model = nn.Sequential(nn.Embedding(100, 64), nn.Linear(64, 100))
    >>> diff = recipe_diff(model, "gpt2", "olmocore_llama")
    >>> diff.rows[0].std_b / diff.rows[0].std_a  # embedding: N(0, 1) vs N(0, 0.02^2)
    50.0
    """
    table = roles(model, example_input, overrides)
    pa = plan(model, a, table=table, **options)
    pb = plan(model, b, table=table, **options)
    rows_a, rows_b = _align(pa.rows, pb.rows), _align(pb.rows, pa.rows)
    rows: list[DiffRow] = []
    for p, q in zip(rows_a, rows_b, strict=True):
        label = p.parameter if p.chunk is None else f"{p.parameter}[{p.role}]"
        rows.append(DiffRow(label, p.role, _std(p), p.trunc_sigma, _std(q), q.trunc_sigma,
                            _rule_text(p), _rule_text(q)))  # fmt: skip
    return RecipeDiff(pa.recipe, pb.recipe, rows, warnings=[*pa.warnings, *pb.warnings])


def _align(rows: list[PlanRow], other: list[PlanRow]) -> list[PlanRow]:
    """``rows`` with each fused tensor drawn whole split into the blocks ``other`` uses, so
    both lists have one entry per (parameter, block)."""
    blocks: dict[str, list[PlanRow]] = {}
    for o in other:
        if o.chunk is not None:
            blocks.setdefault(o.parameter, []).append(o)
    result: list[PlanRow] = []
    for r in rows:
        if r.chunk is None and r.parameter in blocks:
            result.extend(replace(r, role=o.role, chunk=o.chunk) for o in blocks[r.parameter])
        else:
            result.append(r)
    return result


def _std(p: PlanRow) -> float | None:
    return None if p.dist in ("keep", "tied") else p.target_std


def _rule_text(p: PlanRow) -> str:
    if p.dist in ("keep", "tied"):
        return p.dist
    if p.dist == "constant":
        return f"{p.rule} = {p.value:g}"
    return p.rule
