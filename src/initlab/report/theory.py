"""Plots for the theory-driven tools: LSUV, the edge of chaos, the coordinate check, signal
propagation plots (SPP) and the Jacobian spectrum.

Each ``plot_*`` function takes the result object and a path, draws with matplotlib's Agg canvas
(no pyplot state) and writes the PNG atomically; it returns the path.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from initlab._core.files import atomic_write
from initlab.report.plots import _figure, _png


def _write(fig: Any, path: str | os.PathLike[str]) -> Path:
    target = Path(path)
    if not target.parent.exists():
        raise FileNotFoundError(f"directory {str(target.parent)!r} does not exist (for {path})")
    atomic_write(target, _png(fig))
    return target


def _positive(values: Sequence[float]) -> list[float]:
    return [v if v > 0 and math.isfinite(v) else math.nan for v in values]


def plot_lsuv(report: Any, path: str | os.PathLike[str]) -> Path:
    """Each layer's output std before and after :func:`initlab.lsuv`, in execution order
    (branch rows: std(branch)/std(skip) against its 1/sqrt(L) target)."""
    fig = _figure(max(6.0, 0.3 * len(report.rows) + 2), 3.6)
    ax = fig.add_subplot(1, 1, 1)
    x = [r.order for r in report.rows]
    ax.semilogy(x, _positive([r.std_before for r in report.rows]), "o-", label="before")
    ax.semilogy(x, _positive([r.std_after for r in report.rows]), "s-", label="after")
    ax.semilogy(x, [r.target for r in report.rows], "k--", lw=0.8, label="target")
    ax.set_xticks(x)
    ax.set_xticklabels(
        [r.name + (" *" if r.kind == "branch" else "") for r in report.rows],
        rotation=90,
        fontsize=7,
    )
    ax.set_ylabel("output std (* branch/skip)")
    ax.set_title(f"LSUV: {len(report.rows)} layers, {report.passes} forward passes")
    ax.legend()
    return _write(fig, path)


def plot_edge_of_chaos(
    activation: str,
    path: str | os.PathLike[str],
    *,
    sigma_b2_values: Sequence[float] = (0.0, 0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3),
    sigma_b2: float = 0.05,
    sigma_w2_values: Sequence[float] | None = None,
) -> Path:
    """Left: the critical line sigma_w^2(sigma_b^2). Right: trainable depth 6 xi_c against
    sigma_w^2 at ``sigma_b2`` (log scale; it diverges at the critical point)."""
    from initlab.initializers.critical import edge_of_chaos, mean_field

    line = edge_of_chaos(activation, sigma_b2_values)
    if sigma_w2_values is None:
        sigma_w2_values = [1.0 + 0.1 * i for i in range(31)]
    depths = [mean_field(activation, w, sigma_b2).max_depth for w in sigma_w2_values]
    fig = _figure(10, 3.6)
    left, right = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    left.plot([c.sigma_b2 for c in line], [c.sigma_w2 for c in line], "o-")
    left.set_xlabel("sigma_b^2")
    left.set_ylabel("critical sigma_w^2")
    left.set_title(f"edge of chaos ({activation}): ordered below, chaotic above")
    right.semilogy(list(sigma_w2_values), _positive(depths), "-")
    right.set_xlabel("sigma_w^2")
    right.set_ylabel("trainable depth ~ 6 xi_c")
    right.set_title(f"{activation}, sigma_b^2 = {sigma_b2:g}")
    return _write(fig, path)


def plot_coord_check(result: Any, path: str | os.PathLike[str]) -> Path:
    """Write :func:`_coord_check_figure` as a PNG to ``path`` (atomically)."""
    return _write(_coord_check_figure(result), path)


def _coord_check_figure(result: Any) -> Any:
    """muP's plot: l1 of each module's output against width (log-log), at init and after the
    last step; flagged modules drawn solid, stable ones dotted."""
    fig = _figure(10, 4)
    for panel, step in enumerate((0, result.steps)):
        ax = fig.add_subplot(1, 2, panel + 1)
        for row in result.rows:
            style = "-" if row.verdict != "stable" else ":"
            label = row.module + (" (readout)" if row.readout else "")
            ax.loglog(
                result.widths,
                _positive(row.l1[step]),
                style,
                marker="o",
                ms=3,
                label=label if row.verdict != "stable" or len(result.rows) <= 12 else None,
            )
        ax.set_xscale("log", base=2)
        ax.set_xlabel("width")
        ax.set_ylabel("l1 = mean |output|")
        ax.set_title(f"t = {step}")
    ax.legend(fontsize=7)
    fig.suptitle(result.verdict[:110])
    return fig


def plot_spp(result: Any, path: str | os.PathLike[str]) -> Path:
    """Write :func:`_spp_figure` as a PNG to ``path`` (atomically)."""
    return _write(_spp_figure(result), path)


def _spp_figure(result: Any) -> Any:
    """NF-ResNet SPP: average channel squared mean, average channel variance and residual
    branch variance against block index."""
    fig = _figure(12, 3.4)
    x = [b.index for b in result.blocks]
    for i, (attr, title) in enumerate(
        (
            ("avg_sq_channel_mean", "average channel squared mean"),
            ("avg_channel_var", "average channel variance"),
            ("residual_var", "residual branch variance"),
        )
    ):
        ax = fig.add_subplot(1, 3, i + 1)
        ax.plot(x, [getattr(b, attr) for b in result.blocks], "o-")
        ax.set_xlabel("residual block")
        ax.set_title(title)
    fig.suptitle(result.verdict[:120], fontsize=9)
    return fig


def plot_jacobian(spectrum: Any, path: str | os.PathLike[str]) -> Path:
    """Write :func:`_jacobian_figure` as a PNG to ``path`` (atomically)."""
    return _write(_jacobian_figure(spectrum), path)


def _jacobian_figure(spectrum: Any) -> Any:
    """Estimated density of the Jacobian's singular values (weighted histogram, log x)."""
    fig = _figure(6, 3.6)
    ax = fig.add_subplot(1, 1, 1)
    values = [v for v in spectrum.singular_values if v > 0]
    weights = [w for v, w in zip(spectrum.singular_values, spectrum.weights, strict=True) if v > 0]
    if values:
        lo, hi = min(values), max(values)
        if hi / lo < 1.01:
            lo, hi = lo / 1.05, hi * 1.05
        edges = [lo * (hi / lo) ** (i / 30) for i in range(31)]
        ax.hist(values, bins=edges, weights=weights)
        ax.set_xscale("log")
    for value, style in ((spectrum.s_median, "--"), (spectrum.s_max, ":")):
        ax.axvline(value, color="k", ls=style, lw=0.8)
    ax.set_xlabel("singular value of the input-output Jacobian")
    ax.set_ylabel("weight")
    ax.set_title(spectrum.verdict[:80], fontsize=9)
    return fig


def section_png(section: Any) -> bytes | None:
    """PNG bytes of a doctor's report section (:class:`~initlab.doctor.sections.Section`):
    the SPP, Jacobian-spectrum or coordinate-check figure; ``None`` for an ``n/a`` one."""
    if section.result is None:
        return None
    draw = {"spp": _spp_figure, "jacobian": _jacobian_figure, "coord": _coord_check_figure}
    return _png(draw[section.name](section.result))
