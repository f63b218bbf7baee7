"""init_model's batched fill of small parameters (one vectorized Philox call for many tensors)
gives the values of the per-parameter fill, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import initlab.initializers.fill as fill
from initlab import init_model
from initlab._core.counter_batch import RecordingStream, fill_recorded, run_words
from initlab._core.counter_rng import CounterStream, counter_key, words


class _InOut(nn.Module):
    """A layer that stores its weight as (in, out), like Hugging Face's Conv1D."""

    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_in, n_out))

    def forward(self, x):
        return x @ self.weight


def _model() -> nn.Module:
    with torch.device("meta"):
        model = nn.ModuleDict({
            "a": nn.Linear(4, 4), "b": nn.Linear(3, 5), "c": nn.Conv1d(2, 3, 3),
            "d": nn.LSTM(3, 2), "e": nn.Linear(6, 2).double(), "f": nn.Linear(5, 3).bfloat16(),
            "g": nn.Embedding(7, 3, padding_idx=1), "h": _InOut(3, 4), "i": nn.Linear(80, 70),
        })  # fmt: skip
    return model.to_empty(device="cpu")


@pytest.mark.parametrize(
    "scheme",
    ["he_normal", "xavier_uniform", "lecun_truncated", "normal:std=0.02",
     "truncated_normal:low=2.5,high=4", "uniform:low=-1,high=2", "orthogonal"],
)  # fmt: skip
def test_batched_fill_equals_the_per_parameter_fill(scheme, monkeypatch):
    """Mixed shapes (one above the batch size), dtypes (float32/64, bfloat16), gate blocks,
    an (in, out) layout, padding rows and 1-D biases drawn from a scheme."""
    options = {"bias": "normal:std=0.1", "seed": 3, "layouts": {_InOut: "in_out"}}
    batched, reference = _model(), _model()
    recorded: list[int] = []
    real = fill.fill_recorded
    monkeypatch.setattr(fill, "fill_recorded", lambda log: recorded.append(len(log)) or real(log))
    report = init_model(batched, scheme, **options)
    assert recorded[0] >= 8  # the 8 biases at least were batched (small weights too)
    monkeypatch.setattr(fill, "_BATCH_NUMEL", 0)  # nothing batched
    want = init_model(reference, scheme, **options)
    want_state = reference.state_dict()
    for name, value in batched.state_dict().items():
        assert torch.equal(value, want_state[name]), name
    assert str(report) == str(want)


def test_recorded_fills_with_equal_transforms_are_computed_together():
    log: list = []
    keys = [counter_key(0, n) for n in ("x", "y", "z")]
    targets = [torch.empty(4, 4), torch.empty(2, 9), torch.empty(4, 4)]
    for key, t in zip(keys, targets, strict=True):
        RecordingStream(key, tuple(t.shape), log=log).normal_(t, 0.0, 0.5)
    assert len({id(entry[3][2]) for entry in log}) == 1  # one transform: one group
    fill_recorded(log)
    for key, t in zip(keys, targets, strict=True):
        want = CounterStream(key, tuple(t.shape)).normal_(torch.empty_like(t), 0.0, 0.5)
        assert torch.equal(t, want)


@pytest.mark.parametrize("numpy_runs", [0, 1000], ids=["torch-philox", "numpy-philox"])
def test_run_words_are_each_streams_words(numpy_runs, monkeypatch):
    import initlab._core.counter_batch as counter_batch

    monkeypatch.setattr(counter_batch, "_NUMPY_RUNS", numpy_runs)
    keys = [counter_key(1, n) for n in ("p", "q", "r")]
    starts, counts = [0, 13, 1000], [5, 30, 1]
    got = run_words(np.array(keys, dtype=np.uint64), np.array(starts), np.array(counts),
                    torch.device("cpu"))  # fmt: skip
    want = np.concatenate([words(k, s, c) for k, s, c in zip(keys, starts, counts, strict=True)])
    assert got.dtype == torch.int64
    assert got.tolist() == want.view(np.uint32).tolist()


def test_a_few_small_cpu_parameters_skip_the_torch_philox(monkeypatch):
    """Issue 16: the Philox in torch operations costs ~1.5 ms per call whatever its size; a
    sweep initializing 64 course MLPs one by one spent half its time there. A CPU batch of a
    few runs takes NumPy's Philox (the same words)."""
    import initlab._core.counter_batch as counter_batch

    calls: list[int] = []
    real = counter_batch.philox4x64
    monkeypatch.setattr(counter_batch, "philox4x64", lambda *a: calls.append(1) or real(*a))
    with torch.random.fork_rng(devices=[]):
        model = nn.Sequential(nn.Linear(2, 10), nn.ReLU(), nn.Linear(10, 5), nn.ReLU(),
                              nn.Linear(5, 1))  # fmt: skip
    init_model(model, seed=0)
    assert calls == []


@pytest.mark.parametrize("recipe", [None, "gpt2"])
@pytest.mark.parametrize("enabled_before", [True, False])
def test_planning_runs_without_collections_and_restores_the_collector(enabled_before, recipe):
    """Issue 12, load case 1: the cyclic collector's older-generation passes walked every live
    object of a 10,000-layer model many times while init_model planned (a third of its time).
    It is paused for the call and left as the caller had it."""
    import gc

    with torch.random.fork_rng(devices=[]):
        model = nn.ModuleList(nn.Linear(4, 4) for _ in range(3000))
    collections: list[int] = []

    def count(phase: str, info: dict) -> None:
        if phase == "start":
            collections.append(info["generation"])

    init_model(model[:2], seed=0, recipe=recipe)  # first call: lazy imports, not counted
    gc.collect()
    (gc.enable if enabled_before else gc.disable)()
    gc.callbacks.append(count)
    try:
        init_model(model, seed=0, recipe=recipe)
        assert gc.isenabled() is enabled_before
    finally:
        gc.callbacks.remove(count)
        gc.enable()
    # at most the one young-generation pass that follows switching it back on
    assert len(collections) <= 1 and max(collections, default=0) == 0, collections
