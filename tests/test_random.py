"""Seeds, generators, parallel_map and the fast truncated-normal sampler."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from _stats import check_sample
from initlab._core import rng as _random
from initlab._core.rng import (
    as_seed,
    derive_seed,
    make_generator,
    parallel_map,
    truncated_standard_normal_,
)

N = 1 << 15


def _draw(n, low, high, seed=0, dtype=torch.float32):
    tensor = torch.empty(n, dtype=dtype)
    return truncated_standard_normal_(tensor, low, high, make_generator(seed))


@pytest.mark.parametrize(
    ("low", "high"),
    [(-2.0, 2.0), (-1.0, 3.0), (0.5, 0.7), (-6.0, -5.5), (5.5, 7.0), (1.5, math.inf)],
)
def test_truncated_normal_distribution(low, high):
    values = _draw(N, low, high, seed=1).double().numpy()
    check_sample(values, stats.truncnorm(low, high))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_truncated_normal_dtypes(dtype):
    values = _draw(N, -2.0, 2.0, seed=2, dtype=dtype)
    assert values.dtype == dtype
    # Rounding to a short mantissa widens the KS distance; compare at the dtype's resolution.
    dist = stats.truncnorm(-2, 2)
    if dtype == torch.float64:
        check_sample(values.numpy(), dist)
    else:
        x = values.double().numpy()
        assert x.min() >= -2 and x.max() <= 2
        assert abs(x.std() / dist.std() - 1) < 5 / math.sqrt(2 * N) + 0.01


def test_truncated_normal_chunked_path(monkeypatch):
    # Small chunks and blocks so the multi-chunk, multi-thread path runs on a small tensor.
    monkeypatch.setattr(_random, "_CHUNK", 4096)
    monkeypatch.setattr(_random, "_BLOCK", 1000)
    values = _draw(N + 123, -2.0, 2.0, seed=3)
    check_sample(values.numpy(), stats.truncnorm(-2, 2))
    # Each chunk is its own stream: consecutive chunks are not copies of each other.
    assert not torch.equal(values[:4096], values[4096:8192])


def test_truncated_normal_values_do_not_depend_on_threads(monkeypatch):
    from initlab._core.threads import few_threads

    monkeypatch.setattr(_random, "_CHUNK", 4096)
    with few_threads(2):  # workers follow torch's thread count (1 per xdist worker)
        threaded = _draw(N, -2.0, 2.0, seed=4)

    def serial(fn, items, workers=None):
        for item in items:
            fn(item)

    monkeypatch.setattr(_random, "parallel_map", serial)
    assert torch.equal(threaded, _draw(N, -2.0, 2.0, seed=4))


def test_truncated_normal_reproducible():
    assert torch.equal(_draw(5000, -2.0, 2.0, seed=7), _draw(5000, -2.0, 2.0, seed=7))
    assert not torch.equal(_draw(5000, -2.0, 2.0, seed=7), _draw(5000, -2.0, 2.0, seed=8))


def test_truncated_normal_non_contiguous_and_empty():
    base = torch.zeros(64, 300)
    view = base.T  # non-contiguous
    truncated_standard_normal_(view, -1.0, 1.0, make_generator(5))
    assert base.abs().max() <= 1 and (base != 0).all()
    check_sample(base.reshape(-1).numpy(), stats.truncnorm(-1, 1))
    empty = torch.empty(0, 3)
    assert truncated_standard_normal_(empty, -1.0, 1.0, make_generator(5)) is empty


def test_truncated_normal_bad_bounds():
    with pytest.raises(ValueError, match="low < high"):
        _draw(10, 1.0, 1.0)


def test_truncated_normal_draws_a_fixed_number_of_uniforms():
    """The sampler draws a fixed number of uniforms: no data-dependent redraw loop."""
    g1, g2 = make_generator(9), make_generator(9)
    truncated_standard_normal_(torch.empty(1000), -2.0, 2.0, g1)
    torch.empty(1000).uniform_(generator=g2)
    assert torch.equal(g1.get_state(), g2.get_state())


def test_parallel_map_runs_every_item_and_propagates_errors():
    seen = []
    parallel_map(seen.append, list(range(50)), workers=2)
    assert sorted(seen) == list(range(50))

    def boom(item):
        if item == 3:
            raise ValueError("item 3")

    with pytest.raises(ValueError, match="item 3"):
        parallel_map(boom, list(range(8)), workers=2)


def test_parallel_map_nested_calls_run_serially():
    inner_threads = []

    def outer(item):
        import threading

        parallel_map(lambda _: inner_threads.append(threading.current_thread().name), [0, 1])

    parallel_map(outer, [0, 1], workers=2)
    assert len(inner_threads) == 4
    assert all(name.startswith("initlab") for name in inner_threads)


def test_seeds():
    assert derive_seed(1, "a") == derive_seed(1, "a") != derive_seed(1, "b")
    assert 0 <= derive_seed(2**62, "x") < 2**63
    assert as_seed(5) == 5
    assert as_seed(np.random.default_rng(0)) == as_seed(np.random.default_rng(0))
    with pytest.raises(ValueError, match=">= 0"):
        as_seed(-1)
    with pytest.raises(TypeError, match="seed must be"):
        as_seed(1.5)
    generator = torch.Generator()
    assert make_generator(generator) is generator


@pytest.mark.parametrize("chunked", [False, True])
def test_truncated_normal_scale_and_shift(monkeypatch, chunked):
    if chunked:
        monkeypatch.setattr(_random, "_CHUNK", 4096)
    plain = _draw(N, -2.0, 2.0, seed=6)
    scaled = torch.empty(N)
    truncated_standard_normal_(scaled, -2.0, 2.0, make_generator(6), scale=0.3, shift=1.5)
    assert torch.equal(scaled, plain * 0.3 + 1.5)  # same ops per element: bit-identical
    check_sample(scaled.numpy(), stats.truncnorm(-2, 2, loc=1.5, scale=0.3))


def test_seeded_code_leaves_accelerator_generators_alone(monkeypatch, tmp_path):
    """``torch.manual_seed`` also reseeds every CUDA/MPS/XPU generator, and
    ``fork_rng(devices=[])`` restores none of them: on a machine with a GPU that would change
    the caller's accelerator RNG. Code that seeds the global RNG for PyTorch's default init or
    dropout seeds only the generators it forks (``_random.seeded_global_rng``)."""
    import initlab
    from initlab.cli.diagnose import load_model

    reseeded = []
    for module, name in ((torch.cuda, "manual_seed_all"), (torch.xpu, "manual_seed_all"),
                         (torch.mps, "manual_seed")):  # fmt: skip
        monkeypatch.setattr(module, name, lambda seed, name=name: reseeded.append(name))
    with _random.seeded_global_rng(7):
        inside = torch.rand(3)
    with _random.seeded_global_rng(7):
        assert torch.equal(torch.rand(3), inside)
    model = initlab.mlp([2, 4, 1], dropout=0.5, seed=3)
    initlab.train(model, "circles", iterations=2, progress=False, seed=1)
    initlab.build(lambda: torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.PReLU()), seed=0)
    path = tmp_path / "models.py"
    path.write_text("from torch import nn\n\ndef net():\n    return nn.Linear(2, 3)\n")
    load_model(f"{path}:net", seed=2)
    assert reseeded == []


def test_threaded_fills_keep_the_callers_no_grad(monkeypatch):
    """init_model(rng="torch") fills a big parameter's truncated normal in chunks on threads,
    inside no_grad; worker threads started in grad mode refused to write the parameter's views
    ("a view of a view which was created in no_grad mode")."""
    import initlab
    import initlab._core.rng as rng
    from initlab._core.threads import few_threads

    monkeypatch.setattr(rng, "_CHUNK", 1000)  # chunks on threads from 1,000 elements
    with torch.device("meta"):
        model = torch.nn.Linear(60, 50)
    model = model.to_empty(device="cpu")
    with few_threads(2):
        initlab.init_model(model, "he_truncated", seed=0, rng="torch")
    serial = model.weight.detach().clone()
    with few_threads(1):
        initlab.init_model(model, "he_truncated", seed=0, rng="torch")
    assert torch.equal(model.weight, serial)
