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
    notes = list(notes)
    rows: list[TensorCheck] = []
    entries: list[Entry] = []
    measured_all: list[_Measured] = []
    fallbacks, lost_steps, converged = [], [], []
    for name, value in base.items():
        m = None
        if mode == "fast":
            signs = _signs({name: value}, directions, generator)
            m = _along(objective, {name: value}, {name: grad[name]}, signs, zero)(eps, atol)
            if 2 * int(m.kinks.sum()) > directions:
                # Directional derivatives across kinks of several entries that move in
                # opposite directions have no reference value: check single entries.
                fallbacks.append(name)
                m = None
        if m is None:
            count = samples if mode == "sample" else max(samples, directions)
            if mode == "full" or count >= value.numel():
                index = torch.arange(value.numel())
            else:
                index = torch.randperm(value.numel(), generator=generator)[:count].sort().values
            m = _at_entries(objective, name, value, grad[name], index, zero)(eps, atol)
            if mode != "fast":
                measured_all.append(m)
        rel, noise = m.compare(atol)
        verdict = _verdict(rel, noise, thresholds)
        lost = int(((value + eps) == (value - eps)).sum())
        if lost:  # the step vanishes in the rounding of these weights: 0 / 0
            rel, noise, verdict = math.nan, False, "not finite"
            lost_steps.append(f"{name} ({lost} of {value.numel()}, |w| up to "
                              f"{float(value.abs().max()):.3g})")  # fmt: skip
        elif verdict in ("bug", "look closer"):
            better, why = _converge(m, rel, eps, atol, thresholds)
            if better:
                verdict = better
                converged.append(f"{name}: {why}")
        diff = (m.num - m.ana).abs()
        rows.append(TensorCheck(
            name=name, shape=tuple(value.shape), checked=m.num.numel(),
            grad_norm=float(grad[name].norm()), rel=rel, max_diff=float(diff.max()),
            noise=noise, verdict=verdict, kinks=int(m.kinks.sum()),
        ))  # fmt: skip
        for i in diff.argsort(descending=True)[:worst].tolist():
            where = None if m.index is None else _unravel(int(m.index[i]), tuple(value.shape))
            entries.append(Entry(name, where, i if m.index is None else None,
                                 float(m.ana[i]), float(m.num[i]), bool(m.kinks[i])))  # fmt: skip
    if mode == "fast":
        joint = _along(objective, base, grad, _signs(base, directions, generator), zero)
        m = joint(eps, atol)
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
    rel, noise = m.compare(atol)
    overall = _verdict(rel, noise, thresholds)
    if lost_steps:
        rel, noise, overall = math.nan, False, "not finite"
    elif overall in ("bug", "look closer"):
        better, why = _converge(m, rel, eps, atol, thresholds)
        if better:
            overall = better
            converged.append(f"overall: {why}")
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
    if not (objective.vectorize and objective.looped):
        return []
    groups = sorted({name for group in objective.looped for name in group})
    shown = ", ".join(groups[:6]) + (f" and {len(groups) - 6} more" if len(groups) > 6 else "")
    return [
        f"vmap could not batch the model for {shown} (in-place ops on batched tensors, "
        "custom autograd Functions, .item()): those were evaluated in a loop, same numbers"
    ]
