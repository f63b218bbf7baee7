"""A reproduction's figure (PNG), ``results.json`` and ``index.html``; a table over many.

The figure draws a :class:`~initlab.papers.base.Reproduction`'s panels in a grid; the page
states the paper's claim, the setting, each check with its verdict, where the setting differs
from the paper, and the figure with a caption saying what to look for.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
from collections.abc import Sequence
from typing import Any

from initlab._core.files import atomic_write
from initlab._core.table import format_table
from initlab.papers.base import Panel, Reproduction


def _axes_grid(n: int) -> tuple[Any, list[Any]]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    cols = min(n, 2)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(6.2 * cols, 4.0 * rows), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    axes = [fig.add_subplot(rows, cols, k + 1) for k in range(n)]
    return fig, axes


def _positive(values: Sequence[float]) -> bool:
    return all(v is not None and math.isfinite(v) and v > 0 for v in values)


def _draw(ax: Any, panel: Panel) -> None:
    if panel.kind == "heatmap" and panel.z is not None:
        image = ax.imshow(
            panel.z,
            origin="lower",
            aspect="auto",
            cmap="viridis",
            extent=(-0.5, len(panel.x_ticks or []) - 0.5, -0.5, len(panel.y_ticks or []) - 0.5),
        )
        ax.figure.colorbar(image, ax=ax, label=panel.zlabel)
        if panel.x_ticks:
            ax.set_xticks(range(len(panel.x_ticks)), [f"{t:g}" for t in panel.x_ticks])
        if panel.y_ticks:
            ax.set_yticks(range(len(panel.y_ticks)), [f"{t:g}" for t in panel.y_ticks])
    for series in panel.series:
        ax.plot(series.x, series.y, marker="." if len(series.x) < 40 else None, label=series.label)
        if series.low is not None and series.high is not None:
            ax.fill_between(series.x, series.low, series.high, alpha=0.2)
    if panel.logx and _positive([x for s in panel.series for x in s.x]):
        ax.set_xscale("log")
    if panel.logy and _positive([y for s in panel.series for y in s.y]):
        ax.set_yscale("log")
    ax.set_title(panel.title, fontsize=10)
    ax.set_xlabel(panel.xlabel)
    ax.set_ylabel(panel.ylabel)
    if panel.series and len(panel.series) <= 12:
        ax.legend(fontsize=7)


def figure(result: Reproduction) -> bytes:
    """The reproduction's panels as one PNG."""
    fig, axes = _axes_grid(max(1, len(result.panels)))
    for ax, panel in zip(axes, result.panels, strict=False):
        _draw(ax, panel)
    fig.suptitle(f"{result.paper.name}: {result.verdict}", fontsize=12)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def _page(result: Reproduction, png: bytes) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(c.name)}</td><td>{c.measured:.4g}</td>"
        f"<td>{html.escape(c.expected)}</td>"
        f"<td class='{'ok' if c.passed else 'bad'}'>{'pass' if c.passed else 'FAIL'}</td></tr>"
        for c in result.checks
    )
    setting = "".join(
        f"<li>{html.escape(str(k))}: {html.escape(str(v))}</li>" for k, v in result.setting.items()
    )
    verdict_class = "ok" if result.verdict == "reproduced" else "bad"
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>initlab reproduce {html.escape(result.paper.name)}</title>"
        "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px}"
        ".ok{color:#060}.bad{color:#a00;font-weight:bold}img{max-width:100%}</style></head>"
        f"<body><h1>{html.escape(result.paper.title)}</h1>"
        f"<p>{html.escape(result.paper.citation)} &middot; <code>initlab reproduce "
        f"{html.escape(result.paper.name)}{' --quick' if result.quick else ''}</code></p>"
        f"<h2>Claim</h2><p>{html.escape(result.paper.claim)}</p>"
        f"<h2>Setting</h2><ul>{setting}</ul>"
        f"<h2>Checks</h2><table><tr><th>check</th><th>measured</th><th>expected</th>"
        f"<th>result</th></tr>{rows}</table>"
        f"<p>Verdict: <span class='{verdict_class}'>{result.verdict}</span> "
        f"({result.seconds:.1f} s)</p>"
        f"<h2>Figure</h2><img alt='figure' src='data:image/png;base64,"
        f"{base64.b64encode(png).decode()}'>"
        "<p>Each panel is one of the measurements the checks use: compare the curves of the "
        "inits against each other, and against the reference line where one is drawn.</p>"
        f"<h2>Where this differs from the paper</h2><p>{html.escape(result.notes)}</p>"
        "</body></html>"
    )


def write_reproduction(result: Reproduction, out: str | os.PathLike[str]) -> list[str]:
    """Write ``figure.png``, ``results.json`` and ``index.html`` into folder ``out``."""
    folder = os.fspath(out)
    os.makedirs(folder, exist_ok=True)
    png = figure(result)
    paths = [os.path.join(folder, name) for name in ("figure.png", "results.json", "index.html")]
    atomic_write(paths[0], png)
    atomic_write(paths[1], json.dumps(result.to_dict(), indent=2))
    atomic_write(paths[2], _page(result, png))
    return paths


def summary_table(results: Sequence[Reproduction]) -> str:
    """One row per paper: the claim (shortened), the measured checks, the verdict."""
    rows = []
    for r in results:
        passed = sum(c.passed for c in r.checks)
        claim = r.paper.claim if len(r.paper.claim) <= 60 else r.paper.claim[:57] + "..."
        rows.append(
            (r.paper.name, claim, f"{passed}/{len(r.checks)} checks", r.verdict, f"{r.seconds:.1f}")
        )
    return format_table(["paper", "claim", "measured", "verdict", "seconds"], rows)
