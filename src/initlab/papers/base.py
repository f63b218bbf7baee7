"""Result types of a reproduction, and ``reproduce(name)``.

A :class:`Reproduction` holds what a paper module measured: the figure as panels of series
(drawn by :mod:`initlab.report.papers`), the checks against the paper's claim, and the
setting. Its ``verdict`` is ``"reproduced"`` when every check passed.
"""

from __future__ import annotations

import contextlib
import importlib
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from initlab._core.table import format_table
from initlab._core.threads import few_threads
from initlab._core.validation import unknown_name_error
from initlab.papers.catalog import PAPERS, PaperInfo


@dataclass
class Series:
    """One line of a panel: ``y`` against ``x`` (a band from ``low`` to ``high`` if given)."""

    label: str
    x: list[float]
    y: list[float]
    low: list[float] | None = None
    high: list[float] | None = None


@dataclass
class Panel:
    """One axis of the figure. ``kind="line"`` draws the series; ``"heatmap"`` draws ``z``
    (rows follow ``y_ticks``, columns ``x_ticks``) with ``series`` drawn on top."""

    title: str
    xlabel: str
    ylabel: str
    series: list[Series] = field(default_factory=list)
    kind: Literal["line", "heatmap"] = "line"
    logx: bool = False
    logy: bool = False
    z: list[list[float]] | None = None
    x_ticks: list[float] | None = None
    y_ticks: list[float] | None = None
    zlabel: str = ""


@dataclass
class Check:
    """One measured number against the paper's claim."""

    name: str
    measured: float
    expected: str  # the condition, in words and numbers ("< 2.0", "within 10% of 1.0")
    passed: bool

    def to_dict(self) -> dict[str, Any]:
        value = self.measured if math.isfinite(self.measured) else str(self.measured)
        return {
            "name": self.name,
            "measured": value,
            "expected": self.expected,
            "passed": self.passed,
        }


@dataclass
class Reproduction:
    """What one paper's run measured, and whether it reproduces the claim."""

    paper: PaperInfo
    quick: bool
    setting: dict[str, Any]
    checks: list[Check]
    panels: list[Panel]
    notes: str = ""  # where the setting differs from the paper, and why
    seconds: float = 0.0

    @property
    def verdict(self) -> str:
        passed = bool(self.checks) and all(c.passed for c in self.checks)
        return "reproduced" if passed else "not reproduced"

    def __str__(self) -> str:
        head = (
            f"{self.paper.name}: {self.paper.title} ({self.paper.citation})\n"
            f"claim: {self.paper.claim}\n"
            f"setting ({'quick' if self.quick else 'full'}): "
            + ", ".join(f"{k}={v}" for k, v in self.setting.items())
        )
        rows = [
            (c.name, _fmt(c.measured), c.expected, "pass" if c.passed else "FAIL")
            for c in self.checks
        ]
        table = format_table(["check", "measured", "expected", "result"], rows)
        return f"{head}\n{table}\nverdict: {self.verdict} ({self.seconds:.1f} s)"

    def to_dict(self) -> dict[str, Any]:
        return {
            "paper": asdict(self.paper),
            "quick": self.quick,
            "setting": self.setting,
            "checks": [c.to_dict() for c in self.checks],
            "verdict": self.verdict,
            "notes": self.notes,
            "seconds": self.seconds,
            "panels": [asdict(p) for p in self.panels],
        }


def _fmt(value: float) -> str:
    if not math.isfinite(value):
        return str(value)
    return f"{value:.4g}"


def check(name: str, measured: float, expected: str, passed: bool) -> Check:
    """A :class:`Check`; a non-finite measurement never passes."""
    measured = float(measured)
    return Check(name, measured, expected, bool(passed) and math.isfinite(measured))


@contextlib.contextmanager
def flushed_denormals() -> Iterator[None]:
    """Flush subnormal floats to zero while the block runs, then turn flushing off again.

    Vanishing signals (a 30-layer Xavier ReLU net) produce subnormals, about 10x slower on
    CPUs. torch has no getter for this flag: on exit it is set back to off, its default.
    """
    torch = importlib.import_module("torch")
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


def reproduce(name: str, quick: bool = False) -> Reproduction:
    """Run paper ``name`` (see ``initlab reproduce --list``) and return its :class:`Reproduction`.

    ``quick=True`` runs a smaller setting (under a minute on 2 CPU cores); the full setting
    runs in under 15 minutes. Nothing is written: :func:`initlab.report.papers.write_reproduction`
    writes the figure, the JSON and the HTML page.
    """
    if name not in PAPERS:
        raise unknown_name_error("paper", name, sorted(PAPERS))
    module = importlib.import_module(f"initlab.papers.{name}")
    start = time.perf_counter()
    # The networks are small: one intra-op thread avoids thread start-up on every tiny op.
    with flushed_denormals(), few_threads(1):
        result: Reproduction = module.run(quick=bool(quick))
    result.seconds = time.perf_counter() - start
    return result


def names(selection: str | Sequence[str]) -> list[str]:
    """``"all"`` or a name or a list of names -> the paper names, validated."""
    chosen = (
        sorted(PAPERS)
        if selection == "all"
        else ([selection] if isinstance(selection, str) else list(selection))
    )
    for name in chosen:
        if name not in PAPERS:
            raise unknown_name_error("paper", name, [*sorted(PAPERS), "all"])
    return chosen
