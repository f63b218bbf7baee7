"""Plots of training runs, drawn with matplotlib's Agg backend into PNG bytes.

Every function takes runs (:class:`~initlab.bench.results.Run`) and returns PNG bytes; nothing
is shown on screen and pyplot's global figure registry is not used. :func:`monitor_curves`
also takes the :class:`~initlab.bench.comparison.MonitorSeries` of the runs.

Drawn to be cheap: one figure per file, fixed margins instead of a tight bounding box (which
draws the figure twice), at most six tick labels per log axis in plain ``1e-3`` text (not
mathtext), dense artists rasterized, PNG compression level 1. Many runs are summarised: past
:data:`DETAIL_RUNS` runs, the loss plot shows each scheme's median and range over its seeds,
and the per-run panels show the best and the worst runs by final loss.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch

DETAIL_RUNS = 6
"""At most this many runs get their own panel (gradient norms, decision boundaries)."""
MANY_RUNS = 12
"""Above this many runs the loss plot aggregates the seeds of each scheme."""


def _figure(width: float, height: float, **adjust: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    margins = {"left": 0.1, "right": 0.97, "bottom": 0.12, "top": 0.9, "wspace": 0.3,
               "hspace": 0.45}  # fmt: skip
    margins.update(adjust)
    fig.subplots_adjust(**margins)
    return fig


def _png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", pil_kwargs={"compress_level": 1})
    return buffer.getvalue()


def _tick_text(value: float, _: Any = None) -> str:
    return f"{value:.0e}".replace("e-0", "e-").replace("e+0", "e")


def _log_y(ax: Any) -> None:
    """Log y axis with few, plain-text ticks (mathtext tick labels are the slow part)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter, NullLocator

    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(numticks=6))
    ax.yaxis.set_major_formatter(FuncFormatter(_tick_text))
    ax.yaxis.set_minor_locator(NullLocator())
    ax.yaxis.set_minor_formatter(NullFormatter())


def _few_x_ticks(ax: Any) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(5, integer=True))


def _label(run: Any, runs: Sequence[Any]) -> str:
    seeds = {r.seed for r in runs}
    return run.scheme if len(seeds) <= 1 else f"{run.scheme} (seed {run.seed})"


def _grid(n: int, cols: int = 3) -> tuple[int, int]:
    cols = min(cols, max(1, n))
    return max(1, math.ceil(n / cols)), cols


def detail_runs(runs: Sequence[Any], limit: int = DETAIL_RUNS) -> list[Any]:
    """``runs`` when there are at most ``limit``, else the best ``limit // 2`` finished runs by
    final loss and the worst ``limit - limit // 2`` (diverged runs count as the worst)."""
    runs = list(runs)
    if len(runs) <= limit:
        return runs

    def badness(run: Any) -> float:
        if run.status != "finished" or run.final_loss is None:
            return math.inf
        return run.final_loss if math.isfinite(run.final_loss) else math.inf

    ranked = sorted(runs, key=badness)
    best = ranked[: limit // 2]
    return best + ranked[len(ranked) - (limit - len(best)) :]


def _positive(values: Sequence[float]) -> bool:
    return all(v > 0 for v in values if math.isfinite(v))


def loss_curves(runs: Sequence[Any]) -> bytes:
    """Training loss against iteration, log scale when useful: one line per run, or for more
    than :data:`MANY_RUNS` runs each scheme's median over its seeds with the min-max band."""
    fig = _figure(7, 4.2, right=0.72)
    ax = fig.add_subplot(1, 1, 1)
    runs = [r for r in runs if r.history.iteration]
    positive = all(_positive(r.history.loss) for r in runs)
    if len(runs) > MANY_RUNS:
        _aggregate_loss(ax, runs)
        title = f"Loss curves: median and range over seeds ({len(runs)} runs)"
    else:
        for run in runs:
            h = run.history
            ax.plot(h.iteration, h.loss, label=_label(run, runs), linewidth=1.2)
            if run.status == "diverged" and run.diverged_at is not None:
                ax.axvline(run.diverged_at, linestyle=":", color="gray")
        title = "Loss curves"
    if positive and runs:
        _log_y(ax)
    _few_x_ticks(ax)
    ax.set_xlabel("iteration")
    ax.set_ylabel("training loss")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return _png(fig)


def _aggregate_loss(ax: Any, runs: Sequence[Any]) -> None:
    import numpy as np

    by_scheme: dict[str, list[Any]] = {}
    for run in runs:
        by_scheme.setdefault(run.scheme, []).append(run)
    for k, (scheme, items) in enumerate(by_scheme.items()):
        iterations = max((r.history.iteration for r in items), key=len)
        table = np.full((len(items), len(iterations)), np.nan)
        for i, run in enumerate(items):
            values = np.asarray(run.history.loss, dtype=float)
            table[i, : len(values)] = values
        table[~np.isfinite(table)] = np.nan
        alive = np.isfinite(table).any(0)
        colour = f"C{k % 10}"
        steps = np.asarray(iterations)[alive]
        if not steps.size:
            continue
        with np.errstate(all="ignore"):
            median = np.nanmedian(table[:, alive], 0)
            lo, hi = np.nanmin(table[:, alive], 0), np.nanmax(table[:, alive], 0)
        diverged = sum(r.status == "diverged" for r in items)
        note = f", {diverged} diverged" if diverged else ""
        ax.plot(steps, median, color=colour, linewidth=1.3,
                label=f"{scheme} ({len(items)} seeds{note})")  # fmt: skip
        ax.fill_between(steps, lo, hi, color=colour, alpha=0.2, linewidth=0, rasterized=True)


def gradient_norms(runs: Sequence[Any]) -> bytes:
    """Per-layer weight-gradient norm over training: one panel per run (for many runs, the
    best and the worst by final loss), one line per layer."""
    all_runs = [r for r in runs if r.history.iteration]
    shown = detail_runs(all_runs)
    rows, cols = _grid(len(shown))
    fig = _figure(4.2 * cols, 3.2 * rows + 0.4, left=0.08, bottom=0.1, top=0.88, hspace=0.6)
    for k, run in enumerate(shown):
        ax = fig.add_subplot(rows, cols, k + 1)
        h = run.history
        for layer, values in h.grad_norm.items():
            ax.plot(h.iteration, values, label=layer, linewidth=1.1)
        grads = [v for vs in h.grad_norm.values() for v in vs]
        if grads and _positive(grads) and any(v > 0 for v in grads):
            _log_y(ax)
        _few_x_ticks(ax)
        ax.set_title(_label(run, all_runs), fontsize=9)
        ax.set_xlabel("iteration", fontsize=8)
        ax.set_ylabel("||dL/dW||", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6, frameon=False)
    if len(shown) < len(all_runs):
        fig.suptitle(f"best and worst {len(shown)} of {len(all_runs)} runs by final loss",
                     fontsize=10)  # fmt: skip
    return _png(fig)


def decision_boundaries(runs: Sequence[Any], x: torch.Tensor, y: torch.Tensor) -> bytes:
    """Side by side, each run's predicted class over the plane, with the points ``x`` (N, 2)
    (for many runs, the best and the worst by final loss)."""
    if x.shape[1] != 2:
        raise ValueError(f"decision boundaries need 2-D data; got {x.shape[1]} features")
    with_model = [r for r in runs if r.model is not None]
    shown = detail_runs(with_model)
    rows, cols = _grid(len(shown))
    fig = _figure(4.0 * cols, 3.6 * rows + 0.3, left=0.02, right=0.98, bottom=0.03, top=0.9,
                  wspace=0.08, hspace=0.25)  # fmt: skip
    x = x.detach().double()
    lo, hi = x.min(0).values - 0.5, x.max(0).values + 0.5
    steps = 150
    gx, gy = torch.meshgrid(torch.linspace(float(lo[0]), float(hi[0]), steps, dtype=torch.float64),
                            torch.linspace(float(lo[1]), float(hi[1]), steps, dtype=torch.float64),
                            indexing="xy")  # fmt: skip
    grid = torch.stack([gx.reshape(-1), gy.reshape(-1)], 1)
    extent = (float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1]))
    for k, run in enumerate(shown):
        ax = fig.add_subplot(rows, cols, k + 1)
        cls = _predicted(run.model, grid).reshape(steps, steps).numpy()
        ax.imshow(cls, origin="lower", extent=extent, aspect="auto", alpha=0.35, cmap="coolwarm",
                  interpolation="nearest")  # fmt: skip
        ax.scatter(x[:, 0].numpy(), x[:, 1].numpy(), c=y.numpy(), s=8, cmap="coolwarm",
                   edgecolors="k", linewidths=0.2, rasterized=True)  # fmt: skip
        acc = "-" if run.train_accuracy is None else f"{run.train_accuracy:.3f}"
        ax.set_title(f"{_label(run, with_model)}: train acc {acc}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    if len(shown) < len(with_model):
        fig.suptitle(f"best and worst {len(shown)} of {len(with_model)} runs by final loss",
                     fontsize=10)  # fmt: skip
    return _png(fig)


def _predicted(model: Any, grid: torch.Tensor) -> torch.Tensor:
    from initlab._core.threads import few_threads

    dtype = next(model.parameters()).dtype
    model.eval()
    with torch.no_grad(), few_threads(1):  # a tiny net: one thread is fastest
        logits = model(grid.to(dtype))
    model.train()
    if logits.shape[-1] == 1:
        threshold = 0.5 if getattr(model, "output", "sigmoid") == "linear" else 0.0
        return (logits[:, 0] > threshold).double()
    return logits.argmax(-1).double()


def final_losses(runs: Sequence[Any]) -> bytes:
    """Final training loss of every run, one column of points per scheme (log scale when
    useful); diverged runs are counted in the scheme's label. The summary of a large
    comparison."""
    import numpy as np

    by_scheme: dict[str, list[Any]] = {}
    for run in runs:
        by_scheme.setdefault(run.scheme, []).append(run)
    fig = _figure(max(5.0, 0.9 * len(by_scheme) + 2), 4.2, bottom=0.28)
    ax = fig.add_subplot(1, 1, 1)
    values_all: list[float] = []
    labels = []
    for k, (scheme, items) in enumerate(by_scheme.items()):
        values = [r.final_loss for r in items if r.final_loss is not None]
        values = [v for v in values if math.isfinite(v)]
        values_all += values
        jitter = (np.arange(len(values)) % 7 - 3) * 0.04
        ax.scatter(k + jitter, values, s=10, color=f"C{k % 10}", alpha=0.8, rasterized=True)
        if values:
            ax.hlines(float(np.median(values)), k - 0.3, k + 0.3, color="k", linewidth=1.2)
        diverged = len(items) - len(values)
        labels.append(scheme + (f"\n({diverged} diverged)" if diverged else ""))
    if values_all and _positive(values_all) and min(values_all) > 0:
        _log_y(ax)
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("final training loss")
    ax.set_title(f"Final loss of each run ({len(runs)} runs; bar: median)", fontsize=10)
    return _png(fig)


def _log_safe(values: Sequence[float | None]) -> list[float]:
    """Zeros, negatives, ``None``, inf and nan become nan: gaps in a log-scale line."""
    return [v if v is not None and math.isfinite(v) and v > 0 else math.nan for v in values]


def monitor_curves(runs: Sequence[Any], monitors: Mapping[tuple[str, int], Any]) -> bytes:
    """What a :class:`~initlab.Monitor` saw during training, one row per scheme: activation
    rms of each weight layer's output (left) and gradient norm ``||dL/dy||`` at that output
    (right) against iteration, log scale, one colour per layer (the seeds of a scheme share
    it). Zero and non-finite values cannot be drawn on a log axis: the legend counts them
    (``all 0`` for a layer that never carried a signal). A dotted line marks divergence."""
    schemes: dict[str, list[tuple[Any, Any]]] = {}
    for run in runs:
        series = monitors.get((run.scheme, int(run.seed or 0)))
        if series is not None and series.iterations:
            schemes.setdefault(run.scheme, []).append((run, series))
    if not schemes:
        raise ValueError("no monitor data to plot (compare(..., monitor_every=k) records it)")
    rows = len(schemes)
    height = 2.9 * rows + 0.4
    fig = _figure(10, height, left=0.08, bottom=0.5 / height, top=1 - 0.35 / height,
                  hspace=0.55, wspace=0.25)  # fmt: skip
    panels = (("rms", "activation rms"), ("grad_output", "||dL/dy||"))
    for r, (scheme, items) in enumerate(schemes.items()):
        seeds = ", ".join(str(run.seed) for run, _ in items)
        for c, (stat, ylabel) in enumerate(panels):
            ax = fig.add_subplot(rows, 2, 2 * r + c + 1)
            _monitor_panel(ax, items, stat)
            ax.set_title(f"{scheme} (seed {seeds}): {ylabel}", fontsize=9)
            ax.set_xlabel("iteration", fontsize=8)
            ax.set_ylabel(ylabel, fontsize=8)
            ax.tick_params(labelsize=7)
            ax.legend(fontsize=6, frameon=False)
    return _png(fig)


def _monitor_panel(ax: Any, items: list[tuple[Any, Any]], stat: str) -> None:
    colours = [f"C{i}" for i in range(10)]
    layers: list[str] = []
    for _, series in items:
        layers.extend(name for name in series.series(stat) if name not in layers)
    drawn = False
    for k, layer in enumerate(layers):
        hidden = total = 0
        for run, series in items:
            values = series.series(stat).get(layer)
            if values is None:
                continue
            shown = _log_safe(values)
            hidden += sum(1 for v in shown if math.isnan(v))
            total += len(shown)
            ax.plot(series.iterations, shown, color=colours[k % 10], linewidth=1.2, alpha=0.85)
            drawn |= hidden < total
            if run.status == "diverged" and run.diverged_at is not None:
                ax.axvline(run.diverged_at, linestyle=":", color="gray")
        if hidden == total:
            note = " (all 0/non-finite)"
        elif hidden:
            note = f" ({hidden} of {total} 0/non-finite not shown)"
        else:
            note = ""
        ax.plot([], [], color=colours[k % 10], label=f"{layer}{note}")
    if drawn:
        _log_y(ax)
    _few_x_ticks(ax)
