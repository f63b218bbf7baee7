"""Coordinate check (muP, Yang et al. 2021; ``mup/coord_check.py``) with a verdict.

Build the model at several widths, train each for a few steps on one fixed batch and record,
for every leaf module (and ``nn.MultiheadAttention``), the average size of a coordinate of its
output, ``l1 = mean |y|``, at each step. In a width-independent parametrization (muP) these
curves are flat in the width after a few steps; a layer whose ``l1`` grows like ``width^s``
(``s`` fitted by least squares on ``log l1`` against ``log width``, last step) will blow up
when the model is made wider, and one that shrinks will stop learning.

What to change, by where the slope appears (muP's rules, Adam):

- the readout (the module whose output is the model's) grows: scale it by ``1 / width``
  (init std ``1 / fan_in`` or zero init, and learning rate ``1 / width``: muP's ``MuReadout``);
- a hidden layer grows after training but not at init: its learning rate is too large for
  the width, use ``lr ~ 1 / fan_in`` for hidden weights with Adam;
- a layer grows already at init: its init std is too large, use ``1 / sqrt(fan_in)``.

At init (step 0) the readout of a muP model shrinks like ``1 / sqrt(width)``: that is expected
and transient, so the verdict reads the last step. Widths should span at least a factor 4.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from initlab._core.rng import make_generator, seeded_global_rng
from initlab._core.table import format_table
from initlab._core.validation import check_choice, check_number
from initlab.initializers.model_calls import call_model, main_output

SLOPE_TOLERANCE = 0.25  # |slope| above this: the layer's scale depends on the width


@dataclass
class CoordRow:
    module: str
    l1: list[list[float]]  # [step][width]
    slope: float  # at the last step
    slope_at_init: float
    verdict: str  # "stable", "grows", "shrinks"
    readout: bool = False


@dataclass
class CoordCheck:
    """``l1`` of every module's output at each step and width, slopes and a verdict."""

    widths: list[int]
    steps: int
    rows: list[CoordRow]
    verdict: str
    advice: list[str] = field(default_factory=list)
    losses: list[list[float]] = field(default_factory=list)  # [width][step]

    def to_dict(self) -> dict[str, Any]:
        def clean(v: Any) -> Any:
            if isinstance(v, float) and not math.isfinite(v):
                return None
            if isinstance(v, list):
                return [clean(x) for x in v]
            return v

        return {
            "widths": self.widths,
            "steps": self.steps,
            "verdict": self.verdict,
            "advice": list(self.advice),
            "losses": clean(self.losses),
            "rows": [{k: clean(v) for k, v in r.__dict__.items()} for r in self.rows],
        }

    def __str__(self) -> str:
        headers = ["module", *[f"l1 @ {w}" for w in self.widths], "slope", "slope t=0", "verdict"]
        rows = [(r.module + (" (readout)" if r.readout else ""), *r.l1[-1], r.slope,
                 r.slope_at_init, r.verdict) for r in self.rows]  # fmt: skip
        return "\n".join([
            f"l1 = mean |output| after {self.steps} steps, by width",
            format_table(headers, rows), f"verdict: {self.verdict}", *self.advice,
        ])  # fmt: skip


def _slope(widths: Sequence[int], values: Sequence[float]) -> float:
    pts = [(math.log(w), math.log(v)) for w, v in zip(widths, values, strict=True)
           if v > 0 and math.isfinite(v)]  # fmt: skip
    if len(pts) < 2:
        return math.nan
    mx = sum(p[0] for p in pts) / len(pts)
    my = sum(p[1] for p in pts) / len(pts)
    sxx = sum((p[0] - mx) ** 2 for p in pts)
    return sum((p[0] - mx) * (p[1] - my) for p in pts) / sxx if sxx > 0 else math.nan


def _optimizer(spec: str | Callable, model: nn.Module, width: int, lr: float | None) -> Any:
    if callable(spec):
        return spec(model, width)
    params = [p for p in model.parameters() if p.requires_grad]
    if spec == "sgd":
        return torch.optim.SGD(params, lr=0.1 if lr is None else lr)
    if spec == "adamw":
        return torch.optim.AdamW(params, lr=1e-2 if lr is None else lr)
    return torch.optim.Adam(params, lr=1e-2 if lr is None else lr)


def _l1_hooks(model: nn.Module, current: dict[str, float], last_name: list) -> list[Any]:
    """Forward hooks on the leaves (and ``MultiheadAttention``, whose ``out_proj`` child is
    applied functionally) that record ``l1 = mean |y|`` of each module's first output of a
    step into ``current`` and the last module that produced one (the readout) in
    ``last_name[0]``."""
    handles = []
    for name, module in model.named_modules():
        inner = next(module.children(), None) is not None
        if not name or (inner and not isinstance(module, nn.MultiheadAttention)):
            continue

        def hook(mod: nn.Module, args: Any, out: Any, name: str = name) -> None:
            y = out[0] if isinstance(out, tuple) else out
            if isinstance(y, torch.Tensor) and y.is_floating_point() and name not in current:
                current[name] = float(y.detach().abs().mean())
                last_name[0] = name

        handles.append(module.register_forward_hook(hook))
    return handles


def coord_check(
    factory: Callable[[int], nn.Module],
    widths: Sequence[int],
    example_input: Any,
    *,
    target: torch.Tensor | None = None,
    steps: int = 3,
    optimizer: str | Callable[[nn.Module, int], Any] = "adam",
    lr: float | None = None,
    loss: Callable[[Any], torch.Tensor] | None = None,
    seed: int = 0,
) -> CoordCheck:
    """Run muP's coordinate check on ``factory(width)`` for each width.

    Each model is built with torch's global RNG seeded by ``seed`` (restored afterwards) and
    trained for ``steps`` steps of ``optimizer`` (``"adam"`` lr 1e-2, ``"adamw"``, ``"sgd"``
    lr 0.1, or ``callable(model, width) -> torch.optim.Optimizer`` for per-layer rates) on
    ``example_input``. The loss is ``loss(output)`` if given, else cross-entropy against an
    integer ``target``, else the mean squared error against ``target`` (default: N(0, 1) of
    the output's shape, drawn from ``seed``, the same for every width).
    """
    widths = sorted(int(check_number("width", w, minimum=1, integer=True)) for w in widths)
    if len(set(widths)) < 2:
        raise ValueError(f"coord_check needs at least two different widths; got {widths}")
    steps = int(check_number("steps", steps, minimum=1, integer=True))
    if not callable(optimizer):
        check_choice("optimizer", optimizer, ("adam", "adamw", "sgd"))
    records: dict[str, list[list[float]]] = {}  # module -> [step][width index]
    order: list[str] = []
    losses: list[list[float]] = []
    readouts: set[str] = set()
    for wi, width in enumerate(widths):
        with seeded_global_rng(seed):
            model = factory(width)
        if not isinstance(model, nn.Module):
            raise TypeError(f"factory({width}) returned {type(model).__name__}, not nn.Module")
        opt = _optimizer(optimizer, model, width, lr)
        current: dict[str, float] = {}
        last_name: list[str | None] = [None]
        handles = _l1_hooks(model, current, last_name)
        width_losses = []
        target_now = target
        with seeded_global_rng(seed):
            for step in range(steps + 1):
                current.clear()
                output = main_output(call_model(model, example_input))
                if target_now is None and loss is None:
                    generator = make_generator(seed)
                    target_now = torch.randn(output.shape, generator=generator,
                                             dtype=output.dtype).to(output.device)  # fmt: skip
                if loss is not None:
                    value = loss(output)
                elif not target_now.is_floating_point():
                    value = nn.functional.cross_entropy(output.flatten(0, -2), target_now.flatten())
                else:
                    value = nn.functional.mse_loss(output, target_now)
                width_losses.append(float(value.detach()))
                for name, l1 in current.items():
                    if name not in records:
                        records[name] = [[math.nan] * len(widths) for _ in range(steps + 1)]
                        order.append(name)
                    records[name][step][wi] = l1
                if last_name[0] is not None:
                    readouts.add(last_name[0])
                if step == steps:
                    break
                opt.zero_grad(set_to_none=True)
                value.backward()
                opt.step()
        for h in handles:
            h.remove()
        losses.append(width_losses)
    rows = []
    for name in order:
        l1 = records[name]
        slope, at_init = _slope(widths, l1[-1]), _slope(widths, l1[0])
        verdict = ("stable" if not abs(slope) > SLOPE_TOLERANCE
                   else ("grows" if slope > 0 else "shrinks"))  # fmt: skip
        rows.append(CoordRow(name, l1, slope, at_init, verdict, name in readouts))
    verdict, advice = _verdict(rows, widths)
    return CoordCheck(widths=widths, steps=steps, rows=rows, verdict=verdict, advice=advice,
                      losses=losses)  # fmt: skip


def _verdict(rows: list[CoordRow], widths: list[int]) -> tuple[str, list[str]]:
    bad = [r for r in rows if r.verdict != "stable"]
    advice = []
    if widths[-1] < 4 * widths[0]:
        advice.append(f"widths span only x{widths[-1] / widths[0]:.3g}: use at least x4 "
                      "(e.g. 64..1024) to read slopes")  # fmt: skip
    if not bad:
        return (f"width-independent: every module's l1 slope is within +-{SLOPE_TOLERANCE:g} "
                f"over widths {widths[0]}..{widths[-1]}"), advice  # fmt: skip
    for r in bad:
        where = f"{r.module}: l1 {r.verdict} ~ width^{r.slope:.2f}"
        if r.readout and r.verdict == "grows":
            advice.append(f"{where} (readout): scale the readout by 1/width (init std "
                          "1/fan_in or zero, lr ~ 1/width: muP's MuReadout)")  # fmt: skip
        elif r.verdict == "grows" and r.slope_at_init > SLOPE_TOLERANCE:
            advice.append(f"{where}, already at init (width^{r.slope_at_init:.2f}): init std "
                          "too large, use std 1/sqrt(fan_in)")  # fmt: skip
        elif r.verdict == "grows":
            advice.append(f"{where} after training: updates too large for the width; with "
                          "Adam use lr ~ 1/fan_in for hidden weights (muP)")  # fmt: skip
        else:
            advice.append(f"{where}: this layer stops learning as width grows; check its "
                          "init std and learning-rate scaling")  # fmt: skip
    names = ", ".join(r.module for r in bad[:5]) + (" ..." if len(bad) > 5 else "")
    return f"not width-independent: {len(bad)} modules scale with width ({names})", advice
