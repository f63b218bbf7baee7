"""The report of a comparison: PNG plots and ``report.html`` with the images embedded.

Up to :data:`~initlab.report.plots.MANY_RUNS` runs, the page lists every run. A larger
comparison is summarised so the page stays small and quick to write: a table per scheme
(runs, diverged, median/best/worst final loss), the best and worst runs in detail, the final
loss of every run as one scatter (``summary.png``) and the loss curves as each scheme's median
and range; ``results.json`` and ``history.csv`` keep every run.
"""

from __future__ import annotations

import base64
import html
import os
from typing import Any

from initlab._core.files import atomic_write
from initlab.bench.compare import Comparison
from initlab.report import plots

_MONITOR_CAPTION = (
    "Recorded by initlab.Monitor every {every} iterations: for each scheme, the rms of each "
    "weight layer's output (left) and the gradient norm ||dL/dy|| at that output (right), "
    "log scale, one colour per layer. Healthy: the layers' curves stay within about an order "
    "of magnitude of each other all through training. Vanishing: the curves collapse toward 0 "
    "with depth (deeper layers far below the first for activations; earlier layers far below "
    "the last for gradients), and stay there. Exploding: they grow by orders of magnitude "
    "with depth or over training. A layer listed as all 0 never carried a signal (zero or "
    "symmetric init, dead units); a dotted line marks a run that diverged."
)


_RUN_HEADERS = ("scheme", "seed", "final loss", "train acc", "test acc", "status", "seconds")


def _table(headers: tuple[str, ...], rows: list[tuple[Any, ...]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>" for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _scheme_rows(runs: list[Any]) -> list[tuple[Any, ...]]:
    from initlab._core.table import format_value

    by: dict[str, list[Any]] = {}
    for run in runs:
        by.setdefault(run.scheme, []).append(run)
    rows = []
    for scheme, items in by.items():
        losses = sorted(r.final_loss for r in items if r.final_loss is not None)
        diverged = sum(r.status == "diverged" for r in items)
        median = losses[len(losses) // 2] if losses else None
        rows.append((scheme, len(items), diverged, format_value(median),
                     format_value(losses[0] if losses else None),
                     format_value(losses[-1] if losses else None)))  # fmt: skip
    return rows


def _tables(comparison: Comparison) -> str:
    runs = comparison.runs
    if len(runs) <= plots.MANY_RUNS:
        return _table(_RUN_HEADERS, [_cells(r) for r in runs])
    detail = plots.detail_runs(runs)
    return (
        f"<h2>{len(runs)} runs by scheme</h2>"
        + _table(
            ("scheme", "runs", "diverged", "median final loss", "best", "worst"), _scheme_rows(runs)
        )
        + f"<h2>Best and worst {len(detail)} runs by final loss</h2>"
        + _table(_RUN_HEADERS, [_cells(r) for r in detail])
        + "<p>Every run is in results.json and history.csv.</p>"
    )


def _page(comparison: Comparison, images: list[tuple[str, str, bytes, str]]) -> str:
    c = comparison.config
    figures = "".join(
        f'<h2>{html.escape(title)}</h2><img alt="{html.escape(title)}" '
        f'src="data:image/png;base64,{base64.b64encode(png).decode()}">'
        + (f"<p>{html.escape(caption)}</p>" if caption else "")
        for title, _, png, caption in images
    )
    settings = html.escape(
        ", ".join(
            f"{k}={v}"
            for k, v in c.items()
            if v is not None and k not in ("schemes", "seeds", "data_fingerprint")
        )
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>initlab compare</title>"
        "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;"
        "text-align:right}td:first-child{text-align:left}img{max-width:100%}</style></head>"
        f"<body><h1>initlab compare</h1><p>{settings}</p>{_tables(comparison)}"
        f"{figures}</body></html>"
    )


def _cells(run: Any) -> tuple[Any, ...]:
    from initlab._core.table import format_value

    return tuple(format_value(v) for v in run.row())


def write_report(comparison: Comparison, out: str) -> list[str]:
    """Write ``loss.png``, ``gradient_norms.png``, ``decision_boundaries.png`` (2-D data
    with trained models), ``monitor.png`` (a comparison with monitor data), ``summary.png``
    (more than :data:`~initlab.report.plots.MANY_RUNS` runs) and ``report.html`` into
    ``out``; returns the paths written."""
    runs = comparison.runs
    images: list[tuple[str, str, bytes, str]] = []
    if len(runs) > plots.MANY_RUNS:
        images.append(("Final loss of every run", "summary.png", plots.final_losses(runs), ""))
    images += [
        ("Loss curves", "loss.png", plots.loss_curves(runs), ""),
        ("Gradient norm per layer", "gradient_norms.png", plots.gradient_norms(runs), ""),
    ]
    data = comparison.dataset
    if (
        data is not None
        and data.n_features == 2
        and any(r.model is not None for r in comparison.runs)
    ):
        png = plots.decision_boundaries(comparison.runs, data.x_train, data.y_train)
        images.append(("Decision boundaries (training data)", "decision_boundaries.png", png, ""))
    monitors = getattr(comparison, "monitors", {})
    if any((r.scheme, int(r.seed or 0)) in monitors for r in runs):
        every = comparison.config.get("monitor_every") or next(iter(monitors.values())).every
        images.append(
            (
                "Signal during training: activation rms and gradient norm per layer",
                "monitor.png",
                plots.monitor_curves(runs, monitors),
                _MONITOR_CAPTION.format(every=every),
            )
        )
    os.makedirs(out, exist_ok=True)
    written = []
    for _, name, png, _ in images:
        path = os.path.join(out, name)
        atomic_write(path, png)
        written.append(path)
    path = os.path.join(out, "report.html")
    atomic_write(path, _page(comparison, images))
    written.append(path)
    return written
