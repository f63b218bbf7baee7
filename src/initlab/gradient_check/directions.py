"""Fast mode: derivatives along random directions, with steps that cross no kink.

For a direction ``d`` the numeric derivative is the central difference ``(L(w + h d) - L(w -
h d)) / (2 h)``, exact up to ``O(h^2)`` in float64 as long as no unit changes piece between
``w - h d`` and ``w + h d`` (see :mod:`initlab.gradient_check.kinks`). Each evaluation reports
the largest fraction ``r`` of a kink margin its step used:

* ``r < 1`` on both sides: no unit changed piece; the central difference stands;
* otherwise the direction is measured again at ``h / (2 r)`` (at least halving the step;
  ``h / (2 r^2)`` where ``r >= 2``: downstream of a crossing, or of batch norm over two
  values, units move faster than linearly), which keeps every unit on its side to first
  order, up to ``TRIES`` times, but at no less than ``MIN_STEP * eps``;
* a direction that still crosses (a unit sitting *on* a kink that the direction moves:
  ``r`` far above 1, no step avoids it), or whose derivative at the step that crosses no
  kink is no longer clear of round-off there (``|g . d|`` at most 3 times the round-off
  level: a wrong gradient would pass as round-off), is *unmeasured*, and the units it moves
  across a kink at its first step are counted;
* except where the loss hardly moves along it at the first step: numeric and analytic
  derivative both below the round-off level (vanishing activations, a zero gradient). Kinks
  crossed there change the difference by less than round-off, and it is compared as it is.

Directions come from :func:`draw`: random signs on the entries that move no unit sitting on
a kink (the others, *pinned*, are left out: the derivative along them is one-sided, and
PyTorch's backward takes one side or the other unit by unit). Where every entry of a tensor
is pinned, the directions are one-sided instead: ``-sign(v)`` on a random half of the entries,
``v`` the derivative of the switching values of the units on kinks (see
:func:`~initlab.gradient_check.kinks.pins`), so that units whose switching values all grow
with ``v`` stay on the piece the backward used; the derivative is then the second-order
one-sided difference ``(-3 L(w) + 4 L(w + h d) - L(w + 2 h d)) / (2 h)``, accepted only where
no unit changed piece up to ``w + 2 h d``; where one did, the other side (``-d``) is tried
before the step shrinks (a wrong backward pass flips ``v`` too).

The analytic derivative is ``g . delta / h`` with ``delta`` the step actually taken after
rounding (``(w^+ - w^-) / 2`` central, ``(4 (w^1 - w) - (w^2 - w)) / 2`` one-sided), so the
rounding of the weights cancels.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from initlab.gradient_check.numerics import _Objective

FIRST_ROUND = 2  # directions measured first; the rest only where they disagree
TRIES = 4  # evaluations of a direction at ever smaller steps before it is unmeasured
MIN_STEP = 1e-5  # ... and the smallest step tried, as a fraction of eps
ONE_SIDED_ROUND_OFF = 4.0  # |-3| + |4| + |-1| over 2: round-off of the one-sided formula


@dataclass
class Along:
    """Derivatives along ``D`` directions: ``num`` (NaN where unmeasured), ``ana``,
    ``steps`` (the step each was measured at; 0 where unmeasured), ``kinks`` (units an
    unmeasured direction moves across a kink at its smallest step; 0 where measured) and
    whether the differences are one-sided."""

    num: torch.Tensor
    ana: torch.Tensor
    steps: torch.Tensor
    kinks: torch.Tensor
    one_sided: bool

    @property
    def measured(self) -> torch.Tensor:
        return self.steps > 0

    def round_off(self, eps: float) -> torch.Tensor:
        """Each direction's round-off level as a multiple of the level at step ``eps``."""
        factor = ONE_SIDED_ROUND_OFF if self.one_sided else 1.0
        return factor * eps / torch.where(self.measured, self.steps, eps)

    def __getitem__(self, keep: slice) -> Along:
        return Along(self.num[keep], self.ana[keep], self.steps[keep], self.kinks[keep],
                     self.one_sided)  # fmt: skip


def joined(parts: list[Along]) -> Along:
    return Along(*(torch.cat([getattr(p, f) for p in parts]) for f in ("num", "ana", "steps",
                                                                        "kinks")),
                 parts[0].one_sided)  # fmt: skip


def draw(
    base: Mapping[str, torch.Tensor],
    count: int,
    generator: torch.Generator,
    pinned: Mapping[str, torch.Tensor],
) -> tuple[dict[str, torch.Tensor], bool]:
    """``count`` directions over the tensors of ``base`` and whether they are one-sided.

    Random signs (entries +-1, so each entry moves by the step as in the full check) with
    the pinned entries (``pinned[name] != 0``) set to 0; where no entry is left, one-sided
    directions ``-sign(pinned)`` on a random half of the entries (see the module
    docstring)."""
    signs = {
        name: (2 * torch.randint(0, 2, (count, *v.shape), generator=generator) - 1).to(v)
        for name, v in base.items()
    }
    free = {name: (pinned[name] == 0).to(v) for name, v in base.items() if name in pinned}
    if any(name not in free or bool(free[name].any()) for name in base):
        return {name: s * free[name] if name in free else s for name, s in signs.items()}, False
    halves = {name: (s > 0).to(s) for name, s in signs.items()}  # a random half of each
    empty = sum(h.reshape(count, -1).sum(1) for h in halves.values()) == 0
    for h in halves.values():
        h[empty] = 1.0
    return {name: -torch.sign(pinned[name]).to(h) * h for name, h in halves.items()}, True


def _shaped(h: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return h.reshape(-1, *([1] * like.dim())).to(like)


@dataclass(eq=False)
class Job:
    """Directions ``signs`` (``(D, *shape)`` per tensor) over the tensors ``names``."""

    names: list[str]
    signs: dict[str, torch.Tensor]
    one_sided: bool


@dataclass
class _Pending:
    """One job's directions still to measure, with their steps and sides."""

    job: Job
    rows: torch.Tensor
    h: torch.Tensor
    side: torch.Tensor
    count: bool = False
    index: int = 0  # the job's place in the list :func:`measure` was given

    def settings(self, base: Mapping[str, torch.Tensor], grad: Mapping[str, torch.Tensor]
                 ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:  # fmt: skip
        """The ``2 n`` perturbed settings (near then far) and the analytic derivatives."""
        n = self.rows.numel()
        near, far, taken = {}, {}, {}
        for k in self.job.names:
            step = _shaped(self.h * self.side, base[k]) * self.job.signs[k][self.rows.to(
                base[k].device)]  # fmt: skip
            near[k] = base[k] + step
            far[k] = base[k] + 2 * step if self.job.one_sided else base[k] - step
            if self.job.one_sided:
                taken[k] = 4 * (near[k] - base[k]) - (far[k] - base[k])
            else:
                taken[k] = near[k] - far[k]
        device = next(iter(base.values())).device
        ana = torch.zeros(n, dtype=torch.float64, device=device)
        for k in self.job.names:
            ana += (taken[k] * grad[k]).reshape(n, -1).sum(1).to(torch.float64)
        ana /= 2 * self.h.to(device)
        return {k: torch.cat([near[k], far[k]]) for k in self.job.names}, ana


_PACK_ELEMENTS = 1 << 22  # perturbed entries held by one batched call (float64: 32 MiB)
_PACK_SETTINGS = 64


def _evaluate(
    objective: _Objective,
    base: Mapping[str, torch.Tensor],
    grad: Mapping[str, torch.Tensor],
    pending: list[_Pending],
    zero: float,
) -> list[tuple[torch.Tensor, ...]]:
    """Numeric and analytic derivatives of every pending direction, the largest margin
    fraction of its two evaluations and (where counted) the units that changed piece.

    The settings of several jobs go into one batched call (each row perturbs its own job's
    tensors, the others stay at the base point) while they fit ``_PACK_ELEMENTS`` and
    ``_PACK_SETTINGS``: on small inputs a call costs about the same for 4 settings as for 64."""
    built = [p.settings(base, grad) for p in pending]
    out: list[Any] = [None] * len(pending)
    i = 0
    while i < len(pending):
        pack, names, rows = [i], set(pending[i].job.names), 2 * pending[i].rows.numel()
        count = pending[i].count
        while i + len(pack) < len(pending):
            nxt = pending[i + len(pack)]
            more_names = names | set(nxt.job.names)
            more_rows = rows + 2 * nxt.rows.numel()
            size = more_rows * sum(base[k].numel() for k in more_names)
            if nxt.count != count or size > _PACK_ELEMENTS or more_rows > _PACK_SETTINGS:
                break
            pack.append(i + len(pack))
            names, rows = more_names, more_rows
        batched = {}
        for k in sorted(names, key=list(base).index):
            parts = []
            for j in pack:
                settings = built[j][0]
                r = 2 * pending[j].rows.numel()
                parts.append(settings[k] if k in settings else base[k].expand(r, *base[k].shape))
            batched[k] = torch.cat(parts)
        values, ratio, units = objective.evaluate(batched, count=count, elements=_PACK_ELEMENTS)
        start = 0
        for j in pack:
            n = pending[j].rows.numel()
            part = slice(start, start + 2 * n)
            start += 2 * n
            out[j] = _differences(pending[j], built[j][1], values[part],
                                  None if ratio is None else ratio[part],
                                  None if units is None else units[part], zero)  # fmt: skip
        i += len(pack)
    return out


def _differences(
    p: _Pending,
    ana: torch.Tensor,
    values: torch.Tensor,
    ratio: torch.Tensor | None,
    units: torch.Tensor | None,
    zero: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Numeric and analytic derivatives, the largest margin fraction of the two evaluations
    of each direction, the units that changed piece (where counted) and the curvature
    ``L''`` along the direction."""
    n = p.rows.numel()
    values = values.double()
    first, second = values[:n], values[n:]
    h = p.h.to(values.device)
    if p.job.one_sided:
        num = (4 * first - second - 3 * zero) / (2 * h)
        curvature = (second - 2 * first + zero) / h**2
    else:
        num = (first - second) / (2 * h)
        curvature = (first + second - 2 * zero) / h**2
    if ratio is None or units is None:
        none = torch.zeros(n, dtype=torch.float64)
        return num, ana, none, torch.zeros(n, dtype=torch.long), curvature
    ratio = torch.nan_to_num(ratio.double().cpu(), nan=math.inf)
    units = units.cpu().long()
    return (num, ana, torch.maximum(ratio[:n], ratio[n:]), torch.maximum(units[:n], units[n:]),
            curvature)  # fmt: skip


def _best_step(h: torch.Tensor, num: torch.Tensor, curvature: torch.Tensor, noise: float
               ) -> torch.Tensor:  # fmt: skip
    """The step that balances truncation and round-off, where truncation dominates at ``h``.

    Truncation is ``h^2 |L'''| / 6``; for the sharply curved losses where it matters (batch
    norm over two values, ``L ~ 1 / sqrt(var)``), ``|L'''|`` is about ``L''^2 / |L'|``.
    Round-off is ``noise / h`` (``noise``: the round-off level of a derivative times its
    step). The sum is smallest at ``h* = (3 noise |L'| / L''^2)^(1/3)``; ``h`` itself where
    truncation is already below round-off."""
    slope = num.abs().cpu().clamp_min(1e-300)
    bend = curvature.abs().cpu()
    truncation = h**2 * bend**2 / (6 * slope)
    best = (3 * noise * slope / bend.clamp_min(1e-300) ** 2) ** (1 / 3)
    return torch.where(truncation > noise / h, torch.minimum(best, h), h)


def measure(
    objective: _Objective,
    grad: Mapping[str, torch.Tensor],
    jobs: list[Job],
    zero: float,
    eps: float,
    atol: float,
    start: list[float | torch.Tensor] | None = None,
) -> list[Along]:
    """Derivatives along each job's directions, each at the largest step up to ``eps`` that
    crosses no kink, made smaller once where truncation would dominate (:func:`_best_step`;
    ``atol``: the round-off level of a derivative at step ``eps``); the evaluations of all
    jobs are batched (see the module docstring). ``start``: each job's first step, or one per
    direction (default ``eps``; smaller where earlier directions of the tensor needed it)."""
    base = objective.base
    device = next(iter(base.values())).device
    firsts = start or [eps] * len(jobs)
    states = [_State(next(iter(job.signs.values())).shape[0], first, device)
              for job, first in zip(jobs, firsts, strict=True)]  # fmt: skip
    for st in states:
        st.start = st.tried.clone()
    smallest = MIN_STEP * eps
    for _ in range(TRIES + 2):
        pending = [_Pending(job, st.todo, st.tried[st.todo], st.side[st.todo], index=i)
                   for i, (job, st) in enumerate(zip(jobs, states, strict=True))
                   if st.todo.numel()]  # fmt: skip
        if not pending:
            break
        results = _evaluate(objective, base, grad, pending, zero)
        for p, (n_, a_, ratio, _, bend) in zip(pending, results, strict=True):
            st = states[p.index]
            todo, h = p.rows, p.h
            fresh, level = ~st.refined[todo], atol * eps / h  # round-off at this step
            at_start = h >= st.start[todo]
            clear = a_.abs().cpu() > 3 * level  # stands clear of round-off at this step
            good = ratio < 1  # no unit changed piece
            # the loss hardly moves along it: every derivative, crossing or not, is below
            # round-off at the first step, and the difference is compared as it is
            quiet = torch.maximum(n_.abs(), a_.abs()).cpu() <= level
            # a smaller step is taken only where the derivative stays clear of round-off
            # there (else a wrong gradient could pass as round-off): the direction is then
            # unmeasured; a smaller step for truncation is kept only if it is clear too
            accept = (fresh & ((good & (at_start | clear)) | (quiet & at_start))) | (
                ~fresh & good & clear
            )
            where = todo[accept]
            st.num[where.to(device)] = n_[accept.to(device)]
            st.ana[where.to(device)] = a_[accept.to(device)]
            st.steps[where] = h[accept]
            if p.job.one_sided:  # the other side, at the same step, where this one crossed
                flip = fresh & ~accept & (st.side[todo] > 0)
                st.side[todo[flip]] = -1.0
            else:
                flip = torch.zeros_like(accept)
            # crossed: a step at which every unit keeps its side, to first order (a crossing
            # can cascade: r need not shrink with h), no smaller than the smallest step
            # (r can grow faster than the step: a unit after a crossing, or after a batch
            # norm over two values, moves by more than its share; far over, shrink by r^2)
            shrink = torch.where(ratio >= 2, 0.5 / ratio**2, 0.5 / ratio).clamp(max=0.5)
            smaller = torch.clamp(h * shrink, min=smallest)
            # ... and only while the derivative could still stand clear of round-off there
            hopeful = a_.abs().cpu() > 3 * atol * eps / smaller
            again = fresh & ~accept & ~flip & ~good & (h > smallest) & hopeful
            # measured: once more at a smaller step where truncation dominates
            best = torch.clamp(_best_step(h, n_, bend, atol * eps), min=smallest)
            refine = accept & fresh & (best < h / 2)
            st.refined[todo[refine]] = True
            st.tried[todo[again]] = smaller[again]
            st.tried[todo[refine]] = best[refine]
            st.todo = todo[again | flip | refine]
    # count the units each unmeasured direction moves across a kink at its first step
    pending = []
    for i, (job, st) in enumerate(zip(jobs, states, strict=True)):
        missing = (st.steps == 0).nonzero().flatten()
        if missing.numel():
            h = st.start[missing]
            pending.append(_Pending(job, missing, h, st.side[missing], count=True, index=i))
    if pending:
        results = _evaluate(objective, base, grad, pending, zero)
        for p, (_, a_, _, units, _) in zip(pending, results, strict=True):
            st = states[p.index]
            st.kinks[p.rows] = units
            st.ana[p.rows.to(device)] = a_
    return [Along(st.num, st.ana, st.steps.to(device), st.kinks.to(device), job.one_sided)
            for job, st in zip(jobs, states, strict=True)]  # fmt: skip


class _State:
    """What :func:`measure` knows about one job's directions."""

    def __init__(self, count: int, eps: float | torch.Tensor, device: torch.device) -> None:
        self.num = torch.full((count,), math.nan, dtype=torch.float64, device=device)
        self.ana = torch.zeros(count, dtype=torch.float64, device=device)
        self.steps = torch.zeros(count, dtype=torch.float64)  # measured at; 0: not yet
        self.tried = torch.zeros(count, dtype=torch.float64) + torch.as_tensor(eps).cpu()
        self.start = self.tried.clone()
        self.side = torch.ones(count, dtype=torch.float64)  # one-sided: -1 once flipped
        self.refined = torch.zeros(count, dtype=torch.bool)  # made smaller for truncation
        self.todo = torch.arange(count)
        self.kinks = torch.zeros(count, dtype=torch.long)
