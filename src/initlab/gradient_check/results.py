"""Result types of a gradient check: one tensor's check, one compared entry, the whole check.

``rel`` is the relative difference ``||g_num - g|| / (||g_num|| + ||g||)``; the verdict is
``correct`` below ``thresholds[0]`` (or at round-off level), ``bug`` above ``thresholds[1]``,
``look closer`` in between. A non-finite difference (a NaN or infinite loss, gradient or
finite difference) is ``not finite``, which never passes. ``inconclusive``: fast mode could
measure no direction of a tensor without moving a unit that sits exactly on a kink across
it (the loss has no derivative there to compare with); it passes, and says how many kinks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from initlab._core.table import format_table, format_value
from initlab._core.validation import unknown_name_error

VERDICTS = ("correct", "inconclusive", "look closer", "bug", "not finite")


@dataclass(frozen=True)
class TensorCheck:
    """The check of one parameter tensor (or input of a function), or of all of them together
    (the ``overall`` row). Every number is the one its verdict was decided on.

    ``checked``: entries (full/sample) or directions (fast) compared. ``rel``: relative
    difference (norm ratio in full/sample, median over directions in fast). ``max_diff``: the
    largest ``|g_num - g|`` over the compared entries (directional derivatives in fast).
    ``diff_atol``: the difference in units of the round-off level ``atol`` (fast: the median
    over directions of ``|g_num - g| / atol``, ``atol`` scaled to each direction's step;
    full/sample: ``||g_num - g|| / (atol sqrt(n))``); ``noise`` is ``diff_atol <= 1``, and
    then the verdict is ``correct``. ``step``: the step ``eps`` of the deciding measurement
    (smaller than the check's ``eps`` where a larger step did not agree, see the notes; fast
    mode shortens single directions to cross no kink: ``step`` is the smallest used).
    ``kinks``: fast mode, the units that the directions nobody could measure move across a
    kink at their first step (the fewest over them; 0 where every direction was measured);
    full/sample, the entries at a kink, compared with the range of the one-sided
    derivatives. ``left_out``: entries left out of fast mode's directions because they move
    a unit sitting on a kink.
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
    diff_atol: float = 0.0
    step: float = 0.0
    left_out: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "shape": list(self.shape),
            "checked": self.checked,
            "left_out": self.left_out,
            "kinks": self.kinks,
            "grad_norm": self.grad_norm,
            "step": self.step,
            "rel": self.rel,
            "max_diff": self.max_diff,
            "diff_atol": self.diff_atol,
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

    ``tensors``: one row per checked tensor; ``overall``: the row of all tensors together
    (fast mode: directions over all of them; else every compared entry at once). ``verdict``:
    the worst verdict over these rows (in the order of ``VERDICTS``), and :attr:`summary` is
    written from the same rows, so the text never disagrees with the table. ``passed``: no
    ``bug`` or ``not finite`` verdict (``look closer`` and ``inconclusive`` pass; use
    ``verdict == "correct"`` to be strict). ``worst``: the entries (directions) with the
    largest ``|g_num - g|``. ``evaluations``: loss evaluations used.
    """

    mode: str
    eps: float
    loss: float
    verdict: str
    tensors: list[TensorCheck]
    overall: TensorCheck
    worst: list[Entry]
    thresholds: tuple[float, float]
    atol: float
    evaluations: int
    seconds: float
    vectorized: bool
    notes: list[str] = field(default_factory=list)

    @property
    def rel(self) -> float:
        """The overall relative difference (fast mode: median over the joint directions)."""
        return self.overall.rel

    @property
    def passed(self) -> bool:
        return self.verdict in ("correct", "inconclusive", "look closer")

    @property
    def worst_tensor(self) -> str:
        """The tensor with the worst verdict (``inconclusive`` counts as ``correct``: nothing
        was measured), and among those the largest relative difference above noise."""
        above = [t for t in self.tensors if not t.noise] or self.tensors
        rank = {"correct": 0, "inconclusive": 0, "look closer": 1, "bug": 2, "not finite": 3}
        return max(above, key=lambda t: (rank[t.verdict], _nan_last(t.rel))).name

    def __getitem__(self, name: str) -> TensorCheck:
        for t in self.tensors:
            if t.name == name:
                return t
        raise unknown_name_error("tensor", name, [t.name for t in self.tensors])

    @property
    def summary(self) -> str:
        """The verdict in words, from the rows of the table (see the class docstring)."""
        low, high = self.thresholds
        rows = [*self.tensors, self.overall]
        bad = [t for t in rows if t.verdict == self.verdict]
        names = _listed([t.name for t in bad])
        if self.verdict == "correct":
            below = sum(t.rel < low for t in rows)
            smaller = sum(t.step < self.eps for t in rows)
            return (
                f"correct: in all {len(rows)} rows ({len(self.tensors)} tensors and overall) "
                f"the relative difference is below {format_value(low)} ({below} rows) or the "
                f"difference is at round-off level, |diff|/atol <= 1 ({len(rows) - below})"
                + (
                    f"; {smaller} measured at a smaller step (see the step column)"
                    if smaller
                    else ""
                )
            )
        worst = max(bad, key=lambda t: _nan_last(t.rel))
        if self.verdict == "not finite":
            return (
                f"not finite: a loss, gradient or finite difference in {names} is NaN or "
                "infinite, so nothing can be concluded (the step eps lost in the rounding of "
                "large weights, or a diverged model); see the notes"
            )
        if self.verdict == "bug":
            return (
                f"bug: relative difference {format_value(worst.rel)} > {format_value(high)} in "
                f"{names} (at step {format_value(worst.step)}); the back-propagated gradient "
                "there is almost surely wrong"
            )
        if self.verdict == "inconclusive":
            most = max(bad, key=lambda t: t.kinks)
            return (
                f"inconclusive at {most.kinks} kinks: no direction of {names} could be "
                "measured: each moves units sitting on a kink (ReLU, ReLU6, max-pool, ...) "
                f"across it ({most.kinks} in {most.name} at step {format_value(most.step)}), "
                "and no step small enough to cross none leaves the derivative clear of "
                "round-off; there the loss has no derivative to compare with. The other rows "
                "are correct"
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
            f"look closer: relative difference {format_value(worst.rel)} above "
            f"{format_value(low)} in {names}; {why}"
        )

    def __str__(self) -> str:
        unit = "directions" if self.mode == "fast" else "entries"
        checked = sum(t.checked for t in self.tensors)
        head = (
            f"gradcheck ({self.mode}, eps={format_value(self.eps)}): {checked} {unit} in "
            f"{len(self.tensors)} tensors, {self.evaluations} loss evaluations, "
            f"{self.seconds:.3g} s{' (vmap)' if self.vectorized else ''}; loss {self.loss:.6g}; "
            f"round-off level atol {format_value(self.atol)} at eps"
        )
        low = self.thresholds[0]

        def shown(t: TensorCheck) -> str:
            return "correct (round-off)" if t.noise and not t.rel < low else t.verdict

        rows: list[tuple[Any, ...]] = [
            (t.name, t.shape, t.checked, t.left_out, t.kinks, t.grad_norm, t.step, t.rel,
             t.diff_atol, shown(t))
            for t in self.tensors
        ]  # fmt: skip
        o = self.overall
        rows.append(("overall", "", o.checked, o.left_out, o.kinks, "", o.step, o.rel,
                     o.diff_atol, shown(o)))  # fmt: skip
        table = format_table(
            ["tensor", "shape", "checked", "left out", "kinks", "|grad|", "step", "rel diff",
             "|diff|/atol", "verdict"],
            rows,
        )  # fmt: skip
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
            "overall_noise": self.overall.noise,
            "overall_verdict": self.overall.verdict,
            "verdict": self.verdict,
            "passed": self.passed,
            "worst_tensor": self.worst_tensor,
            "summary": self.summary,
            "tensors": [t.to_dict() for t in self.tensors],
            "overall": self.overall.to_dict(),
            "worst": [e.to_dict() for e in self.worst],
            "thresholds": list(self.thresholds),
            "atol": self.atol,
            "evaluations": self.evaluations,
            "seconds": self.seconds,
            "vectorized": self.vectorized,
            "notes": list(self.notes),
        }


def _listed(names: list[str], most: int = 4) -> str:
    shown = ", ".join(names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


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
