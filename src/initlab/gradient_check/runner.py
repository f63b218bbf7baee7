"""One gradient-check run: back-propagate once (recording the kinks the forward meets), make
sure the loss is deterministic, measure the round-off level of the loss, compare each tensor
(entries or directions) and all tensors together, and decide the verdicts (see
:mod:`initlab.gradient_check.decide`: a difference that shrinks with the step is never a
``bug``; fast mode, :mod:`initlab.gradient_check.directions`: a tensor whose every direction
moves a unit sitting on a kink across it is ``inconclusive``, never a ``bug``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from initlab.gradient_check.decide import SHRINK, Decided, Measured, first_verdict, judge
from initlab.gradient_check.decide import unanimous as _unanimous
from initlab.gradient_check.directions import FIRST_ROUND, Job, draw, joined, measure
from initlab.gradient_check.kinks import KinkWatch, pins, release
from initlab.gradient_check.numerics import _at_kinks, _entries, _Objective, _unravel
from initlab.gradient_check.results import VERDICTS, Entry, GradCheck, TensorCheck

__all__ = ["FIRST_ROUND", "SHRINK"]


def _backprop(
    fn: Callable[[dict[str, torch.Tensor]], torch.Tensor],
    base: dict[str, torch.Tensor],
    watch: KinkWatch | None,
) -> tuple[dict[str, torch.Tensor], float, dict[str, torch.Tensor]]:
    """Gradients, the loss, and (with a ``watch``, fast mode) for each tensor that units
    sitting on a kink depend on, their derivative (see :func:`~.kinks.pins`)."""
    leaves = {k: v.detach().clone().requires_grad_(True) for k, v in base.items()}
    pinned: dict[str, torch.Tensor] = {}
    with torch.enable_grad():
        if watch is None:
            loss = fn(leaves)
        else:
            with watch.recording():
                loss = fn(leaves)
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            shape = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
            raise ValueError(f"the loss must be a scalar tensor; got {shape}")
        if not loss.requires_grad:
            raise ValueError("the loss does not depend on any checked tensor (no gradient)")
        grads = torch.autograd.grad(loss.reshape(()), list(leaves.values()), allow_unused=True,
                                    retain_graph=watch is not None)  # fmt: skip
        if watch is not None:
            pinned = pins(watch, leaves)
            release(watch)
    grad = {
        k: (torch.zeros_like(v) if g is None else g.detach())
        for (k, v), g in zip(base.items(), grads, strict=True)
    }
    return grad, float(loss.detach()), pinned


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


def _at_entries(
    objective: _Objective,
    name: str,
    value: torch.Tensor,
    grad: torch.Tensor,
    index: torch.Tensor,
    zero: float,
) -> Callable[[float, float], Measured]:
    def at(eps: float, atol: float) -> Measured:
        sides = _entries(objective, name, value, index, eps, zero)
        ana = grad.reshape(-1)[index]

        def refine(mask: torch.Tensor) -> Any:
            return _entries(objective, name, value, index[mask.cpu()], eps / 10, zero)[1:]

        num, kinks = _at_kinks(ana, *sides, atol, refine)
        return Measured(num, ana, kinks, "entries", index, eps, at)

    return at


def _round_off(objective: _Objective, zero: float, count: int = 4) -> float:
    """The round-off of the loss measured where the model sits: second differences
    ``L(w + t d) + L(w - t d) - 2 L(w)`` with the entries of the first tensor (usually the
    first layer: everything after it is recomputed) moved by a few units in the last place
    (``t = 1e-15 |w|``: curvature contributes ``t^2``, nothing), root mean square over
    ``count`` random sign vectors ``d`` (a private generator). A batch norm over two values,
    or a softmax of huge logits, rounds far worse than ``eps_64 |L|``."""
    generator = torch.Generator().manual_seed(0)
    name, v = next(iter(objective.base.items()))
    d = (2 * torch.randint(0, 2, (count, *v.shape), generator=generator) - 1).to(v)
    step = 1e-15 * v.abs().clamp_min(1e-300) * d
    moved = {name: torch.cat([v + step, v - step])}
    values = objective.values(moved).double()
    second = values[:count] + values[count:] - 2 * zero
    return float(second.pow(2).mean().sqrt()) if bool(torch.isfinite(second).all()) else 0.0


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
    pinned: dict[str, torch.Tensor]


def _jobs(s: _Setup, groups: list[list[str]], base: dict[str, torch.Tensor]) -> list[Job]:
    """Fast mode: the directions of each group of tensors (see :func:`.directions.draw`)."""
    jobs = []
    for names in groups:
        signs, one_sided = draw({n: base[n] for n in names}, s.directions, s.generator,
                                s.pinned)  # fmt: skip
        jobs.append(Job(names, signs, one_sided))
    return jobs


def _measure(s: _Setup, name: str, base: dict[str, torch.Tensor]) -> Measured:
    """Full and sample modes: all or ``samples`` random entries of one tensor."""
    value = base[name]
    if s.mode == "full" or s.samples >= value.numel():
        index = torch.arange(value.numel())
    else:
        index = torch.randperm(value.numel(), generator=s.generator)[: s.samples].sort().values
    return _at_entries(s.objective, name, value, s.grad[name], index, s.zero)(s.eps, s.atol)


def _directions(s: _Setup, jobs: list[Job]) -> list[Measured]:
    """Fast mode along each job's ``D`` directions, in two rounds: the first
    ``FIRST_ROUND`` directions, and the other ``D - FIRST_ROUND`` only where the first round
    is not unanimously correct (:func:`~.decide.unanimous`; a direction nobody could measure
    counts as not correct). The evaluations of all jobs in a round are batched together.

    A backward pass wrong by a factor ``c`` differs by ``|c - 1| / (c + 1)`` in *every*
    direction, so a unanimous first round cannot hide it, and a correct tensor costs
    ``2 * FIRST_ROUND`` evaluations instead of ``2 D``; a tensor with a disagreeing or
    unmeasured direction gets all ``D``, and the median over the measured ones decides (a
    tensor none of whose first directions could be measured is ``inconclusive`` as it is:
    the others meet the same units on kinks). The signs of all ``D`` directions are drawn
    up front, so the result of the second round is the one a single round of ``D``
    directions gives.
    """
    count = next(iter(jobs[0].signs.values())).shape[0] if jobs else 0
    first = min(count, FIRST_ROUND)

    def cut(job: Job, part: slice) -> Job:
        return Job(job.names, {k: d[part] for k, d in job.signs.items()}, job.one_sided)

    heads = [cut(j, slice(0, first)) for j in jobs]
    alongs = measure(s.objective, s.grad, heads, s.zero, s.eps, s.atol)
    measured = [Measured.fast(a, h, s.eps) for h, a in zip(heads, alongs, strict=True)]
    # a tensor none of whose first directions could be measured gets no more: they meet
    # the same units on kinks
    again = [i for i, m in enumerate(measured)
             if first < count and not _unanimous(m, s.atol, s.thresholds)
             and bool(m.usable.any())]  # fmt: skip
    tails = [cut(jobs[i], slice(first, None)) for i in again]
    # the rest start at the step the first round settled on (kinks or truncation)
    start = [min(s.eps, float(alongs[i].steps[alongs[i].measured].min()))
             if bool(alongs[i].measured.any()) else s.eps for i in again]  # fmt: skip
    rests = measure(s.objective, s.grad, tails, s.zero, s.eps, s.atol, start)
    for i, rest in zip(again, rests, strict=True):
        measured[i] = Measured.fast(joined([alongs[i], rest]), jobs[i], s.eps)
    return measured


def _row(name: str, shape: tuple[int, ...], d: Decided, grad_norm: float, left_out: int
         ) -> TensorCheck:  # fmt: skip
    m = d.measured
    keep = m.usable
    diffs = (m.num[keep] - m.ana[keep]).abs()
    return TensorCheck(
        name=name, shape=shape, checked=int(keep.sum()), grad_norm=grad_norm, rel=d.rel,
        max_diff=float(diffs.max()) if diffs.numel() else math.nan, noise=d.noise,
        verdict=d.verdict, kinks=m.crossed if m.how == "fast" else int(m.kinks.sum()),
        diff_atol=m.diff_atol(d.atol), step=m.step, left_out=left_out,
    )  # fmt: skip


def _worst_entries(m: Measured, name: str, shape: tuple[int, ...], worst: int) -> list[Entry]:
    usable = m.usable.nonzero().flatten()
    diff = (m.num[usable] - m.ana[usable]).abs()
    found = []
    for j in diff.argsort(descending=True)[:worst].tolist():
        i = int(usable[j])
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
    model: torch.nn.Module | None = None,
) -> GradCheck:
    """The check of ``fn`` at ``base`` (see :func:`~.check.gradcheck` for the options);
    ``model``: the module ``fn`` runs, whose activation modules the kink watch may hook."""
    watch = KinkWatch(model) if mode == "fast" else None
    try:
        grad, loss_value, pinned = _backprop(fn, base, watch)
        objective = _Objective(fn, base, vectorize, watch)
        zero = _deterministic(objective, base, loss_value)
        noise = _round_off(objective, zero)
        if atol is None:
            atol = max(16 * torch.finfo(torch.float64).eps * max(abs(loss_value), 1.0),
                       4 * noise) / eps  # fmt: skip
        s = _Setup(objective, grad, zero, mode, eps, atol, samples, directions, generator,
                   thresholds, pinned)  # fmt: skip
        names = list(base)
        if mode == "fast":
            measured = _directions(s, _jobs(s, [[n] for n in names], base))
            # the joint directions span the tensors that could be measured on their own
            joint = [n for n, m in zip(names, measured, strict=True) if bool(m.usable.any())]
            measured.append(_directions(s, _jobs(s, [joint or names], base))[0])
        else:
            measured = [_measure(s, n, base) for n in names]
            measured.append(Measured(torch.cat([x.num for x in measured]),
                                     torch.cat([x.ana for x in measured]),
                                     torch.cat([x.kinks for x in measured]), "entries", None, eps,
                                     lambda e, a: _joined(measured[:-1], e, a)))  # fmt: skip
        lost = [int(((v + eps) == (v - eps)).sum()) for v in base.values()]
        decided = [first_verdict(m, atol, thresholds) for m in measured]
        for i, count in enumerate(lost):
            if count:  # the step vanishes in the rounding of these weights: 0 / 0
                decided[i] = Decided(measured[i], math.nan, False, "not finite", atol)
        if any(lost):
            decided[-1] = Decided(measured[-1], math.nan, False, "not finite", atol)
        converged = judge(decided, [*names, "overall"], thresholds, objective, grad, zero)
        left_out = {n: int((pinned[n] != 0).sum()) if n in pinned else 0 for n in names}
        rows = [_row(n, tuple(base[n].shape), d, float(grad[n].norm()), left_out[n])
                for n, d in zip(names, decided[:-1], strict=True)]  # fmt: skip
        norm = float(sum(float(g.norm()) ** 2 for g in grad.values()) ** 0.5)
        overall = _row("overall", (), decided[-1], norm, sum(left_out.values()))
        entries: list[Entry] = []
        for n, d in zip([*names, "(all)"], decided, strict=True):
            shape = tuple(base[n].shape) if n in base else ()
            entries += _worst_entries(d.measured, n, shape, worst)
        lost_steps = [f"{n} ({c} of {base[n].numel()}, |w| up to {float(base[n].abs().max()):.3g})"
                      for n, c in zip(names, lost, strict=True) if c]  # fmt: skip
        notes = [*notes, *_notes(lost_steps, converged, rows, eps, base, watch, left_out)]
        if atol > 16 * torch.finfo(torch.float64).eps * max(abs(loss_value), 1.0) / eps * 1.0001:
            notes.append(f"the loss rounds worse than float64 suggests here (measured: "
                         f"{noise:.3g} for a loss of {abs(loss_value):.3g}): round-off level "
                         f"atol {atol:.3g} at eps")  # fmt: skip
        verdict = max([overall.verdict] + [r.verdict for r in rows], key=VERDICTS.index)
        entries.sort(key=lambda e: e.diff, reverse=True)
        return GradCheck(
            mode=mode, eps=eps, loss=loss_value, verdict=verdict, tensors=rows, overall=overall,
            worst=entries[:worst], thresholds=thresholds, atol=atol,
            evaluations=objective.evaluations, seconds=time.perf_counter() - start,
            vectorized=objective.vectorized, notes=[*notes, *_loop_note(objective)],
        )  # fmt: skip
    finally:
        if watch is not None:
            watch.close()


def _joined(parts: list[Measured], eps: float, atol: float) -> Measured:
    again = [p.at(eps, atol) for p in parts if p.at is not None]
    return Measured(torch.cat([x.num for x in again]), torch.cat([x.ana for x in again]),
                    torch.cat([x.kinks for x in again]), "entries", None, eps,
                    lambda e, a: _joined(parts, e, a))  # fmt: skip


def _notes(
    lost_steps: list[str],
    converged: list[str],
    rows: list[TensorCheck],
    eps: float,
    base: dict[str, torch.Tensor],
    watch: KinkWatch | None,
    left_out: dict[str, int],
) -> list[str]:
    notes = []
    if lost_steps:
        huge = max(float(v.abs().max()) for v in base.values()) > 1e6
        notes.append(
            f"eps={eps:g} is lost in the rounding of the weights in {'; '.join(lost_steps)}: "
            "w + eps == w - eps, so the finite difference is 0 / 0 there; use a larger eps"
            + (" (weights this large mean training diverged)" if huge else "")
        )
    notes += converged
    if watch is None:
        kink_count = sum(r.kinks for r in rows)
        if kink_count:
            notes.append(f"{kink_count} compared derivatives sit at kinks (one-sided "
                         "differences disagree): checked against the range between the "
                         "one-sided derivatives")  # fmt: skip
        return notes
    on = watch.on_kinks
    if on:
        units = sum(c.x.numel() for c in watch.calls)
        whole = [r.name for r in rows if r.left_out and r.left_out == math.prod(r.shape)]
        notes.append(
            f"{on:,} of the {units:,} inputs of kinked functions (ReLU, ReLU6, max-pool, ...) "
            f"sit exactly on a kink; {sum(left_out.values()):,} entries of "
            f"{sum(1 for c in left_out.values() if c)} tensors move one of them and were left "
            "out of the directions (along them the loss has only one-sided derivatives)"
            + (f"; {_short(whole)} {'has' if len(whole) == 1 else 'have'} no other entries: "
               "checked with one-sided differences on the side the backward pass takes"
               if whole else "")
        )  # fmt: skip
    if watch.mismatch:
        notes.append("the forward called kinked functions in another order at some perturbed "
                     "points (data-dependent control flow): those directions were measured at "
                     "smaller steps or not at all")  # fmt: skip
    return notes


def _short(names: list[str], most: int = 4) -> str:
    return ", ".join(names[:most]) + (f" and {len(names) - most} more" if len(names) > most else "")


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
