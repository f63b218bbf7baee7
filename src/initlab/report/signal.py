"""Signal-propagation plots of :class:`~initlab.doctor.Diagnosis` results (PNG).

Top row: activation rms and gradient norm ``||dL/dy||`` of each weight layer's output against
depth, log scale, one line per diagnosis (so several inits, or before/after ``fix``, overlay).
Bottom: histograms of the first diagnosis's outputs at up to eight layers spread over depth.
Drawn with matplotlib's Agg canvas (no pyplot state); written atomically.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from initlab._core.files import atomic_write
from initlab.report.plots import _log_safe

_HISTOGRAMS = 8


def render_signal(diagnoses: Sequence[Any]) -> bytes:
    """PNG bytes of the signal-propagation figure for ``diagnoses``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    first = diagnoses[0]
    picked = _histogram_rows(first)
    columns = max(1, min(len(picked), 4))
    hist_rows = math.ceil(len(picked) / columns) if picked else 0
    fig = Figure(figsize=(11, 4 + 2.2 * hist_rows), dpi=100)
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(1 + hist_rows, 2 * columns, height_ratios=[2.2] + [1] * hist_rows)
    forward = fig.add_subplot(grid[0, :columns])
    backward = fig.add_subplot(grid[0, columns:])
    for diagnosis in diagnoses:
        rows = diagnosis.weighted
        depth = [r.layer for r in rows]
        for ax, values in (
            (forward, [r.rms for r in rows]),
            (backward, [r.grad_output for r in rows]),
        ):
            shown = _log_safe(values)
            hidden = sum(1 for v in shown if math.isnan(v))
            label = diagnosis.label + (f" ({hidden} zero/non-finite not shown)" if hidden else "")
            ax.plot(depth, shown, marker=".", label=label)
    for ax, title, ylabel in (
        (forward, "Forward: activation rms per layer", "rms of layer output"),
        (backward, "Backward: gradient norm per layer", "||dL/d output||"),
    ):
        ax.set_yscale("log")
        ax.set_xlabel("layer (weight layers in forward order)")
        ax.set_ylabel(ylabel)
        ax.set_title(title, fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    for i, row in enumerate(picked):
        ax = fig.add_subplot(grid[1 + i // columns, 2 * (i % columns) : 2 * (i % columns) + 2])
        values = row.samples[row.samples.isfinite()].double().cpu().numpy()
        if values.size:
            ax.hist(values, bins=50, color="tab:blue", alpha=0.8)
        else:
            ax.text(0.5, 0.5, "no finite values", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(f"{row.name} (layer {row.layer}), std {_short(row.std)}", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.suptitle(f"Signal propagation ({', '.join(d.label for d in diagnoses)})", fontsize=11)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def _short(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3g}"


def _histogram_rows(diagnosis: Any) -> list[Any]:
    """Up to eight rows with samples, spread evenly over depth; the rows after each weight
    layer's activation when there is one (what the next layer sees)."""
    rows = [r for r in diagnosis.layers if r.samples is not None and r.samples.numel()]
    if not rows:
        return []
    # Prefer the last row of each layer (post-activation), else any row.
    last_of_layer: dict[int, Any] = {}
    for row in rows:
        last_of_layer[row.layer] = row
    candidates = list(last_of_layer.values())
    if len(candidates) <= _HISTOGRAMS:
        return candidates
    step = (len(candidates) - 1) / (_HISTOGRAMS - 1)
    return [candidates[round(i * step)] for i in range(_HISTOGRAMS)]


def plot_signal(diagnoses: Sequence[Any], path: str | os.PathLike[str]) -> Path:
    """Write the signal-propagation PNG of ``diagnoses`` to ``path`` atomically."""
    if not diagnoses:
        raise ValueError("plot_signal needs at least one diagnosis")
    target = Path(path)
    if not target.parent.exists():
        raise FileNotFoundError(f"directory {str(target.parent)!r} does not exist (for {path})")
    atomic_write(target, render_signal(diagnoses))
    return target
