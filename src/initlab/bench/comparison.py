"""The result of :func:`initlab.compare`: :class:`Comparison` (runs, settings, data, monitor
series) and :class:`MonitorSeries`; saved to and read from a folder by
:mod:`initlab.bench.store`."""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from initlab._core.files import atomic_write, check_outputs, prepare_out
from initlab._core.locks import folder_lock
from initlab._core.table import format_table
from initlab._core.validation import check_choice
from initlab.bench import store
from initlab.bench.dataset import Dataset
from initlab.bench.results import Run
from initlab.doctor.monitor import Monitor

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
        weights (``models/run-<id>.pt``, one file per run named by its scheme and seed; see
        :mod:`initlab.bench.store`) and, for a monitored comparison, ``monitor.json`` (one
        :meth:`MonitorSeries.to_dict` per run, with its scheme and seed) to folder ``out``;
        returns the folder.

        The folder is locked while it is written (the lock of ``compare`` and ``sweep``).
        Plots and ``report.html``: :func:`initlab.report.write_report`.
        """
        out = prepare_out(out, force=force, resume=True, create=False)
        with folder_lock(out):
            check_outputs(out)
            save_to(self, out, {})
        return out

    @classmethod
    def load(cls, out: str | os.PathLike[str]) -> Comparison:
        """Read a comparison saved by :meth:`save` (weights included where present and
        intact). A damaged or foreign folder is a one-line ``ValueError`` naming the file."""
        out = os.fspath(out)
        config, entries = store.read_results(out)
        runs = [store.run_from_entry(e) for e in entries]
        store.attach_models(out, config, entries, runs, strict=True)
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
    out: str, config: dict[str, Any], runs: list[Run]
) -> dict[tuple[str, int], MonitorSeries]:
    """``monitor.json`` of a monitored comparison, for the runs in ``results.json`` (a file
    left by an earlier, differently monitored comparison is ignored)."""
    every = config.get("monitor_every")
    path = os.path.join(out, "monitor.json")
    if not every or not os.path.exists(path):
        return {}
    data = store.read_json(path)
    items = data.get("runs", []) if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise ValueError(f"{path}: expected an object with a list of 'runs'")
    wanted = {(r.scheme, int(r.seed or 0)) for r in runs}
    monitors = {}
    for k, item in enumerate(items):
        try:
            key = (str(item["scheme"]), int(item["seed"] or 0))
            if key in wanted and item.get("every") == every:
                monitors[key] = MonitorSeries.from_dict(item)
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise ValueError(
                f"{path}: run {k} is malformed ({type(error).__name__}: {error})"
            ) from None
    return monitors


def save_to(comparison: Comparison, out: str, written: dict[str, str]) -> dict[str, str]:
    """Write the comparison's files into ``out``: model files first (named by run identity),
    then ``monitor.json``, then ``results.json`` (which lists the model hashes), then
    ``history.csv``. ``written`` (run id -> model SHA-256) skips models already on disk."""
    store.write_models(out, comparison.runs, written)
    if comparison.monitors:  # before results.json: a run listed there has its series saved
        text = json.dumps({"every": comparison.config.get("monitor_every"),
                           "runs": _monitor_records(comparison)})  # fmt: skip
        atomic_write(os.path.join(out, "monitor.json"), text)
    entries = store.results_entries(comparison.runs, written)
    atomic_write(os.path.join(out, "results.json"),
                 json.dumps({"config": comparison.config, "runs": entries}, indent=1))  # fmt: skip
    atomic_write(os.path.join(out, "history.csv"), comparison.history_csv())
    return written


__all__ = ["MONITOR_STATS", "Comparison", "MonitorSeries"]
