"""``sweep``: expand a spec into configs, train them in batched chunks, store one row per run.

Configs that share an architecture, data and optimizer train together as one ensemble
(:mod:`.engine`), in chunks of at most ``chunk`` members, on the ``local`` or ``ray`` backend
(:mod:`.backends`); each finished chunk is appended to the result store (:mod:`.store`) at
once, so ``resume=True`` after an interruption runs only the configs that are missing.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from initlab._core.locks import folder_lock
from initlab._core.table import format_table
from initlab._core.validation import check_choice, check_number
from initlab.bench.datasets import Dataset
from initlab.bench.sweep.backends import BACKENDS, run_local, run_ray
from initlab.bench.sweep.engine import FAST_ACTIVATIONS, Chunk, build_member
from initlab.bench.sweep.spec import AXES, Config, SweepSpec, arch_key, config_id, model_name
from initlab.bench.sweep.store import COLUMNS, ResultStore, fingerprint, read_csv, tensor_digest
from initlab.bench.train import as_dataset, progress_bar

DEFAULT_CHUNK = 64
MIN_RAY_CHUNK = 8  # fewest members a Ray task gets when the sweep picks the chunk size
_THREAD_WORK = 20_000_000  # below this (members x examples x parameters) one thread is fastest
# The loop engine's ops cover one member: below this (examples x parameters) one thread. The
# small CNN of benchmarks/sweep_speed.py (5e6) took 3.4 s on 2 threads, 7.4 s on one.
_LOOP_THREAD_WORK = 1_000_000


# ---------------------------------------------------------------------------- result
@dataclass
class SweepResult:
    """The runs of a sweep: one row (a dict with :data:`~.store.COLUMNS`) per config, in the
    spec's order. ``str()`` is a table of the swept axes and the main metrics."""

    rows: list[dict[str, Any]]
    spec: SweepSpec
    out: str | None = None
    files: list[str] = field(default_factory=list)

    @property
    def swept(self) -> list[str]:
        """The axes that take more than one value in the rows, in :data:`AXES` order."""
        return [a for a in AXES if len({json.dumps(r[a], default=str) for r in self.rows}) > 1]

    def column(self, name: str) -> list[Any]:
        """The values of one column, one per row."""
        check_choice("column", name, COLUMNS)
        return [r.get(name) for r in self.rows]

    def best(self, metric: str = "final_loss", n: int = 5) -> list[dict[str, Any]]:
        """The ``n`` finished runs with the lowest ``metric`` (highest for accuracies)."""
        check_choice("metric", metric, COLUMNS)
        rows = [r for r in self.rows if r.get(metric) is not None and r["status"] == "finished"]
        high = "accuracy" in metric
        return sorted(rows, key=lambda r: r[metric], reverse=high)[:n]

    def table(self, limit: int | None = 40) -> str:
        """Swept axes, status, final and best loss, accuracies (the first ``limit`` rows)."""
        axes = self.swept or ["scheme"]
        headers = [*axes, "status", "final loss", "best loss", "train acc", "test acc"]
        rows = []
        for r in self.rows[:limit] if limit else self.rows:
            status = r["status"] if r["status"] == "finished" else f"diverged at {r['diverged_at']}"
            rows.append([_short(r[a]) for a in axes]
                        + [status, r["final_loss"], r["best_loss"], r["train_accuracy"],
                           r["test_accuracy"]])  # fmt: skip
        text = format_table(headers, rows)
        if limit and len(self.rows) > limit:
            text += f"\n... {len(self.rows) - limit} more rows (results.csv has all of them)"
        return text

    def __str__(self) -> str:
        return self.table()

    def to_dict(self) -> dict[str, Any]:
        return {"spec": self.spec.to_dict(), "rows": [dict(r) for r in self.rows]}

    @classmethod
    def load(cls, out: str | os.PathLike[str]) -> SweepResult:
        """Read a sweep written to folder ``out`` (its ``sweep.json`` and ``results.csv``)."""
        out = os.fspath(out)
        path = os.path.join(out, "results.csv")
        if not os.path.exists(path):
            raise FileNotFoundError(f"{out} holds no sweep results (no results.csv)")
        spec_path = os.path.join(out, "sweep.json")
        data: dict[str, Any] = {}
        if os.path.exists(spec_path):
            with open(spec_path) as handle:
                data = json.load(handle)
        data = {k: v for k, v in data.items() if k != "model" or v is None}
        spec = SweepSpec.from_dict(data) if data else SweepSpec()
        return cls(read_csv(path), spec, out)


def _short(value: Any) -> Any:
    return json.dumps(value, sort_keys=True) if isinstance(value, dict) else value


# ---------------------------------------------------------------------------- planning
_STACKED_WORK = 5_000_000  # parameters x examples: above this the vmap engine is faster


def engine_for(spec: SweepSpec, config: Config, dataset: Dataset | None = None,
               seen: dict[Any, bool] | None = None) -> str:  # fmt: skip
    """``stacked`` (fused MLP), ``vmap`` or ``loop`` for one config. ``auto`` takes the fused
    stacked MLP only for small nets (parameters x examples < 5e6): measured on 2 cores, it is
    1.7x faster than vmap on the course MLP (64 configs) but 3.7x slower on a 64-128-128-10
    MLP on digits, where vmap's batched matmuls win. A model factory whose model has
    convolutions gets ``loop`` (:mod:`.loop`: vmapped convolutions become grouped ones, 2.3x
    slower on the CPU than a member-by-member loop), any other ``vmap``. ``seen`` caches
    whether an architecture has convolutions (the factory is called once per architecture)."""
    fast = spec.model is None and config["activation"] in FAST_ACTIVATIONS
    if spec.engine == "stacked" and not fast:
        what = "a model factory" if spec.model is not None else f"{config['activation']!r}"
        raise ValueError(
            f"engine='stacked' trains the built-in MLP with {', '.join(FAST_ACTIVATIONS)} "
            f"hidden layers; got {what} (use engine='vmap' or 'auto')"
        )
    if spec.engine in ("vmap", "loop"):
        return spec.engine
    if spec.model is not None and dataset is not None:
        seen = {} if seen is None else seen
        key = arch_key(config)
        if key not in seen:
            seen[key] = _has_convolutions(spec, config, dataset)
        return "loop" if seen[key] else "vmap"
    if fast and spec.engine == "auto" and dataset is not None:
        from initlab.bench.sweep.engine import layer_dims

        dims = layer_dims(spec, config, dataset)
        params = sum((dims[i] + 1) * dims[i + 1] for i in range(len(dims) - 1))
        if params * dataset.x_train.shape[0] >= _STACKED_WORK:
            return "vmap"
    return "stacked" if fast else "vmap"


def _has_convolutions(spec: SweepSpec, config: Config, dataset: Dataset) -> bool:
    """Whether the factory's model for ``config`` has a convolution layer: built once, on the
    meta device (no memory), or on the CPU when the factory cannot build there; the global
    RNG is left as it was."""
    import torch
    from torch import nn

    from initlab.bench.sweep.engine import factory_kwargs

    factory = spec.model
    kwargs = factory_kwargs(spec, config, dataset, factory)  # type: ignore[arg-type]
    model = None
    with torch.random.fork_rng(devices=[]):
        for device in ("meta", "cpu"):
            try:
                with torch.device(device):
                    model = factory(**kwargs)  # type: ignore[operator]
                break
            except Exception:  # a failing factory is reported by build_member
                continue
    return isinstance(model, nn.Module) and any(
        isinstance(m, nn.modules.conv._ConvNd) for m in model.modules()
    )


def plan_chunks(spec: SweepSpec, configs: Sequence[Config], datasets: Mapping[str, Dataset],
                chunk: int, threads: int | None = None) -> list[Chunk]:  # fmt: skip
    """Group configs by (engine, architecture, data, optimizer[, lr for the stacked engine])
    in order of first appearance, and cut each group into chunks of at most ``chunk``."""
    groups: dict[tuple[Any, ...], list[Config]] = {}
    seen: dict[Any, bool] = {}
    for config in configs:
        engine = engine_for(spec, config, datasets[config["data"]], seen)
        key = (engine, arch_key(config), config["optimizer"],
               config["lr"] if engine == "stacked" else None)  # fmt: skip
        groups.setdefault(key, []).append(config)
    chunks = []
    shared = dict(datasets)  # one object: the Ray backend ships it once
    for (engine, *_), members in groups.items():
        for start in range(0, len(members), chunk):
            part = members[start : start + chunk]
            chunks.append(Chunk(len(chunks), part, spec, shared, engine, threads))
    return chunks


def ray_chunk(configs: Sequence[Config], size: int, num_cpus: int | None) -> int:
    """Chunk size on Ray when none is given: ``size`` (64), or smaller so that the configs
    make at least one task per CPU (``num_cpus``, a running Ray's CPUs, or this machine's),
    but no fewer than :data:`MIN_RAY_CHUNK` members a task (Ray's per-task cost). One chunk
    of 32 configs on 2 CPUs would leave a CPU idle; two of 16 use both. The numbers do not
    depend on the chunk size (see :mod:`.ensemble`)."""
    cpus = num_cpus
    if cpus is None:
        import sys

        ray = sys.modules.get("ray")  # only a Ray that is already running is asked
        if ray is not None and ray.is_initialized():
            cpus = int(ray.cluster_resources().get("CPU", 1))
        else:
            cpus = os.cpu_count() or 1
    return max(1, min(size, max(MIN_RAY_CHUNK, -(-len(configs) // cpus))))


def _auto_threads(chunks: Sequence[Chunk]) -> None:
    """One thread for chunks small enough that per-op overhead dominates (local backend): an
    ensemble's ops cover all its members, a ``loop`` chunk's ops one member at a time."""
    for c in chunks:
        data = c.datasets[c.configs[0]["data"]]
        model = build_member(c.spec, c.configs[0], data)
        work = data.x_train.shape[0] * sum(p.numel() for p in model.parameters())
        if c.engine == "loop":
            c.threads = 1 if work < _LOOP_THREAD_WORK else None
        else:
            c.threads = 1 if len(c.configs) * work < _THREAD_WORK else None


def _fingerprints(spec: SweepSpec, datasets: Mapping[str, Dataset]) -> dict[str, str]:
    """The fingerprint of the runs on each data set, by name (see :mod:`.store`)."""
    import sys

    version = getattr(sys.modules.get("initlab"), "__version__", "?")  # loaded: it is our parent
    options = spec.settings()
    options["model"] = model_name(spec.model)
    source = None
    if callable(spec.model):
        import inspect

        try:
            with open(inspect.getfile(spec.model), "rb") as handle:
                source = handle.read().hex()
        except (TypeError, OSError):
            source = None
    by_data = {}
    for name, d in datasets.items():
        digest = tensor_digest(d.x_train, d.y_train, d.x_test, d.y_test)
        by_data[name] = fingerprint({"options": options, "model_source": source, "data": digest,
                                     "initlab": version})  # fmt: skip
    return by_data


def _coerce(spec: SweepSpec | Mapping[str, Any] | str | os.PathLike[str]) -> SweepSpec:
    if isinstance(spec, SweepSpec):
        return spec
    if isinstance(spec, Mapping):
        return SweepSpec.from_dict(spec)
    if isinstance(spec, str | os.PathLike):
        return SweepSpec.from_file(spec)
    raise TypeError(
        f"spec must be a SweepSpec, a dict or a .json/.yaml path; got {type(spec).__name__}"
    )


def _check_models(spec: SweepSpec, configs: Sequence[Config],
                  datasets: Mapping[str, Dataset]) -> None:  # fmt: skip
    """Build one model per architecture and run it on two examples: bad factories and shape
    mismatches fail before any training."""
    import torch

    from initlab.bench.train import DTYPES

    seen = set()
    for config in configs:
        key = arch_key(config)
        if key in seen:
            continue
        seen.add(key)
        data = datasets[config["data"]]
        model = build_member(spec, config, data).eval()  # eval: no draws from the global RNG
        x = data.x_train[:2].to(DTYPES[spec.dtype])
        try:
            with torch.no_grad():
                z = model(x)
        except Exception as error:
            where = dict(zip(("activation", "depth", "width", "data"), key, strict=True))
            raise ValueError(
                f"the model for {where} fails on input of shape {tuple(x.shape)}: "
                f"{type(error).__name__}: {error}"
            ) from None
        if not isinstance(z, torch.Tensor) or z.dim() != 2 or z.shape[0] != 2:
            raise ValueError(
                f"the model must return logits of shape (N, outputs); on input "
                f"{tuple(x.shape)} it returned "
                f"{tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__}"
            )


# ---------------------------------------------------------------------------- sweep
def sweep(
    spec: SweepSpec | Mapping[str, Any] | str | os.PathLike[str],
    *,
    out: str | os.PathLike[str] | None = None,
    resume: bool = False,
    force: bool = False,
    backend: str = "local",
    address: str | None = None,
    chunk: int | None = None,
    num_cpus: int | None = None,
    datasets: Mapping[str, Dataset | Sequence[Any]] | None = None,
    progress: bool = True,
) -> SweepResult:
    """Train every config of ``spec`` and return one row per run.

    ``spec``: a :class:`SweepSpec`, a dict (``{"scheme": ["he", "xavier"], "scale": [0.5, 1,
    2], "depth": [2, 8], "seed": [0, 1], "iterations": 500}``) or a ``.json``/``.yaml`` file.
    ``out``: a folder for ``results.csv``, ``results.parquet`` (with pyarrow) and
    ``sweep.json``, written as chunks finish, under the folder's lock (the one ``compare``
    takes: a second writer is refused); ``resume=True`` runs only the configs missing there
    and keeps every saved row, also of configs this spec does not list (returned after the
    spec's rows); it is refused before anything is written when the settings or the data
    differ (:mod:`.store`). ``force=True`` first removes the previous experiment's files.
    ``backend``: ``"local"`` or ``"ray"`` (``address`` of a cluster, else a local Ray with
    ``num_cpus`` CPUs, default all); ``chunk``: most configs per batched ensemble (default
    ``spec.chunk`` or 64). The numbers do not depend on the backend or the chunk size.
    ``datasets``: in-memory data by name (a :class:`Dataset` or ``(x, y[, x_test, y_test])``)
    for names on the ``data`` axis; other names load with :func:`initlab.datasets.load`.

        >>> result = sweep({"scale": [0.5, 2.0], "iterations": 20}, progress=False)
        >>> [r["status"] for r in result.rows]
        ['finished', 'finished']
    """
    spec = _coerce(spec)
    if isinstance(spec.model, str):
        raise TypeError(
            f"model {spec.model!r}: sweep() takes the factory itself (a callable); the CLI "
            f"loads FILE.py:FACTORY strings"
        )
    check_choice("backend", backend, BACKENDS)
    size = spec.chunk if chunk is None else chunk
    size = int(check_number("chunk", size if size is not None else DEFAULT_CHUNK, minimum=1,
                            integer=True))  # fmt: skip
    if num_cpus is not None:
        num_cpus = int(check_number("num_cpus", num_cpus, minimum=1, integer=True))
    if address is not None and backend != "ray":
        raise ValueError(f"address={address!r} is for backend='ray'; got backend={backend!r}")
    if resume and out is None:
        raise ValueError("resume=True needs out=DIR (the folder of the sweep to continue)")
    configs = spec.configs()
    given = dict(datasets or {})
    datasets = {}
    for config in configs:
        name = config["data"]
        if name not in datasets:
            datasets[name] = as_dataset(given.get(name, name))
    _check_models(spec, configs, datasets)
    by_data = _fingerprints(spec, datasets)
    prints = {config_id(c): by_data[c["data"]] for c in configs}
    with contextlib.ExitStack() as held:
        store = None
        if out is not None:
            held.enter_context(folder_lock(out))  # checks, then writes, under the lock
            store = ResultStore(out, spec.to_dict(), resume=resume, force=force,
                                settings=spec.settings(), data_fingerprints=by_data)  # fmt: skip
        done = store.done(prints) if store is not None else set()
        todo = [c for c in configs if config_id(c) not in done]
        chunks = plan_chunks(spec, todo, datasets, size)
        fresh: dict[str, dict[str, Any]] = {}
        if chunks:
            results: Iterator[tuple[int, list[dict[str, Any]]]]
            if backend == "ray":
                if chunk is None and spec.chunk is None:
                    chunks = plan_chunks(spec, todo, datasets, ray_chunk(todo, size, num_cpus))
                results = run_ray(chunks, address=address, num_cpus=num_cpus)
            else:
                _auto_threads(chunks)
                results = run_local(chunks)
            with progress_bar(progress, len(todo), f"sweep ({backend})") as advance:
                for _, rows in results:
                    for row in rows:
                        row["fingerprint"] = prints[row["config_id"]]
                        fresh[row["config_id"]] = row
                    if store is not None:
                        store.append(rows)
                    advance(len(rows))
        stored = {r["config_id"]: r for r in store.rows} if store is not None else {}
        ordered = [fresh.get(config_id(c)) or stored[config_id(c)] for c in configs]
        ordered += [r for cid, r in stored.items() if cid not in prints]  # kept, not asked for
        files = []
        if store is not None:
            files = ["results.csv", "sweep.json"] + (["results.parquet"] if store.has_parquet
                                                     else [])  # fmt: skip
        return SweepResult(ordered, spec, None if out is None else os.fspath(out), files)


__all__ = ["SweepResult", "SweepSpec", "plan_chunks", "sweep"]
