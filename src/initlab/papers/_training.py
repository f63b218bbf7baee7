"""One training run of a reproduction, and its loss curve as a figure series."""

from __future__ import annotations

import math

from torch import nn

from initlab.bench.dataset import Dataset
from initlab.bench.results import Run
from initlab.bench.train import train
from initlab.papers.base import Series


def train_run(
    model: nn.Module,
    data: Dataset,
    *,
    lr: float,
    iterations: int,
    optimizer: str = "momentum",
    batch_size: int = 64,
    dtype: str | None = None,
    logs: int = 30,
) -> Run:
    """Train ``model`` in place (its weights as given, seed 0, no progress bar) and log the
    full-data loss about ``logs`` times along the way (each log is a forward pass over the
    whole training split)."""
    return train(
        model,
        data,
        init=None,
        optimizer=optimizer,
        lr=lr,
        iterations=iterations,
        batch_size=batch_size,
        seed=0,
        dtype=dtype,
        progress=False,
        log_every=max(1, iterations // logs),
    )


def loss_series(name: str, run: Run) -> Series:
    """The run's training loss against the iteration, labelled ``name (status)``; losses are
    floored at 1e-12 so that a log axis can draw them."""
    label = f"{name} ({run.status}"
    label += f" at {run.diverged_at})" if run.status == "diverged" else ")"
    return Series(label, list(run.history.iteration), [max(v, 1e-12) for v in run.history.loss])


def final_loss(run: Run) -> float:
    """The run's final training loss; ``inf`` when it diverged or has none."""
    loss = run.final_loss
    return math.inf if loss is None or run.status == "diverged" else float(loss)
