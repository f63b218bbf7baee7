"""``compare``: train one net per scheme (and seed) on the same data, batched, and store results.

All runs of a comparison share an architecture, so they train together as one
:class:`~initlab.nets.StackedMLP` (groups of at most ``group_size`` members), each member
independent (own init, seed, clipping norm, loss and divergence). With ``out=DIR`` every
finished group is saved at once (atomically), and ``resume=True`` skips the runs already saved
there, so an interrupted comparison picks up where it stopped.

With ``monitor_every=k`` each run also records an :class:`initlab.Monitor` every ``k``
iterations (activation rms, gradient norms, ... per weight layer; :class:`MonitorSeries`).
Module hooks cannot see inside a :class:`~initlab.nets.StackedMLP`, so monitored runs train one
at a time with :func:`initlab.train` (slower; same math, see :func:`compare`).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from initlab._core.files import atomic_write, prepare_out
from initlab._core.table import format_table
from initlab._core.validation import check_choice, check_number
from initlab.bench.choices import CLASSIC_SCHEMES
from initlab.bench.datasets import Dataset
from initlab.bench.nets import MLP, StackedMLP, load_parameters, mlp
from initlab.bench.train import (
    DTYPES,
    Run,
    as_dataset,
    few_threads,
    progress_bar,
    train,
    train_stacked,
)
from initlab.doctor.monitor import Monitor
from initlab.initializers.apply import init_model
from initlab.initializers.course import initialize_parameters
from initlab.initializers.registry import Spec, get

InitStyle = Literal["course", "model"]


# ---------------------------------------------------------------------------- results
MONITOR_STATS = (
    "rms",
    "grad_output",
    "grad_weight",
    "grad_ratio",
    "weight_norm",
    "zeros",
    "saturated",
    "dead_fraction",
)
"""The per-layer statistics a monitored comparison keeps (see :mod:`initlab.doctor`):
activation ``rms`` of each weight layer's output, ``grad_output = ||dL/dy||``, ``grad_weight =
||dL/dW||``, ``grad_ratio = ||dL/dW|| / ||W||``, ``weight_norm = ||W||`` and the fractions of
``zeros``, ``saturated`` outputs and ``dead_fraction`` units of the rows the doctor reports."""


@dataclass
class MonitorSeries:
    """What an :class:`initlab.Monitor` recorded during one run: at each recorded iteration
    (``0, every, 2 every, ...`` before the last update), one value per weight layer of each
    statistic in :data:`MONITOR_STATS` (``None`` where not measured, e.g. gradients at the
    iteration a run diverged), and the doctor's verdict kinds."""

    every: int
    iterations: list[int]
    stats: dict[str, dict[str, list[float | None]]]
    verdicts: list[list[str]] = field(default_factory=list)

    @classmethod
    def from_monitor(cls, monitor: Monitor) -> MonitorSeries:
        """Copy the per-layer series out of ``monitor`` (its records can then be dropped)."""
        stats = {stat: monitor.series(stat) for stat in MONITOR_STATS}
        verdicts = [list(d.kinds) for d in monitor.history]
        return cls(monitor.every, list(monitor.iterations), stats, verdicts)

    @property
    def layers(self) -> list[str]:
        """The weight layers, in forward order."""
        return list(self.stats.get("rms", {}))

    def series(self, stat: str = "rms") -> dict[str, list[float | None]]:
        """``{layer: [value at each recorded iteration]}``, like :meth:`initlab.Monitor.series`."""
        check_choice("stat", stat, MONITOR_STATS)
        return self.stats.get(stat, {})

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON: non-finite numbers become the strings ``"inf"``, ``"-inf"``, ``"nan"``."""
        stats = {stat: {layer: [_json_float(v) for v in values] for layer, values in by.items()}
                 for stat, by in self.stats.items()}  # fmt: skip
        return {"every": self.every, "iterations": list(self.iterations), "stats": stats,
                "verdicts": [list(v) for v in self.verdicts]}  # fmt: skip

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MonitorSeries:
        stats = {stat: {layer: [None if v is None else float(v) for v in values]
                        for layer, values in by.items()}
                 for stat, by in data.get("stats", {}).items()}  # fmt: skip
        return cls(int(data["every"]), [int(i) for i in data.get("iterations", [])], stats,
                   [list(v) for v in data.get("verdicts", [])])  # fmt: skip


def _json_float(value: float | None) -> float | str | None:
    if value is None or math.isfinite(value):
        return value
    return str(value)


@dataclass
class Comparison:
    """The runs of :func:`compare`; ``str()`` is the results table. ``monitors``: the
    :class:`MonitorSeries` of each monitored run, by ``(scheme, seed)`` (empty unless
    ``compare(..., monitor_every=k)``); :meth:`monitor` looks one up."""

    runs: list[Run]
    config: dict[str, Any] = field(default_factory=dict)
    dataset: Dataset | None = field(default=None, repr=False)
    monitors: dict[tuple[str, int], MonitorSeries] = field(default_factory=dict, repr=False)

    _HEADERS = ("scheme", "seed", "final loss", "train acc", "test acc", "status", "seconds")

    def table(self) -> str:
        """scheme, seed, final loss, train accuracy, test accuracy, status, seconds."""
        return format_table(self._HEADERS, [r.row() for r in self.runs])

    def __str__(self) -> str:
        return self.table()

    def __getitem__(self, scheme: str) -> Run:
        for run in self.runs:
            if run.scheme == scheme:
                return run
        raise KeyError(f"no run for scheme {scheme!r}; have {[r.scheme for r in self.runs]}")

    def monitor(self, scheme: str, seed: int | None = None) -> MonitorSeries:
        """The :class:`MonitorSeries` of ``scheme`` (and ``seed``; default its first run)."""
        for run in self.runs:
            if run.scheme == scheme and (seed is None or run.seed == seed):
                key = (run.scheme, int(run.seed or 0))
                if key in self.monitors:
                    return self.monitors[key]
        raise KeyError(
            f"no monitor data for scheme {scheme!r}"
            + ("" if seed is None else f" seed {seed}")
            + "; monitored runs: "
            + (", ".join(f"{s} (seed {d})" for s, d in self.monitors) or "none (pass "
               "monitor_every=k to compare)")
        )  # fmt: skip

    def to_dict(self, history: bool = True) -> dict[str, Any]:
        out = {"config": dict(self.config), "runs": [r.to_dict(history) for r in self.runs]}
        if self.monitors:
            out["monitor"] = _monitor_records(self)
        return out

    def history_csv(self) -> str:
        """Long-format CSV: one row per run and logged iteration."""
        rows = []
        for run in self.runs:
            for row in run.history.rows():
                rows.append({"scheme": run.scheme, "seed": run.seed, **row})
        columns: list[str] = []
        for row in rows:
            columns.extend(k for k in row if k not in columns)
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns or ["scheme", "seed", "iteration"])
        writer.writeheader()
        writer.writerows(rows)
        return buffer.getvalue()

    def save(self, out: str | os.PathLike[str], force: bool = False) -> str:
        """Write ``results.json`` (runs with their histories), ``history.csv``, the trained
        weights (``models/run-<k>.pt``) and, for a monitored comparison, ``monitor.json`` (one
        :meth:`MonitorSeries.to_dict` per run, with its scheme and seed) to folder ``out``;
        returns the folder.

        Plots and ``report.html``: :func:`initlab.report.write_report`.
        """
        out = prepare_out(out, force=force, resume=True)
        _save(self, out)
        return out

    @classmethod
    def load(cls, out: str | os.PathLike[str]) -> Comparison:
        """Read a comparison saved by :meth:`save` (weights included where present)."""
        path = os.path.join(os.fspath(out), "results.json")
        with open(path) as handle:
            data = json.load(handle)
        config = data.get("config", {})
        runs = []
        for k, item in enumerate(data.get("runs", [])):
            run = Run.from_dict(item)
            weights = os.path.join(os.fspath(out), "models", f"run-{k}.pt")
            if os.path.exists(weights) and config.get("layer_dims"):
                model = mlp(config["layer_dims"], config["activation"], config["output"],
                            config.get("dropout", 0.0))  # fmt: skip
                state = torch.load(weights, weights_only=True)
                model.to(next(iter(state.values())).dtype)
                model.load_state_dict(state)
                run.model = model
            runs.append(run)
        return cls(runs, config, monitors=_load_monitors(out, config, runs))


def _monitor_records(comparison: Comparison) -> list[dict[str, Any]]:
    records = []
    for run in comparison.runs:
        key = (run.scheme, int(run.seed or 0))
        if key in comparison.monitors:
            records.append({"scheme": run.scheme, "seed": run.seed,
                            **comparison.monitors[key].to_dict()})  # fmt: skip
    return records


def _load_monitors(
    out: str | os.PathLike[str], config: dict[str, Any], runs: list[Run]
) -> dict[tuple[str, int], MonitorSeries]:
    """``monitor.json`` of a monitored comparison, for the runs in ``results.json`` (a file
    left by an earlier, differently monitored comparison in a ``--force``d folder is ignored)."""
    every = config.get("monitor_every")
    path = os.path.join(os.fspath(out), "monitor.json")
    if not every or not os.path.exists(path):
        return {}
    with open(path) as handle:
        data = json.load(handle)
    wanted = {(r.scheme, int(r.seed or 0)) for r in runs}
    monitors = {}
    for item in data.get("runs", []):
        key = (str(item["scheme"]), int(item["seed"] or 0))
        if key in wanted and item.get("every") == every:
            monitors[key] = MonitorSeries.from_dict(item)
    return monitors


def _save(comparison: Comparison, out: str) -> None:
    os.makedirs(os.path.join(out, "models"), exist_ok=True)
    for k, run in enumerate(comparison.runs):
        if run.model is not None:
            buffer = io.BytesIO()
            torch.save(run.model.state_dict(), buffer)
            atomic_write(os.path.join(out, "models", f"run-{k}.pt"), buffer.getvalue())
    if comparison.monitors:  # before results.json: a run listed there has its series saved
        text = json.dumps({"every": comparison.config.get("monitor_every"),
                           "runs": _monitor_records(comparison)})  # fmt: skip
        atomic_write(os.path.join(out, "monitor.json"), text)
    results = [r.to_dict(history=True) for r in comparison.runs]
    text = json.dumps({"config": comparison.config, "runs": results}, indent=1)
    atomic_write(os.path.join(out, "results.json"), text)
    atomic_write(os.path.join(out, "history.csv"), comparison.history_csv())


# ---------------------------------------------------------------------------- compare
def _member(
    scheme: Spec, seed: int, layer_dims: Sequence[int], activation: Any, output: str,
    dropout: float, dtype: torch.dtype, init_style: str,
) -> MLP:  # fmt: skip
    model = mlp(layer_dims, activation, output, dropout).to(dtype)
    if init_style == "course":
        load_parameters(model, initialize_parameters(layer_dims, scheme, seed=seed))
    else:
        init_model(model, scheme, seed=seed)
    return model


def compare(
    schemes: Sequence[Spec] = CLASSIC_SCHEMES,
    data: Dataset | str | Sequence[Any] = "circles",
    layer_dims: Sequence[int] | None = None,
    *,
    activation: str | Sequence[str] = "relu",
    output: str | None = None,
    dropout: float = 0.0,
    init_style: InitStyle = "course",
    seeds: int | Sequence[int] = 3,
    optimizer: str = "gd",
    lr: float = 0.01,
    iterations: int = 15000,
    batch_size: int | None = None,
    l2: float = 0.0,
    clip_norm: float | None = None,
    clip_value: float | None = None,
    clip_adaptive: float | None = None,
    dtype: str = "float64",
    log_every: int | None = None,
    group_size: int = 64,
    monitor_every: int | None = None,
    out: str | os.PathLike[str] | None = None,
    force: bool = False,
    resume: bool = False,
    progress: bool = True,
) -> Comparison:
    """Train one MLP per (scheme, seed) on ``data`` and compare them.

    Defaults are the classic course experiment: schemes zeros, ``random:scale=10`` and he on
    the circles data, ``layer_dims = (2, 10, 5, 1)`` with ReLU and a sigmoid output, 15000
    iterations of full-batch gradient descent at ``lr = 0.01`` in float64. ``layer_dims``
    defaults to ``(features, 10, 5, outputs)`` for other data (1 sigmoid output for two
    classes, else a softmax over the classes).

    ``init_style="course"`` draws weights exactly as the course's ``initialize_parameters``
    (``np.random.seed(seed)``, ``randn * factor`` layer by layer, He's ``sqrt(2 / n[l-1])`` on
    every layer); ``"model"`` uses :func:`initlab.init_model` (activation-aware gains, one
    stream per parameter, so it matches ``initlab.train(model, data, init=scheme, seed=seed)``).
    Other options: see :func:`initlab.train`. Runs of activations the stacked trainer does
    not cover (selu, gelu, silu, elu) train one at a time.

    ``monitor_every=k`` also records an :class:`initlab.Monitor` every ``k`` iterations of each
    run (:class:`MonitorSeries` in :attr:`Comparison.monitors`, ``monitor.json`` in ``out``,
    plotted by :func:`initlab.report.write_report`). Hooks cannot watch the batched model, so
    monitored runs train one at a time with ``initlab.train(model, ..., monitor=Monitor(model,
    every=k))``: slower (the classic comparison: 1.0-1.3 s batched, 16-17 s with ``k = 100``
    on a busy 2-core CPU; training one run at a time is most of it, recording adds about 10%
    at ``k = 100``, 50% at ``k = 10`` and 7x at ``k = 1``). The math is the
    same: a monitored run equals its batched twin to rounding (float64: relative 1e-10 over
    a short run); a chaotic run such as ``random:scale=10`` can amplify that rounding over
    thousands of steps, as any change of summation order does. ``seconds`` is then each run's
    own wall time. Runs are saved after each one, and ``resume`` keeps working (the saved
    runs must have been monitored with the same ``k``).
    """
    if isinstance(schemes, str) or not isinstance(schemes, Sequence) or not schemes:
        raise TypeError(f"schemes must be a non-empty list of scheme specs; got {schemes!r}")
    labels = [str(get(s)) if not isinstance(s, str) else s for s in schemes]
    for s in schemes:
        get(s)
    seed_list = [seeds] if isinstance(seeds, int) else list(seeds)
    if not seed_list:
        raise ValueError("seeds must hold at least one seed")
    for i, s in enumerate(seed_list):
        check_number(f"seeds[{i}]", s, minimum=0, integer=True)
    check_choice("init_style", init_style, ("course", "model"))
    check_choice("dtype", dtype, tuple(DTYPES))
    group_size = int(check_number("group_size", group_size, minimum=1, integer=True))
    if monitor_every is not None:
        monitor_every = int(check_number("monitor_every", monitor_every, minimum=1, integer=True))
    dataset = as_dataset(data)
    n_classes = max(dataset.n_classes, 2)
    if layer_dims is None:
        layer_dims = (dataset.n_features, 10, 5, 1 if n_classes == 2 else n_classes)
    layer_dims = [int(check_number(f"layer_dims[{i}]", d, minimum=1, integer=True))
                  for i, d in enumerate(layer_dims)]  # fmt: skip
    if len(layer_dims) < 2:
        raise ValueError(f"layer_dims needs at least 2 sizes; got {layer_dims}")
    if layer_dims[0] != dataset.n_features:
        raise ValueError(
            f"layer_dims starts with {layer_dims[0]} inputs but dataset {dataset.name!r} has "
            f"{dataset.n_features} features"
        )
    if output is None:
        output = "sigmoid" if layer_dims[-1] == 1 else "softmax"
    torch_dtype = DTYPES[dtype]
    # Validate the architecture and options once, before any training.
    probe = StackedMLP(layer_dims, 1, activation, output, dropout, torch_dtype)
    from initlab.bench.train import check_options

    check_options(optimizer, lr, iterations, batch_size, l2, clip_norm, clip_value,
                  clip_adaptive, log_every, 0.9)  # fmt: skip
    config = {
        "schemes": labels, "seeds": seed_list, "data": dataset.name,
        "layer_dims": layer_dims, "activation": list(probe.activations), "output": output,
        "dropout": float(dropout), "init_style": init_style, "optimizer": optimizer,
        "lr": lr, "iterations": iterations, "batch_size": batch_size, "l2": l2,
        "clip_norm": clip_norm, "clip_value": clip_value, "clip_adaptive": clip_adaptive,
        "dtype": dtype, "monitor_every": monitor_every,
    }  # fmt: skip
    plan = [(label, spec, seed) for label, spec in zip(labels, schemes, strict=True)
            for seed in seed_list]  # fmt: skip
    done: dict[tuple[str, int], Run] = {}
    monitors: dict[tuple[str, int], MonitorSeries] = {}
    if out is not None:
        out = prepare_out(out, force=force, resume=resume)
        if resume and os.path.exists(os.path.join(out, "results.json")):
            previous = Comparison.load(out)
            # schemes and seeds may grow; every other setting must be the same
            changed = sorted(k for k in config if k not in ("schemes", "seeds")
                             and previous.config.get(k) != config[k])  # fmt: skip
            if changed:
                raise ValueError(
                    f"cannot resume {out}: it was made with different settings "
                    f"({', '.join(changed)})"
                )
            done = {(r.scheme, int(r.seed or 0)): r for r in previous.runs}
            monitors = previous.monitors
            if monitor_every is not None:  # a run whose series was lost trains again
                done = {key: run for key, run in done.items() if key in monitors}
    todo = [p for p in plan if (p[0], p[2]) not in done]
    options = dict(optimizer=optimizer, lr=lr, iterations=iterations, batch_size=batch_size,
                   l2=l2, clip_norm=clip_norm, clip_value=clip_value,
                   clip_adaptive=clip_adaptive, log_every=log_every)  # fmt: skip
    finished = dict(done)

    def ordered() -> list[Run]:
        return [finished[(label, seed)] for label, _, seed in plan if (label, seed) in finished]

    def result() -> Comparison:
        runs = ordered()
        kept = {(r.scheme, int(r.seed or 0)) for r in runs}
        return Comparison(runs, config, dataset, {k: v for k, v in monitors.items() if k in kept})

    def keep(label: str, seed: int, run: Run) -> None:
        run.config.update({"init_style": init_style})
        finished[(label, seed)] = run

    # Tiny nets are bound by per-op overhead, where one thread is fastest.
    small = min(group_size, len(plan)) * len(dataset.x_train) * sum(layer_dims) < 2_000_000
    with (
        progress_bar(progress, len(todo) * iterations, "compare") as advance,
        few_threads(1 if small else None),
    ):
        for start in range(0, len(todo), group_size):
            group = todo[start : start + group_size]
            models = [_member(spec, seed, layer_dims, activation, output, dropout, torch_dtype,
                              init_style) for _, spec, seed in group]  # fmt: skip
            if probe.fast and monitor_every is None:
                stacked = StackedMLP.from_models(models)

                def step_progress(k: int = 1, size: int = len(group)) -> None:
                    advance(k * size)

                runs = train_stacked(stacked, dataset, labels=[g[0] for g in group],
                                     seeds=[g[2] for g in group], advance=step_progress,
                                     **options)  # fmt: skip
                for (label, _, seed), run in zip(group, runs, strict=True):
                    keep(label, seed, run)
                if out is not None:
                    _save(result(), out)
                continue
            for (label, _, seed), model in zip(group, models, strict=True):
                monitor = None if monitor_every is None else Monitor(model, every=monitor_every)
                with monitor if monitor is not None else contextlib.nullcontext():
                    run = train(model, dataset, init=None, seed=seed, progress=False,
                                output=output, monitor=monitor, **options)  # fmt: skip
                run.scheme = label
                if monitor is not None:
                    monitors[(label, seed)] = MonitorSeries.from_monitor(monitor)
                keep(label, seed, run)
                advance(iterations)
                if out is not None:  # one run at a time is slow: save each
                    _save(result(), out)
    return result()
