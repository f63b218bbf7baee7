"""``compare``: train one net per scheme (and seed) on the same data, batched, and store results.

All runs of a comparison share an architecture, so they train together as one
:class:`~initlab.nets.StackedMLP` (groups of at most ``group_size`` members), each member
independent (own init, seed, clipping norm, loss and divergence). With ``out=DIR`` every
finished group is saved at once (atomically; :mod:`initlab.bench.store`), and ``resume=True``
skips the runs already saved there, so an interrupted comparison picks up where it stopped.

With ``monitor_every=k`` each run also records an :class:`initlab.Monitor` every ``k``
iterations (activation rms, gradient norms, ... per weight layer; :class:`MonitorSeries`).
Module hooks cannot see inside a :class:`~initlab.nets.StackedMLP`, so monitored runs train one
at a time with :func:`initlab.train` (slower; same math, see :func:`compare`).
"""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from initlab._core.files import check_outputs, clear_outputs, prepare_out
from initlab._core.locks import folder_lock
from initlab._core.memory import check_fits
from initlab._core.progress import progress_bar
from initlab._core.threads import few_threads
from initlab._core.validation import check_choice, check_number, check_seed
from initlab.bench import store
from initlab.bench.choices import CLASSIC_SCHEMES
from initlab.bench.comparison import MONITOR_STATS, Comparison, MonitorSeries, save_to
from initlab.bench.dataset import Dataset
from initlab.bench.inputs import as_dataset
from initlab.bench.nets import MLP, StackedMLP, load_parameters, mlp
from initlab.bench.options import RunOptions, merge_options
from initlab.bench.results import Run
from initlab.bench.stacked import train_stacked
from initlab.bench.train import DTYPES, train
from initlab.doctor.monitor import Monitor
from initlab.initializers.apply import init_model
from initlab.initializers.course import initialize_parameters
from initlab.initializers.registry import Spec, get

InitStyle = Literal["course", "model"]
Key = tuple[str, int]


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
    options: RunOptions | None = None,
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

    The run options (optimizer, lr, iterations, batch size, L2, dropout, clipping, dtype,
    ...) may come as keywords, as here, or as one ``options=RunOptions(...)``
    (:class:`initlab.RunOptions`; then leave those keywords at their defaults).

    With ``out``: the folder is locked while this call writes it (a second process writing
    the same folder is refused; :func:`initlab._core.locks.folder_lock`), ``force=True``
    first removes the previous experiment's initlab files, ``results.json`` carries a
    fingerprint of the data (:meth:`~initlab.bench.datasets.Dataset.fingerprint`), and
    ``resume=True`` refuses different settings or data, naming what changed, before anything
    is written. A resume merges: the saved runs this call does not ask for stay in the files
    and in the returned comparison (after the requested runs), and ``config["schemes"]`` and
    ``config["seeds"]`` list every scheme and seed in the folder. See
    :mod:`initlab.bench.store`.

    (Long only by its keywords and this text: the work is in ``_Plan`` and ``_Session``.)
    """

    opts = merge_options(options, "compare", optimizer=optimizer, lr=lr, iterations=iterations,
                         batch_size=batch_size, l2=l2, dropout=dropout, clip_norm=clip_norm,
                         clip_value=clip_value, clip_adaptive=clip_adaptive,
                         log_every=log_every,
                         dtype=None if dtype == "float64" else dtype)  # fmt: skip
    opts = opts.replace(dtype=opts.dtype or "float64")
    plan = _Plan.build(schemes, data, layer_dims, activation, output, init_style, seeds, opts,
                       group_size, monitor_every)  # fmt: skip
    if out is None:
        return _Session(plan, None, progress).run()
    out = prepare_out(out, force=force, resume=resume, create=False)
    with folder_lock(out):  # every check below, then the writes, under the lock
        prepare_out(out, force=force, resume=resume, create=False)
        session = _Session(plan, out, progress)
        resuming = resume and os.path.exists(os.path.join(out, "results.json"))
        if resuming:
            session.resume()
        elif resume and os.path.exists(os.path.join(out, "results.csv")):
            raise ValueError(
                f"cannot resume {out}: it holds a sweep (results.csv), not a comparison; use "
                f"another --out or --force"
            )
        check_outputs(out)
        if force and not resuming:
            clear_outputs(out)
        os.makedirs(os.path.join(out, "models"), exist_ok=True)
        return session.run()


@dataclass
class _Plan:
    """A validated comparison: the data, the architecture, the runs ``(label, spec, seed)``
    in order, the options and the settings written to ``results.json``."""

    runs: list[tuple[str, Spec, int]]
    dataset: Dataset
    layer_dims: list[int]
    activation: str | list[str]
    output: str
    init_style: str
    opts: RunOptions
    group_size: int
    monitor_every: int | None
    fast: bool
    config: dict[str, Any]

    @classmethod
    def build(
        cls, schemes: Any, data: Any, layer_dims: Any, activation: Any, output: str | None,
        init_style: str, seeds: Any, opts: RunOptions, group_size: Any, monitor_every: Any,
    ) -> _Plan:  # fmt: skip
        if isinstance(schemes, str) or not isinstance(schemes, Sequence) or not schemes:
            raise TypeError(f"schemes must be a non-empty list of scheme specs; got {schemes!r}")
        labels = [str(get(s)) if not isinstance(s, str) else s for s in schemes]
        for s in schemes:
            get(s)
        check_choice("init_style", init_style, ("course", "model"))
        seed_list = _seeds(seeds, init_style)
        group_size = int(check_number("group_size", group_size, minimum=1, integer=True))
        if monitor_every is not None:
            monitor_every = int(check_number("monitor_every", monitor_every, minimum=1,
                                             integer=True))  # fmt: skip
        activation = _activation(activation)
        dataset = as_dataset(data)
        dims = _layer_dims(layer_dims, dataset)
        if output is None:
            output = "sigmoid" if dims[-1] == 1 else "softmax"
        runs = [(label, spec, seed) for label, spec in zip(labels, schemes, strict=True)
                for seed in seed_list]  # fmt: skip
        _check_memory(dims, min(group_size, len(runs)), len(dataset.x_train), opts)
        # Validate the architecture once, before any training.
        probe = StackedMLP(
            dims, 1, activation, output, opts.dropout, DTYPES[opts.dtype or "float64"]
        )
        config = {
            "schemes": labels, "seeds": seed_list, "data": dataset.name, "layer_dims": dims,
            "activation": list(probe.activations), "output": output, "init_style": init_style,
            **opts.to_dict(), "monitor_every": monitor_every,
            "data_fingerprint": dataset.fingerprint(),
        }  # fmt: skip
        return cls(runs, dataset, dims, activation, output, init_style, opts, group_size,
                   monitor_every, probe.fast, config)  # fmt: skip

    def member(self, spec: Spec, seed: int) -> MLP:
        """A fresh net of the plan's architecture, initialized by ``spec`` with ``seed``."""
        model = mlp(self.layer_dims, self.activation, self.output, self.opts.dropout)
        model = model.to(DTYPES[self.opts.dtype or "float64"])
        if self.init_style == "course":
            load_parameters(model, initialize_parameters(self.layer_dims, spec, seed=seed))
        else:
            init_model(model, spec, seed=seed)
        return model


def _seeds(seeds: Any, init_style: str) -> list[int]:
    if isinstance(seeds, int | float) and not isinstance(seeds, bool):
        seed_list = [seeds]
    elif isinstance(seeds, Sequence) and not isinstance(seeds, str):
        seed_list = list(seeds)
    else:
        raise TypeError(f"seeds must be an integer or a list of integers; got {seeds!r}")
    if not seed_list:
        raise ValueError("seeds must hold at least one seed")
    out = [check_seed(s, f"seeds[{i}]") for i, s in enumerate(seed_list)]
    if init_style == "course" and max(out) >= 2**32:
        raise ValueError(
            f"init_style='course' draws with numpy.random.RandomState, whose seeds are below "
            f"2**32; got {max(out)} (use init_style='model' for larger seeds)"
        )
    if len(set(out)) != len(out):
        raise ValueError(f"seeds must be distinct; got {out}")
    return out


def _activation(activation: Any) -> str | list[str]:
    if isinstance(activation, str):
        return activation
    if isinstance(activation, Sequence) and all(isinstance(a, str) for a in activation):
        return list(activation)
    raise TypeError(
        f"activation must be a name (like 'relu') or a list of names, one per hidden layer; "
        f"got {activation!r}"
    )


def _layer_dims(layer_dims: Any, dataset: Dataset) -> list[int]:
    n_classes = max(dataset.n_classes, 2)
    if layer_dims is None:
        layer_dims = (dataset.n_features, 10, 5, 1 if n_classes == 2 else n_classes)
    if isinstance(layer_dims, str) or not isinstance(layer_dims, Sequence):
        raise TypeError(
            f"layer_dims must be a list of layer sizes like [2, 10, 5, 1]; got {layer_dims!r}"
        )
    dims = [int(check_number(f"layer_dims[{i}]", d, minimum=1, integer=True))
            for i, d in enumerate(layer_dims)]  # fmt: skip
    if len(dims) < 2:
        raise ValueError(f"layer_dims needs at least 2 sizes; got {dims}")
    if dims[0] != dataset.n_features:
        raise ValueError(
            f"layer_dims starts with {dims[0]} inputs but dataset {dataset.name!r} has "
            f"{dataset.n_features} features"
        )
    return dims


def _check_memory(dims: list[int], members: int, n: int, opts: RunOptions) -> None:
    """Refuse a comparison whose stacked group cannot fit: weights, gradients and optimizer
    state (up to 4 copies of the parameters), and about 4 activation buffers per layer."""
    itemsize = 4 if opts.dtype == "float32" else 8
    params = sum((a + 1) * b for a, b in itertools.pairwise(dims))
    rows = min(n, opts.batch_size or n) + n  # a mini-batch workspace and the full-data one
    estimate = members * (4 * params + 4 * rows * (sum(dims) + len(dims))) * itemsize
    check_fits(estimate, f"a group of {members} nets with layer_dims {dims} on {n} rows")


class _Session:
    """Runs a :class:`_Plan`: what is done (resumed), what is left, training in groups, and
    saving after each group (or each run, when runs train one at a time)."""

    def __init__(self, plan: _Plan, out: str | None, progress: bool) -> None:
        self.plan, self.out, self.progress = plan, out, progress
        self.finished: dict[Key, Run] = {}
        self.monitors: dict[Key, MonitorSeries] = {}
        self.written: dict[str, str] = {}
        self.others: dict[Key, Run] = {}  # saved runs this plan does not ask for: kept

    def resume(self) -> None:
        """Take over the runs saved in ``out`` (after checking that settings and data match;
        nothing is written before): the runs this plan wants are reused, or trained again
        where their model or monitor series was lost; the others are kept as saved."""
        out, config = str(self.out), self.plan.config
        previous, entries = store.read_results(out)
        changed = store.settings_changes(previous, config)
        if changed:
            raise ValueError(
                f"cannot resume {out}: it was made with different settings ({'; '.join(changed)})"
            )
        data = store.data_changes(previous.get("data_fingerprint"), config["data_fingerprint"])
        if data:
            raise ValueError(
                f"cannot resume {out}: the data differs from the data it was made with "
                f"({'; '.join(data)})"
            )
        runs = [store.run_from_entry(e) for e in entries]
        have = store.attach_models(out, previous, entries, runs, strict=False)
        from initlab.bench.comparison import _load_monitors

        monitors = _load_monitors(out, previous, runs)
        wanted = {(label, seed) for label, _, seed in self.plan.runs}
        for entry, run, ok in zip(entries, runs, have, strict=True):
            key = (run.scheme, int(run.seed or 0))
            if key not in wanted:
                self.others[key] = run
            elif not ok or (self.plan.monitor_every is not None and key not in monitors):
                continue
            else:
                self.finished[key] = run
            if ok and isinstance(entry.get("run_id"), str) and entry.get("model_sha256"):
                self.written[entry["run_id"]] = entry["model_sha256"]
            if key in monitors:
                self.monitors[key] = monitors[key]

    def result(self) -> Comparison:
        """The runs of the plan that are done, in its order, then the kept saved runs."""
        runs = [self.finished[(label, seed)] for label, _, seed in self.plan.runs
                if (label, seed) in self.finished]  # fmt: skip
        runs += list(self.others.values())
        kept = {(r.scheme, int(r.seed or 0)) for r in runs}
        monitors = {k: v for k, v in self.monitors.items() if k in kept}
        config = dict(self.plan.config)
        if self.others:
            config["schemes"] = list(dict.fromkeys([*config["schemes"],
                                                    *(s for s, _ in self.others)]))  # fmt: skip
            config["seeds"] = list(dict.fromkeys([*config["seeds"],
                                                  *(d for _, d in self.others)]))  # fmt: skip
        return Comparison(runs, config, self.plan.dataset, monitors)

    def save(self) -> None:
        if self.out is not None:
            save_to(self.result(), self.out, self.written)

    def keep(self, label: str, seed: int, run: Run) -> None:
        run.config.update({"init_style": self.plan.init_style})
        self.finished[(label, seed)] = run

    def run(self) -> Comparison:
        plan = self.plan
        todo = [p for p in plan.runs if (p[0], p[2]) not in self.finished]
        iterations = plan.opts.iterations
        # Tiny nets are bound by per-op overhead, where one thread is fastest.
        small = (min(plan.group_size, len(plan.runs)) * len(plan.dataset.x_train)
                 * sum(plan.layer_dims) < 2_000_000)  # fmt: skip
        with (
            progress_bar(self.progress, len(todo) * iterations, "compare") as advance,
            few_threads(1 if small else None),
        ):
            for start in range(0, len(todo), plan.group_size):
                group = todo[start : start + plan.group_size]
                models = [plan.member(spec, seed) for _, spec, seed in group]
                if plan.fast and plan.monitor_every is None:
                    self._train_group(group, models, advance)
                else:
                    self._train_one_by_one(group, models, advance)
        return self.result()

    def _train_group(self, group: list[Any], models: list[MLP], advance: Any) -> None:
        stacked = StackedMLP.from_models(models)

        def step_progress(k: int = 1, size: int = len(group)) -> None:
            advance(k * size)

        opts = self.plan.opts.replace(dtype=None, dropout=0.0)  # the model's own
        runs = train_stacked(stacked, self.plan.dataset, labels=[g[0] for g in group],
                             seeds=[g[2] for g in group], advance=step_progress,
                             options=opts)  # fmt: skip
        for (label, _, seed), run in zip(group, runs, strict=True):
            self.keep(label, seed, run)
        self.save()

    def _train_one_by_one(self, group: list[Any], models: list[MLP], advance: Any) -> None:
        plan = self.plan
        opts = plan.opts.replace(dtype=None, dropout=0.0)  # the model's own
        for (label, _, seed), model in zip(group, models, strict=True):
            every = plan.monitor_every
            monitor = None if every is None else Monitor(model, every=every)
            with monitor if monitor is not None else contextlib.nullcontext():
                run = train(model, plan.dataset, init=None, seed=seed, progress=False,
                            output=plan.output, monitor=monitor, options=opts)  # fmt: skip
            run.scheme = label
            if monitor is not None:
                self.monitors[(label, seed)] = MonitorSeries.from_monitor(monitor)
            self.keep(label, seed, run)
            advance(plan.opts.iterations)
            self.save()  # one run at a time is slow: save each


__all__ = ["MONITOR_STATS", "Comparison", "MonitorSeries", "compare"]
