"""Result types of a gradient check: one tensor's check, one compared entry, the whole check.

``rel`` is the relative difference ``||g_num - g|| / (||g_num|| + ||g||)``; the verdict is
``correct`` below ``thresholds[0]`` (or at round-off level), ``bug`` above ``thresholds[1]``,
``look closer`` in between. A non-finite difference (a NaN or infinite loss, gradient or
finite difference) is ``not finite``, which never passes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from initlab._core.table import format_table, format_value
from initlab._core.validation import unknown_name_error

VERDICTS = ("correct", "look closer", "bug", "not finite")


@dataclass(frozen=True)
class TensorCheck:
    """The check of one parameter tensor (or input of a function).

    ``checked``: entries (full/sample) or directions (fast) compared. ``rel``: relative
    difference (norm ratio in full/sample, median over directions in fast). ``max_diff``: the
    largest ``|g_num - g|`` over the checked entries (directional derivatives in fast).
    ``noise``: the difference is at the level of round-off (then the verdict is ``correct``).
    ``kinks``: entries (directions) at a kink, compared with the one-sided range.
    """

    name: str
    shape: tuple[int, ...]
    checked: int
    grad_norm: float
    rel: float
    max_diff: float
    noise: bool
    verdict: str
    kinks: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "kinks": self.kinks,
            "name": self.name,
            "shape": list(self.shape),
            "checked": self.checked,
            "grad_norm": self.grad_norm,
            "rel": self.rel,
            "max_diff": self.max_diff,
            "noise": self.noise,
            "verdict": self.verdict,
        }


@dataclass(frozen=True)
class Entry:
    """One compared derivative: an entry ``index`` of ``tensor`` (full/sample) or the
    derivative along random direction number ``direction`` (fast). ``numeric``: the value
    compared with (at a ``kink``, the point of the one-sided range closest to ``analytic``)."""

    tensor: str
    index: tuple[int, ...] | None
    direction: int | None
    analytic: float
    numeric: float
    kink: bool = False

    @property
    def diff(self) -> float:
        return abs(self.numeric - self.analytic)

    @property
    def rel(self) -> float:
        scale = abs(self.numeric) + abs(self.analytic)
        if not math.isfinite(scale):
            return math.nan
        return self.diff / scale if scale > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "tensor": self.tensor,
            "index": None if self.index is None else list(self.index),
            "direction": self.direction,
            "analytic": self.analytic,
            "numeric": self.numeric,
            "kink": self.kink,
            "diff": self.diff,
            "rel": self.rel,
        }


@dataclass(frozen=True)
class GradCheck:
    """The result of :func:`gradcheck` / :func:`gradcheck_function`.

    ``rel``: overall relative difference ``||g_num - g|| / (||g_num|| + ||g||)`` (fast mode:
    median over the joint directions). ``verdict``: the worst of the overall and per-tensor
    verdicts. ``passed``: no ``bug`` or ``not finite`` verdict (``look closer`` passes; use
    ``verdict == "correct"`` to be strict). ``worst``: the entries (directions) with the largest
    ``|g_num - g|``. ``evaluations``: loss evaluations used.
    """

    mode: str
    eps: float
    loss: float
    rel: float
    overall_noise: bool
    verdict: str
    tensors: list[TensorCheck]
    worst: list[Entry]
    thresholds: tuple[float, float]
    atol: float
    evaluations: int
    seconds: float
    vectorized: bool
    notes: list[str] = field(default_factory=list)
    overall_verdict: str = ""  # the joint comparison's own verdict (empty: from rel)

    @property
    def passed(self) -> bool:
        return self.verdict in ("correct", "look closer")

    @property
    def worst_tensor(self) -> str:
        """The tensor with the largest relative difference among those above noise."""
        above = [t for t in self.tensors if not t.noise] or self.tensors
        return max(above, key=lambda t: _nan_last(t.rel)).name

    def __getitem__(self, name: str) -> TensorCheck:
        for t in self.tensors:
            if t.name == name:
                return t
        raise unknown_name_error("tensor", name, [t.name for t in self.tensors])

    @property
    def summary(self) -> str:
        low, high = self.thresholds
        if self.verdict == "correct":
            return (
                f"correct: relative differences below {format_value(low)} (or at round-off "
                f"level) everywhere"
            )
        bad = [t for t in self.tensors if t.verdict == self.verdict]
        names = ", ".join(t.name for t in bad) or "overall"
        worst = max([t.rel for t in bad] + [self.rel if not bad else 0.0], key=_nan_last)
        if self.verdict == "not finite":
            return (
                f"not finite: a loss, gradient or finite difference in {names} is NaN or "
                "infinite, so nothing can be concluded (the step eps lost in the rounding of "
                "large weights, or a diverged model); see the notes"
            )
        if self.verdict == "bug":
            return (
                f"bug: relative difference {format_value(worst)} > {format_value(high)} in "
                f"{names}; the back-propagated gradient there is almost surely wrong"
            )
        if any("shrinks with the step" in n for n in self.notes):
            why = (
                "it shrinks as the step shrinks (curvature or kinks, see the notes), which a "
                "wrong backward pass would not do"
            )
        else:
            why = (
                "a kink (ReLU, max) crossed by the step, or too large an eps, gives this "
                "too: retry with another eps or seed"
            )
        return (
            f"look closer: relative difference {format_value(worst)} above "
            f"{format_value(low)} in {names}; {why}"
        )

    def __str__(self) -> str:
        unit = "directions" if self.mode == "fast" else "entries"
        checked = sum(t.checked for t in self.tensors)
        head = (
            f"gradcheck ({self.mode}, eps={format_value(self.eps)}): {checked} {unit} in "
            f"{len(self.tensors)} tensors, {self.evaluations} loss evaluations, "
            f"{self.seconds:.3g} s{' (vmap)' if self.vectorized else ''}; loss {self.loss:.6g}"
        )
        low = self.thresholds[0]

        def shown(verdict: str, rel: float, noise: bool) -> str:
            return "correct (round-off)" if noise and not rel < low else verdict

        rows: list[tuple[Any, ...]] = [
            (t.name, t.shape, t.checked, t.kinks, t.grad_norm, t.rel, t.max_diff,
             shown(t.verdict, t.rel, t.noise))
            for t in self.tensors
        ]  # fmt: skip
        overall = self.overall_verdict or _verdict(self.rel, self.overall_noise, self.thresholds)
        rows.append(("overall", "", "", "", "", self.rel, "",
                     shown(overall, self.rel, self.overall_noise)))  # fmt: skip
        table = format_table(
            ["tensor", "shape", "checked", "kinks", "|grad|", "rel diff", "max |diff|", "verdict"],
            rows,
        )
        where = "direction" if self.mode == "fast" else "index"
        worst = format_table(
            ["tensor", where, "analytic", "numeric", "|diff|", "rel", "kink"],
            [
                (e.tensor, e.direction if e.index is None else e.index, e.analytic, e.numeric,
                 e.diff, e.rel, "yes" if e.kink else "")
                for e in self.worst
            ],
        )  # fmt: skip
        parts = [head, table, "", f"worst {unit}:", worst, ""]
        parts += [f"note: {n}" for n in self.notes]
        parts.append(f"verdict: {self.summary}")
        return "\n".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "eps": self.eps,
            "loss": self.loss,
            "rel": self.rel,
            "overall_noise": self.overall_noise,
            "verdict": self.verdict,
            "passed": self.passed,
            "worst_tensor": self.worst_tensor,
            "summary": self.summary,
            "tensors": [t.to_dict() for t in self.tensors],
            "worst": [e.to_dict() for e in self.worst],
            "thresholds": list(self.thresholds),
            "atol": self.atol,
            "evaluations": self.evaluations,
            "seconds": self.seconds,
            "vectorized": self.vectorized,
            "notes": list(self.notes),
            "overall_verdict": self.overall_verdict,
        }


def _verdict(rel: float, noise: bool, thresholds: tuple[float, float]) -> str:
    """``correct`` / ``look closer`` / ``bug`` by the thresholds; a NaN difference (something
    was not finite) is ``not finite``, which never passes."""
    if math.isnan(rel):
        return "not finite"
    if noise or rel < thresholds[0]:
        return "correct"
    return "bug" if rel > thresholds[1] else "look closer"


def _nan_last(value: float) -> tuple[bool, float]:
    return (math.isnan(value), 0.0 if math.isnan(value) else value)
