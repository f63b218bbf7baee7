"""One gradient-check run: back-propagate once, make sure the loss is deterministic, compare
each tensor (entries or directions) and all tensors together, and decide the verdict.

**Does the difference shrink with the step?** A backward pass wrong by a factor ``c`` differs
from the finite differences by ``|c - 1| / (c + 1)`` at *any* step. Truncation error (``h^2
L''' / 6``) and kinks crossed by the step (ReLU, max-pool: in a deep network one step moves
thousands of pre-activations) shrink as the step shrinks. So where a tensor (or the joint
check) is not ``correct`` at ``eps``, the same entries or directions are measured again at
``eps / 10`` and ``eps / 100``: a difference that falls below the threshold there is
``correct``; one that falls at least three-fold but stays above it is ``look closer``, with the
reason in the notes; one that stays put keeps its verdict. Batch norm over a tiny batch (two
examples, one pixel per channel) is the classic case: its output is nearly constant and sharply
curved, and PyTorch's correct gradients otherwise look like a ``bug``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from initlab.gradient_check.numerics import (
    _at_kinks,
    _compare,
    _entries,
    _fast,
    _Objective,
    _signs,
    _unravel,
)
from initlab.gradient_check.results import VERDICTS, Entry, GradCheck, TensorCheck, _verdict

SHRINK = (10.0, 100.0)  # smaller steps tried where a difference is not correct at eps
FIRST_ROUND = 2  # fast mode: directions measured first; the rest only where they disagree


@dataclass
class _Measured:
    """Numeric and analytic derivatives of one tensor (or of all, ``name`` None) at one step,
    and how to measure the same entries or directions at another step."""

    num: torch.Tensor
    ana: torch.Tensor
    kinks: torch.Tensor
    how: str  # "fast" (directions) or "entries"
    index: torch.Tensor | None
    at: Callable[[float, float], _Measured]

    def compare(self, atol: float) -> tuple[float, bool]:
        keep = ~self.kinks if self.how == "fast" else torch.ones_like(self.kinks)
        if self.how == "fast" and bool(self.kinks.all()):
            return 0.0, True  # every direction at a kink: nothing to compare
        return _compare(self.num[keep], self.ana[keep], atol, self.how)


def _backprop(
    fn: Callable[[dict[str, torch.Tensor]], torch.Tensor], base: dict[str, torch.Tensor]
) -> tuple[dict[str, torch.Tensor], float]:
    leaves = {k: v.detach().clone().requires_grad_(True) for k, v in base.items()}
    with torch.enable_grad():
        loss = fn(leaves)
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            shape = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
            raise ValueError(f"the loss must be a scalar tensor; got {shape}")
        if not loss.requires_grad:
            raise ValueError("the loss does not depend on any checked tensor (no gradient)")
        grads = torch.autograd.grad(loss.reshape(()), list(leaves.values()), allow_unused=True)
    grad = {
        k: (torch.zeros_like(v) if g is None else g.detach())
        for (k, v), g in zip(base.items(), grads, strict=True)
    }
    return grad, float(loss.detach())


def _deterministic(objective: _Objective, base: dict[str, torch.Tensor], loss: float) -> float:
    again = objective.values({k: v.unsqueeze(0) for k, v in list(base.items())[:1]})
    if not math.isfinite(loss) or not torch.isfinite(again).all():
        raise ValueError(f"the loss is not finite ({loss}); check the inputs and model")
    if float(again[0]) != loss and abs(float(again[0]) - loss) > 1e-9 * max(1.0, abs(loss)):
        raise ValueError(
            f"the loss is not deterministic: {loss!r} then {float(again[0])!r} at the same "
            "parameters (random layers such as functional dropout?); a gradient check needs "
            "a deterministic loss"
        )
    return float(again[0])


def _along(
    objective: _Objective,
    base: dict[str, torch.Tensor],
    grad: dict[str, torch.Tensor],
    signs: dict[str, torch.Tensor],
    zero: float,
) -> Callable[[float, float], _Measured]:
    def at(eps: float, atol: float) -> _Measured:
        num, kinks, ana = _fast(objective, base, grad, eps, signs, zero, atol)
        return _Measured(num, ana, kinks, "fast", None, at)

    return at


def _at_entries(
    objective: _Objective,
    name: str,
    value: torch.Tensor,
    grad: torch.Tensor,
    index: torch.Tensor,
    zero: float,
) -> Callable[[float, float], _Measured]:
    def at(eps: float, atol: float) -> _Measured:
        sides = _entries(objective, name, value, index, eps, zero)
        ana = grad.reshape(-1)[index]

        def refine(mask: torch.Tensor) -> Any:
            return _entries(objective, name, value, index[mask.cpu()], eps / 10, zero)[1:]

        num, kinks = _at_kinks(ana, *sides, atol, refine)
        return _Measured(num, ana, kinks, "entries", index, at)

    return at


def _converge(
    measured: _Measured, rel: float, eps: float, atol: float, thresholds: tuple[float, float]
) -> tuple[str | None, str]:
    """The verdict after trying smaller steps (``None``: unchanged) and the reason."""
    rels = [rel]
    for factor in SHRINK:
        again = measured.at(eps / factor, atol * factor)
        smaller, noise = again.compare(atol * factor)
        rels.append(smaller)
        if noise or smaller < thresholds[0]:
            return "correct", (
                f"{rel:.3g} at eps {eps:g}, {smaller:.3g} at eps {eps / factor:g}: "
                "truncation or a kink crossed by the step, gone at the smaller step"
            )
    finite = [r for r in rels[1:] if math.isfinite(r)]
    if finite and min(finite) <= rel / 3:
        shown = ", ".join(f"{r:.3g}" for r in rels)
        return "look closer", (
            f"the difference shrinks with the step ({shown} at eps {eps:g}, /10, /100): "
            "curvature or kinks, which a wrong backward pass would not show"
        )
    return None, ""


def _unanimous(m: _Measured, atol: float, thresholds: tuple[float, float]) -> bool:
    """Whether every direction of ``m`` is correct on its own (relative difference below
    ``thresholds[0]`` or at round-off level), none at a kink, all finite."""
    if bool(m.kinks.any()) or not bool(torch.isfinite(m.num).all() & torch.isfinite(m.ana).all()):
        return False
    diff = (m.num - m.ana).abs()
    scale = m.num.abs() + m.ana.abs()
    per = torch.where(scale > 0, diff / scale.clamp_min(1e-300), 0.0)
    return bool(((per < thresholds[0]) | (diff <= atol)).all())


def _directions(
    objective: _Objective,
    base: dict[str, torch.Tensor],
    grad: dict[str, torch.Tensor],
    signs: dict[str, torch.Tensor],
    zero: float,
    eps: float,
    atol: float,
    thresholds: tuple[float, float],
) -> _Measured:
    """Fast mode along ``signs`` (``D`` directions), in two rounds: the first
    ``FIRST_ROUND`` directions, and the other ``D - FIRST_ROUND`` only where the first round
    is not unanimously correct (:func:`_unanimous`).

    A backward pass wrong by a factor ``c`` differs by ``|c - 1| / (c + 1)`` in *every*
    direction, so a unanimous first round cannot hide it, and a correct tensor costs
    ``2 * FIRST_ROUND`` evaluations instead of ``2 D``; a tensor with a disagreeing or kinked
    direction gets all ``D``, and the median over them decides as before. The signs of all
    ``D`` directions are drawn up front, so the result of the second round is the one a
    single round of ``D`` directions gives.
    """
    count = next(iter(signs.values())).shape[0]
    first = min(count, FIRST_ROUND)
    head = {k: d[:first] for k, d in signs.items()}
    m = _along(objective, base, grad, head, zero)(eps, atol)
    if first == count or _unanimous(m, atol, thresholds):
        return m
    rest = _along(objective, base, grad, {k: d[first:] for k, d in signs.items()}, zero)
    more = rest(eps, atol)
    return _Measured(torch.cat([m.num, more.num]), torch.cat([m.ana, more.ana]),
                     torch.cat([m.kinks, more.kinks]), "fast", None,
                     _along(objective, base, grad, signs, zero))  # fmt: skip


@dataclass
class _Setup:
    """What every tensor's measurement shares in one run."""

    objective: _Objective
    grad: dict[str, torch.Tensor]
    zero: float
    mode: str
    eps: float
    atol: float
    samples: int
    directions: int
    generator: torch.Generator
    thresholds: tuple[float, float]


def _measure(s: _Setup, name: str, value: torch.Tensor) -> tuple[_Measured, bool]:
    """One tensor's measurement: directions in fast mode (single entries where most of them
    cross kinks: the bool says so), else all or ``samples`` random entries."""
    if s.mode == "fast":
        signs = _signs({name: value}, s.directions, s.generator)
        m = _directions(s.objective, {name: value}, {name: s.grad[name]}, signs, s.zero,
                        s.eps, s.atol, s.thresholds)  # fmt: skip
        if 2 * int(m.kinks.sum()) <= m.kinks.numel():
            return m, False
        # Directional derivatives across kinks of several entries that move in opposite
        # directions have no reference value: check single entries.
    count = s.samples if s.mode == "sample" else max(s.samples, s.directions)
    if s.mode == "full" or count >= value.numel():
        index = torch.arange(value.numel())
    else:
        index = torch.randperm(value.numel(), generator=s.generator)[:count].sort().values
    return _at_entries(s.objective, name, value, s.grad[name], index, s.zero)(s.eps, s.atol), True


def _judge(
    s: _Setup, m: _Measured, value: torch.Tensor, converged: list[str], label: str
) -> tuple[float, bool, str, int]:
    """Relative difference, noise flag and verdict of one measurement (trying smaller steps
    where it is not correct), and how many entries lose the step in rounding."""
    rel, noise = m.compare(s.atol)
    verdict = _verdict(rel, noise, s.thresholds)
    lost = int(((value + s.eps) == (value - s.eps)).sum())
    if lost:  # the step vanishes in the rounding of these weights: 0 / 0
        return math.nan, False, "not finite", lost
    if verdict in ("bug", "look closer"):
        better, why = _converge(m, rel, s.eps, s.atol, s.thresholds)
        if better:
            verdict = better
            converged.append(f"{label}: {why}")
    return rel, noise, verdict, 0


def _worst_entries(m: _Measured, name: str, shape: tuple[int, ...], worst: int) -> list[Entry]:
    diff = (m.num - m.ana).abs()
    found = []
    for i in diff.argsort(descending=True)[:worst].tolist():
        where = None if m.index is None else _unravel(int(m.index[i]), shape)
        found.append(Entry(name, where, i if m.index is None else None,
                           float(m.ana[i]), float(m.num[i]), bool(m.kinks[i])))  # fmt: skip
    return found


def _run_check(
    fn: Callable[[dict[str, torch.Tensor]], torch.Tensor],
    base: dict[str, torch.Tensor],
    *,
    mode: str,
    eps: float,
    samples: int,
    directions: int,
    generator: torch.Generator,
    thresholds: tuple[float, float],
    atol: float | None,
    worst: int,
    vectorize: bool,
    notes: list[str],
    start: float,
) -> GradCheck:
    grad, loss_value = _backprop(fn, base)
    objective = _Objective(fn, base, vectorize)
    zero = _deterministic(objective, base, loss_value)
    if atol is None:
        atol = 16 * torch.finfo(torch.float64).eps * max(abs(loss_value), 1.0) / eps
    s = _Setup(objective, grad, zero, mode, eps, atol, samples, directions, generator,
               thresholds)  # fmt: skip
    rows: list[TensorCheck] = []
    entries: list[Entry] = []
    measured_all: list[_Measured] = []
    fallbacks, lost_steps, converged = [], [], []
    for name, value in base.items():
        m, by_entries = _measure(s, name, value)
        if by_entries and mode == "fast":
            fallbacks.append(name)
        if mode != "fast":
            measured_all.append(m)
        rel, noise, verdict, lost = _judge(s, m, value, converged, name)
        if lost:
            lost_steps.append(f"{name} ({lost} of {value.numel()}, |w| up to "
                              f"{float(value.abs().max()):.3g})")  # fmt: skip
        rows.append(TensorCheck(
            name=name, shape=tuple(value.shape), checked=m.num.numel(),
            grad_norm=float(grad[name].norm()), rel=rel,
            max_diff=float((m.num - m.ana).abs().max()), noise=noise, verdict=verdict,
            kinks=int(m.kinks.sum()),
        ))  # fmt: skip
        entries += _worst_entries(m, name, tuple(value.shape), worst)
    rel, noise, overall, extra = _overall(s, base, measured_all, converged, worst, entries,
                                          lost=bool(lost_steps))  # fmt: skip
    notes = [*notes, *extra]
    notes += _notes(fallbacks, lost_steps, converged, rows, eps, base, samples, directions)
    verdict = max([overall] + [r.verdict for r in rows], key=VERDICTS.index)
    entries.sort(key=lambda e: e.diff, reverse=True)
    return GradCheck(
        mode=mode, eps=eps, loss=loss_value, rel=rel, overall_noise=noise, verdict=verdict,
        tensors=rows, worst=entries[:worst], thresholds=thresholds, atol=atol,
        evaluations=objective.evaluations, seconds=time.perf_counter() - start,
        vectorized=objective.vectorized, notes=[*notes, *_loop_note(objective)],
        overall_verdict=overall,
    )  # fmt: skip


def _overall(
    s: _Setup,
    base: dict[str, torch.Tensor],
    measured_all: list[_Measured],
    converged: list[str],
    worst: int,
    entries: list[Entry],
    lost: bool,
) -> tuple[float, bool, str, list[str]]:
    """The check of all tensors together: random directions over all of them in fast mode
    (their worst directions join ``entries``), else every measured entry at once; ``not
    finite`` where a tensor lost the step in rounding (``lost``)."""
    notes = []
    if s.mode == "fast":
        signs = _signs(base, s.directions, s.generator)
        m = _directions(s.objective, base, s.grad, signs, s.zero, s.eps, s.atol, s.thresholds)
        for i in (m.num - m.ana).abs().argsort(descending=True)[:worst].tolist():
            entries.append(Entry("(all)", None, i, float(m.ana[i]), float(m.num[i]),
                                 bool(m.kinks[i])))  # fmt: skip
        if bool(m.kinks.all()):
            notes.append("every joint direction crosses a kink: the per-tensor checks decide")
    else:
        m = _Measured(torch.cat([x.num for x in measured_all]),
                      torch.cat([x.ana for x in measured_all]),
                      torch.cat([x.kinks for x in measured_all]), "entries", None,
                      lambda e, a: _joined(measured_all, e, a))  # fmt: skip
    rel, noise = m.compare(s.atol)
    overall = _verdict(rel, noise, s.thresholds)
    if lost:
        return math.nan, False, "not finite", notes
    if overall in ("bug", "look closer"):
        better, why = _converge(m, rel, s.eps, s.atol, s.thresholds)
        if better:
            overall = better
            converged.append(f"overall: {why}")
    return rel, noise, overall, notes


def _joined(parts: list[_Measured], eps: float, atol: float) -> _Measured:
    again = [p.at(eps, atol) for p in parts]
    return _Measured(torch.cat([x.num for x in again]), torch.cat([x.ana for x in again]),
                     torch.cat([x.kinks for x in again]), "entries", None,
                     lambda e, a: _joined(parts, e, a))  # fmt: skip


def _notes(
    fallbacks: list[str],
    lost_steps: list[str],
    converged: list[str],
    rows: list[TensorCheck],
    eps: float,
    base: dict[str, torch.Tensor],
    samples: int,
    directions: int,
) -> list[str]:
    notes = []
    if fallbacks:
        notes.append(f"{', '.join(fallbacks)}: most directions cross kinks, so "
                     f"{max(samples, directions)} single entries were checked instead")  # fmt: skip
    if lost_steps:
        huge = max(float(v.abs().max()) for v in base.values()) > 1e6
        notes.append(
            f"eps={eps:g} is lost in the rounding of the weights in {'; '.join(lost_steps)}: "
            "w + eps == w - eps, so the finite difference is 0 / 0 there; use a larger eps"
            + (" (weights this large mean training diverged)" if huge else "")
        )
    notes += converged
    kink_count = sum(r.kinks for r in rows)
    if kink_count:
        notes.append(f"{kink_count} compared derivatives sit at kinks (one-sided differences "
                     "disagree): checked against the range between the one-sided "
                     "derivatives")  # fmt: skip
    return notes


def _loop_note(objective: _Objective) -> list[str]:
    if not objective.vectorize:
        return []
    notes = []
    if objective.rewritten:
        notes.append(
            f"vmap batched {_names(objective.rewritten)} with in-place updates of unbatched "
            "tensors (out += identity) made out of place, checked against the plain loop"
        )
    if objective.looped:
        notes.append(
            f"vmap could not batch the model for {_names(objective.looped)} (custom autograd "
            "Functions, .item(), in-place ops on batched tensors): those were evaluated in a "
            "loop, same numbers"
        )
    return notes


def _names(groups: list[tuple[str, ...]]) -> str:
    names = sorted({name for group in groups for name in group})
    return ", ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "")
