"""Plots of training runs, drawn with matplotlib's Agg backend into PNG bytes.

Every function takes runs (:class:`~initlab.train.Run`) and returns PNG bytes; nothing is
shown on screen and pyplot's global figure registry is not used. :func:`monitor_curves` also
takes the :class:`~initlab.experiments.MonitorSeries` of the runs.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    return buffer.getvalue()


def _label(run: Any, runs: Sequence[Any]) -> str:
    seeds = {r.seed for r in runs}
    return run.scheme if len(seeds) <= 1 else f"{run.scheme} (seed {run.seed})"


def loss_curves(runs: Sequence[Any]) -> bytes:
    """Training loss of every run against iteration, one axis, log scale when useful."""
    fig = _figure(7, 4.2)
    ax = fig.add_subplot(1, 1, 1)
    positive = True
    for run in runs:
        h = run.history
        if not h.iteration:
            continue
        ax.plot(h.iteration, h.loss, label=_label(run, runs))
        if run.status == "diverged" and run.diverged_at is not None:
            ax.axvline(run.diverged_at, linestyle=":", color="gray")
        positive &= all(v > 0 for v in h.loss if math.isfinite(v))
    if positive:
        ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel("training loss")
    ax.set_title("Loss curves")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return _png(fig)


def gradient_norms(runs: Sequence[Any]) -> bytes:
    """Per-layer weight-gradient norm over training: one panel per run, one line per layer."""
    runs = [r for r in runs if r.history.iteration]
    cols = min(3, max(1, len(runs)))
    rows = max(1, math.ceil(len(runs) / cols))
    fig = _figure(4.2 * cols, 3.2 * rows)
    for k, run in enumerate(runs):
        ax = fig.add_subplot(rows, cols, k + 1)
        h = run.history
        for layer, values in h.grad_norm.items():
            ax.plot(h.iteration, values, label=layer)
        if all(v > 0 for vs in h.grad_norm.values() for v in vs if math.isfinite(v)) and any(
            h.grad_norm.values()
        ):
            ax.set_yscale("log")
        ax.set_title(_label(run, runs), fontsize=9)
        ax.set_xlabel("iteration", fontsize=8)
        ax.set_ylabel("||dL/dW||", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    return _png(fig)


def decision_boundaries(runs: Sequence[Any], x: torch.Tensor, y: torch.Tensor) -> bytes:
    """Side by side, each run's predicted class over the plane, with the points ``x`` (N, 2)."""
    if x.shape[1] != 2:
        raise ValueError(f"decision boundaries need 2-D data; got {x.shape[1]} features")
    runs = [r for r in runs if r.model is not None]
    cols = min(3, max(1, len(runs)))
    rows = max(1, math.ceil(len(runs) / cols))
    fig = _figure(4.0 * cols, 3.6 * rows)
    x = x.detach().double()
    lo, hi = x.min(0).values - 0.5, x.max(0).values + 0.5
    steps = 200
    gx, gy = torch.meshgrid(torch.linspace(float(lo[0]), float(hi[0]), steps, dtype=torch.float64),
                            torch.linspace(float(lo[1]), float(hi[1]), steps, dtype=torch.float64),
                            indexing="xy")  # fmt: skip
    grid = torch.stack([gx.reshape(-1), gy.reshape(-1)], 1)
    for k, run in enumerate(runs):
        ax = fig.add_subplot(rows, cols, k + 1)
        model = run.model
        dtype = next(model.parameters()).dtype
        model.eval()
        with torch.no_grad():
            logits = model(grid.to(dtype))
        model.train()
        if logits.shape[-1] == 1:
            threshold = 0.5 if getattr(model, "output", "sigmoid") == "linear" else 0.0
            cls = (logits[:, 0] > threshold).double()
        else:
            cls = logits.argmax(-1).double()
        ax.contourf(gx.numpy(), gy.numpy(), cls.reshape(steps, steps).numpy(), alpha=0.35,
                    cmap="coolwarm")  # fmt: skip
        ax.scatter(x[:, 0].numpy(), x[:, 1].numpy(), c=y.numpy(), s=8, cmap="coolwarm",
                   edgecolors="k", linewidths=0.2)  # fmt: skip
        acc = "-" if run.train_accuracy is None else f"{run.train_accuracy:.3f}"
        ax.set_title(f"{_label(run, runs)}: train acc {acc}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
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
    fig = _figure(10, 2.9 * rows + 0.4)
    colours = [f"C{i}" for i in range(10)]
    panels = (("rms", "activation rms"), ("grad_output", "||dL/dy||"))
    for r, (scheme, items) in enumerate(schemes.items()):
        seeds = ", ".join(str(run.seed) for run, _ in items)
        for c, (stat, ylabel) in enumerate(panels):
            ax = fig.add_subplot(rows, 2, 2 * r + c + 1)
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
                    ax.plot(series.iterations, shown, color=colours[k % 10], linewidth=1.2,
                            alpha=0.85)  # fmt: skip
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
                ax.set_yscale("log")
            ax.set_title(f"{scheme} (seed {seeds}): {ylabel}", fontsize=9)
            ax.set_xlabel("iteration", fontsize=8)
            ax.set_ylabel(ylabel, fontsize=8)
            ax.tick_params(labelsize=7)
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=7)
    fig.tight_layout()
    return _png(fig)
