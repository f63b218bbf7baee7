"""The course's gradient check for backprop written by hand in NumPy.

A learner has a forward pass that returns the cost and a backward pass that returns ``dW1, db1,
...``. :func:`gradient_check` does exactly what the course's ``gradient_check_n`` does:

1. flatten the parameters into one column vector ``theta`` (``W1, b1, W2, b2, ...``, each
   array row by row) and the gradients into ``grad`` in the same order;
2. for every entry ``i``: ``gradapprox[i] = (J(theta + eps e_i) - J(theta - eps e_i)) / (2
   eps)``, each ``J`` a call of the learner's cost on the unflattened vector;
3. ``difference = ||grad - gradapprox||_2 / (||grad||_2 + ||gradapprox||_2)``, correct below
   ``threshold`` (``1e-7``).

so ``.difference`` is the number the notebook prints, to the last digit. On top of it: the
same difference per parameter (which of ``W1, b1, ...`` is wrong: "look at the components to
find the bug"), the worst entries, and two safeguards.

* **Round-off is not a bug.** The cost is computed in float64 but often with cancellations
  (``-log(1 - A3)`` with ``A3`` near 1), and dividing its round-off by ``2 eps`` can lift a
  correct gradient's difference above ``1e-7``: the course's own fixed 3-layer network gives
  ``1.19e-7``. When a difference is above the threshold the check is repeated with a step 100
  times larger: round-off then shrinks 100-fold (truncation error ``eps^2 J''' / 6`` stays
  far below), while a wrong backward pass gives the same difference at any step. A difference
  that falls below the threshold at the larger step is round-off, and the verdict says so.
* **Nothing non-finite passes.** A NaN or infinite cost, gradient, numeric gradient or
  difference is never correct.

A cost that changes between two calls at the same parameters (dropout left on, a random mini
batch) is refused: switch dropout off (``keep_prob = 1``) for the check.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from initlab._core.table import format_table, format_value
from initlab._core.validation import check_number
from initlab.gradient_check.course_vectors import (
    course_cost,
    dictionary_to_vector,
    gradients_to_vector,
    parameter_order,
    vector_to_dictionary,
)

__all__ = ["CourseEntry", "CourseGradientCheck", "ParameterDifference", "gradient_check"]

CONFIRM_FACTOR = 100.0  # the larger step that tells round-off from a bug


@dataclass(frozen=True)
class ParameterDifference:
    """The course's difference restricted to one parameter's entries.

    ``difference`` at ``epsilon``; ``confirmed``: the difference at ``100 epsilon`` (only
    computed when ``difference`` is not below the threshold); ``correct``: below the threshold
    at either step, and finite.
    """

    name: str
    shape: tuple[int, ...]
    difference: float
    max_diff: float
    grad_norm: float
    confirmed: float | None
    correct: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "shape": list(self.shape),
            "difference": self.difference,
            "max_diff": self.max_diff,
            "grad_norm": self.grad_norm,
            "confirmed": self.confirmed,
            "correct": self.correct,
        }


@dataclass(frozen=True)
class CourseEntry:
    """One entry of ``theta``: parameter, index inside it, ``grad`` and ``gradapprox``."""

    parameter: str
    index: tuple[int, ...]
    grad: float
    gradapprox: float

    @property
    def diff(self) -> float:
        return abs(self.grad - self.gradapprox)

    def to_dict(self) -> dict[str, Any]:
        return {
            "parameter": self.parameter,
            "index": list(self.index),
            "grad": self.grad,
            "gradapprox": self.gradapprox,
            "diff": self.diff,
        }


@dataclass(frozen=True)
class CourseGradientCheck:
    """The result of :func:`gradient_check`.

    ``difference``: the course's number. ``correct``: the verdict (every difference finite, and
    below ``threshold`` overall and per parameter, at ``epsilon`` or, for round-off, at ``100
    epsilon``). ``parameters``: per-parameter differences in the course's order. ``wrong``:
    names of the parameters that are not correct. ``grad`` / ``gradapprox``: the two column
    vectors. ``worst``: the entries with the largest ``|grad - gradapprox|``.
    """

    difference: float
    correct: bool
    epsilon: float
    threshold: float
    cost: float
    parameters: list[ParameterDifference]
    worst: list[CourseEntry]
    grad: np.ndarray = field(repr=False)
    gradapprox: np.ndarray = field(repr=False)
    confirmed: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def wrong(self) -> list[str]:
        return [p.name for p in self.parameters if not p.correct]

    def __getitem__(self, name: str) -> ParameterDifference:
        for p in self.parameters:
            if p.name == name:
                return p
        raise KeyError(f"no parameter {name!r}; parameters: {[p.name for p in self.parameters]}")

    @property
    def message(self) -> str:
        """The course's one-line message."""
        if self.correct:
            return f"Your backward propagation works perfectly fine! difference = {self.difference}"
        return f"There is a mistake in the backward propagation! difference = {self.difference}"

    def __str__(self) -> str:
        rows = [
            (p.name, p.shape, p.grad_norm, p.difference, p.max_diff,
             "" if p.confirmed is None else p.confirmed, "correct" if p.correct else "WRONG")
            for p in self.parameters
        ]  # fmt: skip
        table = format_table(
            ["parameter", "shape", "||grad||", "difference", "max |diff|",
             f"at eps x{CONFIRM_FACTOR:g}", "verdict"],
            rows,
        )  # fmt: skip
        worst = format_table(
            ["parameter", "index", "grad", "gradapprox", "|diff|"],
            [(e.parameter, e.index, e.grad, e.gradapprox, e.diff) for e in self.worst],
        )
        entries = self.grad.shape[0]
        head = (
            f"gradient check (two-sided differences, epsilon {format_value(self.epsilon)}, "
            f"{entries} entries, threshold {format_value(self.threshold)}); cost {self.cost!r}"
        )
        parts = [self.message, head, table, "", "worst entries:", worst]
        parts += [f"note: {n}" for n in self.notes]
        if self.wrong:
            parts.append(
                f"look at the components: the backward pass is wrong for {', '.join(self.wrong)}"
            )
        return "\n".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "difference": self.difference,
            "correct": self.correct,
            "message": self.message,
            "epsilon": self.epsilon,
            "threshold": self.threshold,
            "cost": self.cost,
            "confirmed": self.confirmed,
            "wrong": self.wrong,
            "parameters": [p.to_dict() for p in self.parameters],
            "worst": [e.to_dict() for e in self.worst],
            "notes": list(self.notes),
        }


def _difference(grad: np.ndarray, approx: np.ndarray) -> float:
    """``||grad - approx|| / (||grad|| + ||approx||)`` as the course computes it (0 when both
    are exactly zero; NaN when anything is not finite)."""
    with np.errstate(all="ignore"):
        numerator = np.linalg.norm(grad - approx)
        denominator = np.linalg.norm(grad) + np.linalg.norm(approx)
        if denominator == 0 and numerator == 0:
            return 0.0
        return float(numerator / denominator)


def _gradapprox(
    cost: Callable[[np.ndarray], float], theta: np.ndarray, epsilon: float
) -> np.ndarray:
    """The course's loop: ``(J(theta + eps e_i) - J(theta - eps e_i)) / (2 eps)`` for every
    entry ``i``, with ``theta_plus[i] = theta_plus[i] + epsilon`` as the notebook writes it."""
    count = theta.shape[0]
    j_plus, j_minus = np.zeros((count, 1)), np.zeros((count, 1))
    approx = np.zeros((count, 1))
    for i in range(count):
        theta_plus = np.copy(theta)
        theta_plus[i] = theta_plus[i] + epsilon
        j_plus[i] = cost(theta_plus)
        theta_minus = np.copy(theta)
        theta_minus[i] = theta_minus[i] - epsilon
        j_minus[i] = cost(theta_minus)
        with np.errstate(all="ignore"):
            approx[i] = (j_plus[i] - j_minus[i]) / (2 * epsilon)
    return approx


def _checked_options(epsilon: float, threshold: float, worst: int) -> tuple[float, float, int]:
    epsilon = float(check_number("epsilon", epsilon, minimum=0.0, strict_minimum=True))
    threshold = float(check_number("threshold", threshold, minimum=0.0, strict_minimum=True))
    worst = int(check_number("worst", worst, minimum=0, integer=True))
    if epsilon * CONFIRM_FACTOR > 1.0 or epsilon < 1e-300:
        raise ValueError(
            f"epsilon must be between 1e-300 and {1 / CONFIRM_FACTOR:g} (a step of "
            f"{epsilon!r} is lost in round-off or is no derivative); got {epsilon!r}"
        )
    return epsilon, threshold, worst


def _deterministic(cost_of: Callable[[np.ndarray], float], theta: np.ndarray) -> float:
    """The cost at ``theta``, refused if a second call gives another value (dropout on)."""
    here, again = cost_of(theta), cost_of(theta)
    same = here == again or (math.isnan(here) and math.isnan(again))
    if not same and not abs(here - again) <= 1e-12 * max(1.0, abs(here)):
        raise ValueError(
            f"the cost is not deterministic: {here!r} then {again!r} at the same parameters. "
            "Dropout (or another random step) is on: a gradient check needs the same cost "
            "every time; switch dropout off for the check (keep_prob = 1)"
        )
    return here


def gradient_check(
    cost: Callable[[dict[str, np.ndarray]], Any],
    parameters: Mapping[str, Any],
    gradients: Mapping[str, Any],
    *,
    epsilon: float = 1e-7,
    threshold: float = 1e-7,
    worst: int = 5,
) -> CourseGradientCheck:
    """Check a hand-written NumPy backward pass the way the course does.

    ``cost(parameters)`` is the learner's forward pass with the data bound in (it may return
    ``(cost, cache)``, as the course's ``forward_propagation_n`` does); ``parameters`` the dict
    of arrays ``{"W1": ..., "b1": ...}``; ``gradients`` what the backward pass returned
    (``dW1``/``db1`` keys or the parameters' own names; extra entries such as ``dZ1`` are
    ignored). ``.difference`` is ``||grad - gradapprox|| / (||grad|| + ||gradapprox||)`` over
    every entry in the course's order, with two-sided differences of step ``epsilon``; the
    module docstring says how the verdict ``.correct`` tells round-off from bugs.

    >>> import numpy as np
    >>> x = 2.0
    >>> check = gradient_check(lambda p: p["theta"] * x, {"theta": 4.0}, {"dtheta": x})
    >>> check.difference < 1e-7, check.correct
    (True, True)
    """
    if not callable(cost):
        raise TypeError(
            f"cost must be a function cost(parameters) -> number; got {type(cost).__name__}"
        )
    epsilon, threshold, worst = _checked_options(epsilon, threshold, worst)
    order = parameter_order(parameters)
    shapes = {k: np.shape(parameters[k]) for k in order}
    theta, keys = dictionary_to_vector(parameters)
    grad = gradients_to_vector(gradients, parameters)

    def cost_of(vector: np.ndarray) -> float:
        return course_cost(cost(vector_to_dictionary(vector, shapes)))

    here = _deterministic(cost_of, theta)
    approx = _gradapprox(cost_of, theta, epsilon)
    difference = _difference(grad, approx)
    spans = _spans(order, shapes)
    per = {k: _difference(grad[a:b], approx[a:b]) for k, (a, b) in spans.items()}
    notes: list[str] = []
    finite = bool(
        math.isfinite(here) and np.isfinite(grad).all() and np.isfinite(approx).all()
    ) and math.isfinite(difference)
    confirmed, per_confirmed = None, dict.fromkeys(order)
    if finite and (difference >= threshold or any(d >= threshold for d in per.values())):
        bigger = epsilon * CONFIRM_FACTOR
        approx2 = _gradapprox(cost_of, theta, bigger)
        confirmed = _difference(grad, approx2)
        per_confirmed = {
            k: _difference(grad[a:b], approx2[a:b]) if per[k] >= threshold else None
            for k, (a, b) in spans.items()
        }
        if difference >= threshold and confirmed < threshold:
            notes.append(
                f"the difference {difference:.3g} at epsilon {epsilon:g} is round-off of the "
                f"cost: at epsilon {bigger:g} it is {confirmed:.3g} (a wrong backward pass "
                "gives the same difference at any step)"
            )
    if not finite:
        notes.append(_not_finite(here, grad, approx))

    def ok(value: float, second: float | None) -> bool:
        return finite and (value < threshold or (second is not None and second < threshold))

    rows = [
        ParameterDifference(
            name=k, shape=tuple(shapes[k]), difference=per[k],
            max_diff=_max_diff(grad[a:b], approx[a:b]),
            grad_norm=float(np.linalg.norm(grad[a:b])), confirmed=per_confirmed[k],
            correct=ok(per[k], per_confirmed[k]),
        )
        for k, (a, b) in spans.items()
    ]  # fmt: skip
    correct = ok(difference, confirmed) and all(r.correct for r in rows)
    if ok(difference, confirmed) and not correct:
        notes.append(
            "the overall difference is small, but not for every parameter: a bug in a "
            "parameter with a small gradient hides in the overall number"
        )
    return CourseGradientCheck(
        difference=difference, correct=correct, epsilon=epsilon, threshold=threshold,
        cost=here, parameters=rows, worst=_worst(grad, approx, keys, spans, shapes, worst),
        grad=grad, gradapprox=approx, confirmed=confirmed, notes=notes,
    )  # fmt: skip


def _max_diff(grad: np.ndarray, approx: np.ndarray) -> float:
    with np.errstate(all="ignore"):
        return float(np.max(np.abs(grad - approx)))


def _spans(order: list[str], shapes: Mapping[str, tuple[int, ...]]) -> dict[str, tuple[int, int]]:
    spans, start = {}, 0
    for key in order:
        size = int(np.prod(shapes[key], dtype=np.int64))
        spans[key] = (start, start + size)
        start += size
    return spans


def _worst(
    grad: np.ndarray,
    approx: np.ndarray,
    keys: list[str],
    spans: Mapping[str, tuple[int, int]],
    shapes: Mapping[str, tuple[int, ...]],
    count: int,
) -> list[CourseEntry]:
    with np.errstate(all="ignore"):
        diff = np.abs(grad - approx).reshape(-1)
    diff = np.where(np.isnan(diff), np.inf, diff)  # non-finite entries first
    out = []
    for i in np.argsort(-diff, kind="stable")[:count]:
        key = keys[int(i)]
        local = int(i) - spans[key][0]
        index = tuple(int(j) for j in np.unravel_index(local, shapes[key])) if shapes[key] else ()
        out.append(CourseEntry(key, index, float(grad[i, 0]), float(approx[i, 0])))
    return out


def _not_finite(cost: float, grad: np.ndarray, approx: np.ndarray) -> str:
    parts = []
    if not math.isfinite(cost):
        parts.append(f"the cost is {cost}")
    if not np.isfinite(grad).all():
        parts.append(f"{int((~np.isfinite(grad)).sum())} gradient entries are not finite")
    if not np.isfinite(approx).all():
        parts.append(f"{int((~np.isfinite(approx)).sum())} numeric gradient entries are not finite")
    what = "; ".join(parts) or "the difference is not finite"
    return (
        f"{what}: a check with NaN or infinity never passes (overflow in exp or log(0)? a "
        "learning rate so large that training diverged?)"
    )
