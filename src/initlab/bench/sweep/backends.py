"""Where chunks run: ``local`` (this process, one chunk after another) or ``ray`` (Ray tasks).

Both yield ``(chunk index, rows)`` as chunks finish. Results do not depend on the backend:
every member's weights and training depend on its config alone (see :mod:`.spec` and
:mod:`.engine`), and a chunk trains the same way wherever it runs.

Ray (an optional dependency, ``pip install initlab[ray]``): each chunk is one task
(``num_cpus`` = ``cpus_per_task``, torch limited to as many threads); results are consumed with
``ray.wait`` in completion order, never in submission order, so one slow chunk does not hold
back the store. Without ``address`` a local Ray is started on this machine's cores (no
dashboard, worker logs not forwarded) and shut down at the end; with an address (``auto``, or
``ray://host:10001``) the sweep joins that cluster and leaves it running.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any

from initlab.bench.sweep.engine import Chunk, run_chunk

BACKENDS = ("local", "ray")


def run_local(chunks: Sequence[Chunk]) -> Iterator[tuple[int, list[dict[str, Any]]]]:
    """Run chunks one after another in this process."""
    for chunk in chunks:
        yield chunk.index, run_chunk(chunk)


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ValueError(
            "--backend ray needs Ray, an optional dependency: pip install initlab[ray]"
        ) from None
    return ray


def run_ray(
    chunks: Sequence[Chunk],
    address: str | None = None,
    num_cpus: int | None = None,
    cpus_per_task: int = 1,
) -> Iterator[tuple[int, list[dict[str, Any]]]]:
    """Run every chunk as a Ray task; yields results as tasks complete."""
    ray = import_ray()
    started = False
    if not ray.is_initialized():
        if address is None:
            cpus = num_cpus or os.cpu_count() or 1
            ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False,
                     configure_logging=False)  # fmt: skip
        else:
            ray.init(address=address, log_to_driver=False, configure_logging=False)
        started = True
    try:
        task = ray.remote(num_cpus=cpus_per_task)(_ray_entry)
        shared: dict[int, Any] = {}
        pending = []
        for chunk in chunks:
            # The datasets travel once through the object store, not once per task.
            key = id(chunk.datasets)
            if key not in shared:
                shared[key] = ray.put(chunk.datasets)
            sent = Chunk(chunk.index, chunk.configs, chunk.spec, {}, chunk.engine, cpus_per_task)
            pending.append(task.remote(_Remote(sent, shared[key])))
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            for ref in ready:
                yield ray.get(ref)
    finally:
        if started:
            ray.shutdown()


class _Remote:
    """A chunk whose datasets wait in Ray's object store (resolved inside the task)."""

    def __init__(self, chunk: Chunk, datasets_ref: Any) -> None:
        self.chunk, self.datasets_ref = chunk, [datasets_ref]  # in a list: not auto-resolved


def _resolve(item: Chunk | _Remote) -> Chunk:
    if isinstance(item, Chunk):
        return item
    import ray

    item.chunk.datasets = ray.get(item.datasets_ref[0])
    return item.chunk


def _ray_entry(item: Chunk | _Remote) -> tuple[int, list[dict[str, Any]]]:
    chunk = _resolve(item)
    return chunk.index, run_chunk(chunk)


__all__ = ["BACKENDS", "run_local", "run_ray"]
