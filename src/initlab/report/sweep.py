"""Plots and ``report.html`` of a sweep: phase diagrams, metric curves with seed bands, and the
multiplier-tuning view. Every plot function returns PNG bytes (matplotlib's Agg backend,
imported when a plot is drawn).

A run counts as *trainable* when it finished and its final training loss is below half the
loss of the best constant prediction (``prior_loss``, the entropy of the training labels):
it learned something beyond the class frequencies.
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
import statistics
from collections.abc import Sequence
from typing import Any

from initlab._core.files import atomic_write
from initlab.bench.sweep.run import SweepResult
from initlab.bench.sweep.spec import AXES
from initlab.report.plots import _figure, _png

NUMERIC = ("scale", "depth", "width", "lr")
CATEGORICAL = ("scheme", "activation", "optimizer", "data")
TRAINABLE_FRACTION = 0.5


def trainable(row: dict[str, Any]) -> bool:
    """Finished with ``final_loss < 0.5 * prior_loss`` (see the module docstring)."""
    if row["status"] != "finished" or row["final_loss"] is None:
        return False
    prior = row.get("prior_loss")
    if prior is None or not math.isfinite(prior):
        return True
    return row["final_loss"] < TRAINABLE_FRACTION * prior


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _label(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return value if isinstance(value, str) else _key(value)


def _values(rows: Sequence[dict[str, Any]], axis: str) -> list[Any]:
    seen: dict[str, Any] = {}
    for r in rows:
        seen.setdefault(_key(r[axis]), r[axis])
    values = list(seen.values())
    if axis in NUMERIC or axis == "seed":
        values.sort()
    return values


def _metric(row: dict[str, Any], metric: str) -> float:
    if metric == "trainable":
        return 1.0 if trainable(row) else 0.0
    value = row.get(metric)
    return float("nan") if value is None else float(value)


def _facet_axis(result: SweepResult, used: Sequence[str]) -> str | None:
    for axis in CATEGORICAL:
        if axis in result.swept and axis not in used:
            return axis
    return None


# ---------------------------------------------------------------------------- plots
def phase_diagram(result: SweepResult, x: str, y: str, metric: str = "final_loss") -> bytes:
    """Heatmap of ``metric`` over axes ``x`` and ``y`` (the median over the other axes, e.g.
    seeds), next to the fraction of trainable runs; one row of panels per value of a swept
    categorical axis (scheme, activation, ...) that is not ``x`` or ``y``. Cells where every
    run diverged are grey and marked with a cross."""
    import numpy as np
    from matplotlib.colors import LogNorm

    for axis in (x, y):
        if axis not in AXES:
            raise ValueError(f"heatmap axis must be one of {', '.join(AXES)}; got {axis!r}")
    if x == y:
        raise ValueError(f"the heatmap needs two different axes; got {x!r} twice")
    facet = _facet_axis(result, (x, y))
    facets = _values(result.rows, facet) if facet else [None]
    xs, ys = _values(result.rows, x), _values(result.rows, y)
    fig = _figure(10, 3.6 * len(facets))
    for row_index, fv in enumerate(facets):
        rows = [r for r in result.rows if facet is None or _key(r[facet]) == _key(fv)]
        grid = np.full((len(ys), len(xs)), np.nan)
        frac = np.full((len(ys), len(xs)), np.nan)
        all_diverged = np.zeros((len(ys), len(xs)), dtype=bool)
        for i, yv in enumerate(ys):
            for j, xv in enumerate(xs):
                cell = [r for r in rows if _key(r[x]) == _key(xv) and _key(r[y]) == _key(yv)]
                if not cell:
                    continue
                values = [v for v in (_metric(r, metric) for r in cell) if math.isfinite(v)]
                if values:
                    grid[i, j] = statistics.median(values)
                frac[i, j] = sum(trainable(r) for r in cell) / len(cell)
                all_diverged[i, j] = all(r["status"] == "diverged" for r in cell)
        title = "" if facet is None else f"{facet} = {_label(fv)}: "
        ax = fig.add_subplot(len(facets), 2, 2 * row_index + 1)
        finite = grid[np.isfinite(grid)]
        norm = None
        if "loss" in metric and finite.size and finite.min() > 0:
            norm = LogNorm(vmin=finite.min(), vmax=max(finite.max(), finite.min() * 1.0001))
        cmap = _cmap("viridis")
        image = ax.imshow(np.ma.masked_invalid(grid), origin="lower", aspect="auto", cmap=cmap,
                          norm=norm)  # fmt: skip
        fig.colorbar(image, ax=ax, label=f"median {metric}")
        for i, j in zip(*np.nonzero(all_diverged), strict=True):
            ax.text(j, i, "x", ha="center", va="center", color="red", fontsize=9)
        ax.set_title(f"{title}{metric} (x: all runs diverged)", fontsize=9)
        _ticks(ax, x, xs, y, ys)
        ax2 = fig.add_subplot(len(facets), 2, 2 * row_index + 2)
        image2 = ax2.imshow(np.ma.masked_invalid(frac), origin="lower", aspect="auto",
                            cmap=_cmap("RdYlGn"), vmin=0, vmax=1)  # fmt: skip
        fig.colorbar(image2, ax=ax2, label="fraction trainable")
        ax2.set_title(f"{title}trainable: final loss < {TRAINABLE_FRACTION} x prior loss",
                      fontsize=9)  # fmt: skip
        _ticks(ax2, x, xs, y, ys)
    fig.tight_layout()
    return _png(fig)


def _cmap(name: str) -> Any:
    import matplotlib

    return matplotlib.colormaps[name].with_extremes(bad="#bbbbbb")


def _ticks(ax: Any, x: str, xs: list[Any], y: str, ys: list[Any]) -> None:
    ax.set_xticks(range(len(xs)))
    ax.set_xticklabels([_label(v) for v in xs], rotation=45 if len(xs) > 8 else 0, fontsize=7)
    ax.set_yticks(range(len(ys)))
    ax.set_yticklabels([_label(v) for v in ys], fontsize=7)
    ax.set_xlabel(x)
    ax.set_ylabel(y)


def metric_curves(result: SweepResult, axis: str, metric: str = "final_loss",
                  hue: str | None = None) -> bytes:  # fmt: skip
    """``metric`` against one axis: the median over seeds (and any other axis) as a line, the
    band from the lowest to the highest run; one line per value of ``hue`` (default: the first
    swept categorical axis other than ``axis``). Diverged runs are left out of the line and
    counted in the legend."""
    if axis not in AXES:
        raise ValueError(f"axis must be one of {', '.join(AXES)}; got {axis!r}")
    hue = hue if hue is not None else _facet_axis(result, (axis,))
    hues = _values(result.rows, hue) if hue else [None]
    xs = _values(result.rows, axis)
    numeric = axis in NUMERIC
    fig = _figure(7, 4.2)
    ax = fig.add_subplot(1, 1, 1)
    positive = True
    for hv in hues:
        rows = [r for r in result.rows if hue is None or _key(r[hue]) == _key(hv)]
        px, mid, low, high, diverged = [], [], [], [], 0
        for k, xv in enumerate(xs):
            cell = [r for r in rows if _key(r[axis]) == _key(xv)]
            diverged += sum(r["status"] == "diverged" for r in cell)
            values = [v for v in (_metric(r, metric) for r in cell) if math.isfinite(v)]
            if not values:
                continue
            px.append(float(xv) if numeric else k)
            mid.append(statistics.median(values))
            low.append(min(values))
            high.append(max(values))
            positive &= min(values) > 0
        label = "all" if hv is None else _label(hv)
        if diverged:
            label += f" ({diverged} diverged)"
        line = ax.plot(px, mid, marker="o", label=label)[0]
        ax.fill_between(px, low, high, color=line.get_color(), alpha=0.2)
    if numeric and axis in ("scale", "lr") and all(float(v) > 0 for v in xs):
        ax.set_xscale("log")
    if not numeric:
        ax.set_xticks(range(len(xs)))
        ax.set_xticklabels([_label(v) for v in xs])
    if "loss" in metric and positive:
        ax.set_yscale("log")
    ax.set_xlabel(axis)
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} vs {axis} (line: median; band: min to max over seeds)", fontsize=9)
    ax.legend(fontsize=8, title=hue)
    ax.grid(alpha=0.3)
    return _png(fig)


def multiplier_view(result: SweepResult, metric: str = "final_loss") -> bytes:
    """The multiplier-tuning view: ``metric`` against the variance multiplier ``scale``, one
    line per scheme (median and min-max band over seeds)."""
    return metric_curves(result, "scale", metric, hue="scheme" if "scheme" in result.swept
                         else None)  # fmt: skip


# ---------------------------------------------------------------------------- report
_PHASE = (
    "Each cell is one combination of {x} (horizontal) and {y} (vertical). Left: the median "
    "final training loss of its runs (over seeds and any axis not shown), log colour scale; "
    "grey with a red x: every run there diverged (a NaN or Inf loss). Right: the fraction of "
    "runs that trained, i.e. finished with a final loss below half the loss of predicting the "
    "class frequencies. An ordered/chaotic phase boundary shows as the edge of the green "
    "region: past it the signal vanishes or explodes with depth and the net does not train."
)
_CURVE = (
    "The final training loss against {axis}: the line is the median over seeds (and any other "
    "axis not shown), the band spans the best to the worst run. A narrow band means the "
    "outcome is set by {axis}, not by the draw."
)
_MULT = (
    "The multiplier-tuning view: the variance multiplier scale multiplies every weight's "
    "variance (weights times sqrt(scale)) after the scheme draws. A scheme whose minimum sits "
    "at scale = 1 is calibrated for this net; a minimum elsewhere is the multiplier to use."
)


def _default_axes(result: SweepResult) -> list[str] | None:
    swept = [a for a in result.swept if a != "seed"]
    numeric = [a for a in swept if a in NUMERIC]
    if len(numeric) >= 2:
        return numeric[:2]
    if len(swept) >= 2:
        return (numeric + [a for a in swept if a not in numeric])[:2]
    return None


def write_sweep_report(result: SweepResult, out: str | os.PathLike[str],
                       heatmap: Sequence[str] | None = None) -> list[str]:  # fmt: skip
    """Write ``phase.png`` (two swept axes), ``curve-<axis>.png`` (each swept axis but seed),
    ``multiplier.png`` (scale swept) and ``report.html``; returns their paths."""
    out = os.fspath(out)
    os.makedirs(out, exist_ok=True)
    images: list[tuple[str, str, bytes, str]] = []
    axes = list(heatmap) if heatmap is not None else _default_axes(result)
    if axes is not None:
        x, y = axes
        images.append((f"Phase diagram: {x} x {y}", "phase.png", phase_diagram(result, x, y),
                       _PHASE.format(x=x, y=y)))  # fmt: skip
    if "scale" in result.swept:
        images.append(("Multiplier tuning", "multiplier.png", multiplier_view(result), _MULT))
    for axis in result.swept:
        if axis in ("seed", "scale"):
            continue
        images.append((f"Final loss vs {axis}", f"curve-{axis}.png", metric_curves(result, axis),
                       _CURVE.format(axis=axis)))  # fmt: skip
    paths = []
    for _, name, png, _ in images:
        path = os.path.join(out, name)
        atomic_write(path, png)
        paths.append(path)
    page = os.path.join(out, "report.html")
    atomic_write(page, _page(result, images))
    paths.append(page)
    return paths


def _page(result: SweepResult, images: list[tuple[str, str, bytes, str]]) -> str:
    rows = result.rows
    finished = sum(r["status"] == "finished" for r in rows)
    good = sum(trainable(r) for r in rows)
    swept = result.swept
    head = "".join(f"<th>{html.escape(h)}</th>" for h in
                   [*swept, "final loss", "best loss", "train acc", "test acc"])  # fmt: skip
    best = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_label(r[a]))}</td>" for a in swept)
        + "".join(f"<td>{'' if r[m] is None else f'{r[m]:.4g}'}</td>"
                  for m in ("final_loss", "best_loss", "train_accuracy", "test_accuracy"))
        + "</tr>"
        for r in result.best("final_loss", 10)
    )  # fmt: skip
    figures = "".join(
        f"<h2>{html.escape(title)}</h2><img alt='{html.escape(title)}' "
        f"src='data:image/png;base64,{base64.b64encode(png).decode()}'>"
        f"<p>{html.escape(caption)}</p>"
        for title, _, png, caption in images
    )
    spec = result.spec
    settings = html.escape(
        f"{len(rows)} runs over {', '.join(swept) or 'no swept axis'}; {spec.iterations} "
        f"full-batch iterations in {spec.dtype}; init seeds derived from sweep seed "
        f"{spec.sweep_seed} and each config"
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>initlab sweep</title>"
        "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;"
        "text-align:right}img{max-width:100%}</style></head><body><h1>initlab sweep</h1>"
        f"<p>{settings}.</p><p>{finished} of {len(rows)} runs finished ({len(rows) - finished}"
        f" diverged); {good} trained (final loss below half the prior loss).</p>"
        f"<h2>Best runs (lowest final training loss)</h2><table><tr>{head}</tr>{best}</table>"
        f"{figures}<p>All rows: results.csv (and results.parquet), one per run.</p>"
        "</body></html>"
    )


__all__ = ["metric_curves", "multiplier_view", "phase_diagram", "write_sweep_report"]
