"""Plots (matplotlib, PNG) and self-contained HTML reports.

Kept light: submodules import matplotlib only when a plot is drawn.

- :mod:`initlab.report.plots`: loss curves, decision boundaries, gradient norms, and the
  activation rms / gradient norm per layer over training of a monitored comparison.
- :func:`write_report`: a comparison's PNG plots and ``report.html`` (images embedded as
  base64, readable offline).
"""

from __future__ import annotations

from typing import Any


def write_report(comparison: Any, out: str) -> list[str]:
    """Write the plots and ``report.html`` of a :class:`~initlab.experiments.Comparison`."""
    from initlab.report.compare import write_report as _write

    return _write(comparison, out)


__all__ = ["write_report"]
