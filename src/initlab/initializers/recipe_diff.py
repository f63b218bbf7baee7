"""Two recipes compared parameter by parameter on one model (:func:`recipe_diff`): the std each
draws, their ratio, and the rules behind them; fused parameters are aligned block by block.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from torch import nn

from initlab._core.table import format_table
from initlab.initializers.recipe_data import Recipe
from initlab.initializers.recipe_plan import PlanRow, plan
from initlab.initializers.roles import roles


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
