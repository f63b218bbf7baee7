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


def report_pngs(diagnoses: Sequence[Any]) -> dict[str, bytes]:
    """Every figure of a doctor's report, rendered once: ``"signal"`` (:func:`render_signal`)
    and one per section of the last diagnosis that has a figure (not ``n/a``)."""
    from initlab.report.theory import section_png

    pngs = {"signal": render_signal(diagnoses)}
    for name, section in diagnoses[-1].sections.items():
        png = section_png(section)
        if png is not None:
            pngs[name] = png
    return pngs


def plot_sections(
    diagnosis: Any, path: str | os.PathLike[str], pngs: dict[str, bytes] | None = None
) -> list[Path]:
    """Write the figure of each section of ``diagnosis`` (SPP, Jacobian spectrum, coordinate
    check; :mod:`initlab.doctor.sections`) next to ``path``: ``<stem>-<section>.png``. Sections
    that are ``n/a`` have no figure. ``pngs``: figures already rendered (:func:`report_pngs`).
    Returns the paths written."""
    from initlab.report.theory import section_png

    target = Path(path)
    written = []
    for name, section in diagnosis.sections.items():
        png = pngs[name] if pngs is not None and name in pngs else section_png(section)
        if png is not None:
            out = target.with_name(f"{target.stem}-{name}.png")
            atomic_write(out, png)
            written.append(out)
    return written


def write_diagnosis_html(
    diagnoses: Sequence[Any], path: str | os.PathLike[str], pngs: dict[str, bytes] | None = None
) -> Path:
    """One self-contained HTML page for ``diagnoses`` (one, or before/after ``fix``): the
    signal-propagation figure, each diagnosis's table and verdicts, and a section per deeper
    check of the last diagnosis (status, verdict, what to change, figure). Images are
    embedded as base64 PNG (``pngs``: already rendered by :func:`report_pngs`); written
    atomically."""
    import base64
    import html

    if not diagnoses:
        raise ValueError("write_diagnosis_html needs at least one diagnosis")
    target = Path(path)
    if not target.parent.exists():
        raise FileNotFoundError(f"directory {str(target.parent)!r} does not exist (for {path})")
    pngs = report_pngs(diagnoses) if pngs is None else pngs

    def image(png: bytes, alt: str) -> str:
        data = base64.b64encode(png).decode("ascii")
        return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'

    parts = [
        "<!doctype html><meta charset='utf-8'><title>initlab diagnosis</title>",
        "<style>body{font-family:sans-serif;max-width:1200px;margin:auto}"
        "pre{background:#f6f6f6;padding:8px;overflow-x:auto}img{max-width:100%}</style>",
        "<h1>initlab diagnosis</h1>",
        image(pngs["signal"], "signal propagation"),
    ]
    for diagnosis in diagnoses:
        text = diagnosis.text(sections=False)
        parts += [f"<h2>{html.escape(diagnosis.label)}</h2>", f"<pre>{html.escape(text)}</pre>"]
    for name, section in diagnoses[-1].sections.items():
        parts.append(f"<h2>{html.escape(section.title)} [{html.escape(section.status)}]</h2>")
        parts.append(f"<p><b>verdict:</b> {html.escape(section.verdict)}</p>")
        parts += [f"<p>{html.escape(line)}</p>" for line in section.advice]
        if name in pngs:
            parts.append(image(pngs[name], name))
    atomic_write(target, "\n".join(parts).encode())
    return target
