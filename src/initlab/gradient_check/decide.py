"""From measured derivatives to a verdict per row, and whether the difference shrinks with
the step.

A backward pass wrong by a factor ``c`` differs from the finite differences by ``|c - 1| /
(c + 1)`` at *any* step. Truncation error (``h^2 L''' / 6``) and kinks crossed by the step
shrink as the step shrinks. So where a row (a tensor, or the joint check) is not ``correct``
at ``eps``, the same entries or directions are measured again at ``eps / 10`` and ``eps /
100`` (fast mode: all such rows in one batched call per step): a difference that falls below
the threshold there, or falls three-fold to round-off level, is ``correct`` (the round-off
level grows as the step shrinks: a wrong gradient, whose difference stays put, would
otherwise reach it too); one that falls at least three-fold but stays above it is
``look closer``, with the reason in the notes; one that stays put keeps its verdict. The row
then shows the numbers at the step that decided. Batch norm over a tiny batch (two examples,
one pixel per channel) is the classic case: its output is nearly constant and sharply curved,
and PyTorch's correct gradients otherwise look like a ``bug``.

Fast mode rows none of whose directions could be measured without moving a unit that sits on
a kink across it are ``inconclusive`` (see :mod:`initlab.gradient_check.directions`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from initlab.gradient_check.directions import Along, Job, measure
from initlab.gradient_check.numerics import _compare, _Objective, _typical_diff
from initlab.gradient_check.results import _verdict

SHRINK = (10.0, 100.0)  # smaller steps tried where a difference is not correct at eps


@dataclass
class Measured:
    """Numeric and analytic derivatives of one row at step ``eps``. ``kinks``: entries at a
    kink (entries) or directions nobody could measure (fast). Entries: ``at(eps, atol)``
    measures the same entries at another step; fast: ``job`` and ``along`` (its details)."""

    num: torch.Tensor
    ana: torch.Tensor
    kinks: torch.Tensor
    how: str  # "fast" (directions) or "entries"
    index: torch.Tensor | None
    eps: float
    at: Callable[[float, float], Measured] | None = None
    job: Job | None = None
    along: Along | None = None

    @classmethod
    def fast(cls, along: Along, job: Job, eps: float) -> Measured:
        return cls(along.num, along.ana, ~along.measured, "fast", None, eps, None, job, along)

    @property
    def usable(self) -> torch.Tensor:
        return ~self.kinks if self.how == "fast" else torch.ones_like(self.kinks)

    def level(self, atol: float) -> torch.Tensor | float:
        """The round-off level of each compared derivative (fast: scaled to its step)."""
        if self.along is None:
            return atol
        return atol * self.along.round_off(self.eps)[self.usable]

    def compare(self, atol: float) -> tuple[float, bool]:
        keep = self.usable
        if not bool(keep.any()):
            return math.nan, False
        return _compare(self.num[keep], self.ana[keep], self.level(atol), self.how)

    def diff_atol(self, atol: float) -> float:
        """The difference in units of the round-off level (see ``TensorCheck.diff_atol``)."""
        keep = self.usable
        if not bool(keep.any()):
            return math.nan
        num, ana = self.num[keep], self.ana[keep]
        if self.how == "fast":
            return float(((num - ana).abs() / self.level(atol)).median())
        return _typical_diff(num, ana, self.how) / atol if atol > 0 else math.inf

    def typical_diff(self) -> float:
        """The ``|num - ana|`` that :meth:`compare` holds against the round-off level."""
        keep = self.usable
        if not bool(keep.any()):
            return math.nan
        return _typical_diff(self.num[keep], self.ana[keep], self.how)

    @property
    def step(self) -> float:
        """The smallest step a compared derivative was measured at."""
        if self.along is None or not bool(self.usable.any()):
            return self.eps
        return float(self.along.steps[self.usable].min())

    @property
    def crossed(self) -> int:
        """Fast mode: the fewest kink units an unmeasured direction crosses (0: none)."""
        if self.along is None or not bool(self.kinks.any()):
            return 0
        return int(self.along.kinks[self.kinks].min())


@dataclass
class Decided:
    """A row's verdict and the measurement (at the step) it was decided on."""

    measured: Measured
    rel: float
    noise: bool
    verdict: str
    atol: float


def unanimous(m: Measured, atol: float, thresholds: tuple[float, float]) -> bool:
    """Whether every direction of ``m`` was measured and is correct on its own (relative
    difference below ``thresholds[0]`` or at its round-off level), all finite."""
    if bool(m.kinks.any()) or not bool(torch.isfinite(m.num).all() & torch.isfinite(m.ana).all()):
        return False
    diff = (m.num - m.ana).abs()
    scale = m.num.abs() + m.ana.abs()
    per = torch.where(scale > 0, diff / scale.clamp_min(1e-300), 0.0)
    return bool(((per < thresholds[0]) | (diff <= m.level(atol))).all())


def first_verdict(m: Measured, atol: float, thresholds: tuple[float, float]) -> Decided:
    if m.how == "fast" and not bool(m.usable.any()):
        return Decided(m, math.nan, False, "inconclusive", atol)
    rel, noise = m.compare(atol)
    return Decided(m, rel, noise, _verdict(rel, noise, thresholds), atol)


def _again(
    rows: list[Measured],
    eps: float,
    atol: float,
    objective: _Objective,
    grad: dict[str, torch.Tensor],
    zero: float,
) -> list[Measured]:
    """The same entries or directions at step ``eps``; fast rows in one batched call, each
    direction starting from the step it needed before times ``eps / m.eps`` (the kinks it
    had to avoid are still there)."""
    fast = [m for m in rows if m.job is not None]
    jobs = [m.job for m in fast if m.job is not None]
    start: list[float | torch.Tensor] = []
    for m in fast:
        assert m.along is not None
        before = torch.where(m.along.measured, m.along.steps, m.eps)
        start.append(before.cpu() * (eps / m.eps))
    done = iter(measure(objective, grad, jobs, zero, eps, atol, start))
    out = []
    for m in rows:
        if m.job is not None:
            out.append(Measured.fast(next(done), m.job, eps))
        else:
            assert m.at is not None
            out.append(m.at(eps, atol))
    return out


def judge(
    decided: list[Decided],
    labels: list[str],
    thresholds: tuple[float, float],
    objective: _Objective,
    grad: dict[str, torch.Tensor],
    zero: float,
) -> list[str]:
    """Try smaller steps where a row is ``bug`` or ``look closer`` (see the module
    docstring), updating ``decided`` in place; returns the notes that say why."""
    todo = [i for i, d in enumerate(decided) if d.verdict in ("bug", "look closer")]
    first = {i: decided[i] for i in todo}
    rels = {i: [decided[i].rel] for i in todo}
    notes = {}
    for factor in SHRINK:
        if not todo:
            break
        start = [first[i] for i in todo]
        again = _again([d.measured for d in start], start[0].measured.eps / factor,
                       start[0].atol * factor, objective, grad, zero)  # fmt: skip
        still = []
        for i, m in zip(todo, again, strict=True):
            atol = first[i].atol * factor
            rel, noise = m.compare(atol)
            rels[i].append(rel)
            decided[i] = Decided(m, rel, noise, _verdict(rel, noise, thresholds), atol)
            # round-off at the smaller step counts only where the difference shrank: the
            # round-off level grows as the step shrinks, and a wrong gradient's does not
            shrank = m.typical_diff() <= first[i].measured.typical_diff() / 3
            if rel < thresholds[0] or (noise and shrank):
                decided[i].verdict = "correct"
                notes[i] = (f"{labels[i]}: {first[i].rel:.3g} at eps {first[i].measured.eps:g}, "
                            f"{rel:.3g} at eps {m.eps:g}: truncation or a kink crossed by the "
                            "step, gone at the smaller step")  # fmt: skip
            else:
                still.append(i)
        todo = still
    for i in todo:
        finite = [r for r in rels[i][1:] if math.isfinite(r)]
        if finite and min(finite) <= first[i].rel / 3:
            decided[i].verdict = "look closer"
            shown = ", ".join(f"{r:.3g}" for r in rels[i])
            notes[i] = (f"{labels[i]}: the difference shrinks with the step ({shown} at eps "
                        f"{first[i].measured.eps:g}, /10, /100): curvature or kinks, which a "
                        "wrong backward pass would not show")  # fmt: skip
        else:
            decided[i] = first[i]
    return [notes[i] for i in sorted(notes)]
