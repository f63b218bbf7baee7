"""One gradient-check run: back-propagate once, make sure the loss is deterministic, compare
each tensor (entries or directions) and all tensors together, and decide the verdict."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import torch

from initlab.gradient_check.numerics import (
    _at_kinks,
    _compare,
    _entries,
    _fast,
    _Objective,
    _unravel,
)
from initlab.gradient_check.results import VERDICTS, Entry, GradCheck, TensorCheck, _verdict


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
    loss_value = float(loss.detach())
    objective = _Objective(fn, base, vectorize)
    again = objective.values({k: v.unsqueeze(0) for k, v in list(base.items())[:1]})
    if not math.isfinite(loss_value) or not torch.isfinite(again).all():
        raise ValueError(f"the loss is not finite ({loss_value}); check the inputs and model")
    if float(again[0]) != loss_value and abs(float(again[0]) - loss_value) > 1e-9 * max(
        1.0, abs(loss_value)
    ):
        raise ValueError(
            f"the loss is not deterministic: {loss_value!r} then {float(again[0])!r} at the same "
            "parameters (random layers such as functional dropout?); a gradient check needs "
            "a deterministic loss"
        )
    if atol is None:
        atol = 16 * torch.finfo(torch.float64).eps * max(abs(loss_value), 1.0) / eps

    zero = float(again[0])
    rows: list[TensorCheck] = []
    entries: list[Entry] = []
    all_num: list[torch.Tensor] = []
    all_ana: list[torch.Tensor] = []
    fallbacks: list[str] = []
    lost_steps: list[str] = []
    for name, value in base.items():
        index, how = None, mode
        if mode == "fast":
            num, kinks, ana = _fast(objective, {name: value}, {name: grad[name]}, eps,
                                    directions, generator, zero, atol)  # fmt: skip
            if 2 * int(kinks.sum()) > directions:
                # Directional derivatives across kinks of several entries that move in
                # opposite directions have no reference value: check single entries.
                how = "sample"
                fallbacks.append(name)
        if how != "fast":
            flat = value.reshape(-1)
            count = samples if mode == "sample" else max(samples, directions)
            if mode == "full" or count >= flat.numel():
                index = torch.arange(flat.numel())
            else:
                index = torch.randperm(flat.numel(), generator=generator)[:count].sort().values
            sides = _entries(objective, name, value, index, eps, zero)
            ana = grad[name].reshape(-1)[index]

            def refine(mask: torch.Tensor, name=name, value=value, index=index) -> Any:
                return _entries(objective, name, value, index[mask.cpu()], eps / 10, zero)[1:]

            num, kinks = _at_kinks(ana, *sides, atol, refine)
            if mode != "fast":
                all_num.append(num)
                all_ana.append(ana)
        keep = ~kinks if how == "fast" else torch.ones_like(kinks)
        rel, noise = _compare(num[keep], ana[keep], atol, how)
        lost = int(((value + eps) == (value - eps)).sum())
        if lost:  # the step vanishes in the rounding of these weights: 0 / 0
            rel, noise = math.nan, False
            lost_steps.append(f"{name} ({lost} of {value.numel()}, |w| up to "
                              f"{float(value.abs().max()):.3g})")  # fmt: skip
        diff = (num - ana).abs()
        rows.append(TensorCheck(
            name=name, shape=tuple(value.shape), checked=num.numel(),
            grad_norm=float(grad[name].norm()), rel=rel, max_diff=float(diff.max()),
            noise=noise, verdict=_verdict(rel, noise, thresholds), kinks=int(kinks.sum()),
        ))  # fmt: skip
        for i in diff.argsort(descending=True)[:worst].tolist():
            where = None if index is None else _unravel(int(index[i]), tuple(value.shape))
            entries.append(Entry(name, where, i if index is None else None,
                                 float(ana[i]), float(num[i]), bool(kinks[i])))  # fmt: skip
    if mode == "fast":
        num, kinks, ana = _fast(objective, base, grad, eps, directions, generator, zero, atol)
        for i in (num - ana).abs().argsort(descending=True)[:worst].tolist():
            entries.append(Entry("(all)", None, i, float(ana[i]), float(num[i]), bool(kinks[i])))
        if bool(kinks.all()):
            notes = [*notes, "every joint direction crosses a kink: the per-tensor checks "
                     "decide the verdict"]  # fmt: skip
        else:
            num, ana = num[~kinks], ana[~kinks]
    else:
        num, ana = torch.cat(all_num), torch.cat(all_ana)
    if fallbacks:
        notes = [*notes, f"{', '.join(fallbacks)}: most directions cross kinks, so "
                 f"{max(samples, directions)} single entries were checked instead"]  # fmt: skip
    if lost_steps:
        huge = max(float(v.abs().max()) for v in base.values()) > 1e6
        notes = [*notes, f"eps={eps:g} is lost in the rounding of the weights in "
                 f"{'; '.join(lost_steps)}: w + eps == w - eps, so the finite difference is "
                 "0 / 0 there; use a larger eps"
                 + (" (weights this large mean training diverged)" if huge else "")]  # fmt: skip
    rel, noise = _compare(num, ana, atol, mode)
    if lost_steps:
        rel, noise = math.nan, False
    noise = noise or (mode == "fast" and bool(kinks.all()))
    verdicts = [_verdict(rel, noise, thresholds)] + [r.verdict for r in rows]
    verdict = max(verdicts, key=VERDICTS.index)
    entries.sort(key=lambda e: e.diff, reverse=True)
    kink_count = sum(r.kinks for r in rows)
    if kink_count:
        notes = [*notes, f"{kink_count} compared derivatives sit at kinks (one-sided "
                 "differences disagree): checked against the range between the one-sided "
                 "derivatives"]  # fmt: skip
    return GradCheck(
        mode=mode, eps=eps, loss=loss_value, rel=rel, overall_noise=noise, verdict=verdict,
        tensors=rows, worst=entries[:worst], thresholds=thresholds, atol=atol,
        evaluations=objective.evaluations, seconds=time.perf_counter() - start,
        vectorized=objective.vectorized, notes=[*notes, *_loop_note(objective)],
    )  # fmt: skip


def _loop_note(objective: _Objective) -> list[str]:
    if not (objective.vectorize and objective.looped):
        return []
    groups = sorted({name for group in objective.looped for name in group})
    shown = ", ".join(groups[:6]) + (f" and {len(groups) - 6} more" if len(groups) > 6 else "")
    return [
        f"vmap could not batch the model for {shown} (in-place ops on batched tensors, "
        "custom autograd Functions, .item()): those were evaluated in a loop, same numbers"
    ]
