"""The Ray backend gives the same numbers as the local one (a local Ray with 2 CPUs)."""

from __future__ import annotations

import pytest

from initlab import sweep
from initlab.bench.sweep.store import METRICS, read_csv

SPEC = {"activation": ["relu", "gelu"], "depth": [1, 2], "seed": [0, 1], "width": 5,
        "scale": [1.0, 1e300], "iterations": 15, "dtype": "float64"}  # fmt: skip


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


def _metrics(rows):
    return sorted(({k: r[k] for k in ("config_id", "engine", *METRICS)} for r in rows),
                  key=lambda r: r["config_id"])  # fmt: skip


def test_ray_results_equal_local_ones(local_ray, tmp_path):
    local = sweep(SPEC, chunk=3, progress=False)
    remote = sweep(SPEC, backend="ray", chunk=2, out=tmp_path / "r", progress=False)
    assert _metrics(remote.rows) == _metrics(local.rows)
    assert {r["engine"] for r in remote.rows} == {"stacked", "vmap"}
    assert {r["status"] for r in remote.rows} == {"finished", "diverged"}
    assert _metrics(read_csv(tmp_path / "r" / "results.csv")) == _metrics(local.rows)
    # no chunk size given: the sweep picks it (at most 8 configs a task here)
    spread = sweep(SPEC, backend="ray", progress=False)
    assert _metrics(spread.rows) == _metrics(local.rows)
    assert {r["members"] for r in spread.rows} == {4}  # 4 architectures of 4 configs
    assert local_ray.is_initialized()  # a Ray the caller started is left running


CNN_FILE = """
import torch.nn as nn


def make(width, in_features, out_features):
    return nn.Sequential(
        nn.Unflatten(1, (1, 8, 8)), nn.Conv2d(1, width, 3, padding=1), nn.ReLU(),
        nn.Conv2d(width, width, 3, padding=1), nn.ReLU(), nn.Flatten(),
        nn.Linear(64 * width, out_features),
    )
"""


def test_ray_runs_the_loop_engine_with_the_local_numbers(local_ray, tmp_path):
    """Convolutional models train member by member (engine 'loop'), each on one thread: two
    local threads and one-CPU Ray tasks give the same float32 bits."""
    from initlab._core.threads import few_threads
    from initlab.cli.model_file import load_factory

    (tmp_path / "cnn.py").write_text(CNN_FILE)
    make = load_factory(f"{tmp_path / 'cnn.py'}:make", what="model factory")
    spec = {"model": make, "data": "digits", "width": [4, 6],
            "scale": [0.5, 2.0], "iterations": 4, "dtype": "float32", "lr": 0.1}  # fmt: skip
    with few_threads(2):  # the local run as on the 2-core machine (1 thread per xdist worker)
        local = sweep(spec, progress=False)
    remote = sweep(spec, backend="ray", chunk=1, progress=False)
    assert {r["engine"] for r in local.rows} == {"loop"}
    assert _metrics(remote.rows) == _metrics(local.rows)
