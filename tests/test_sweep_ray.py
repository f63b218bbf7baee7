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
