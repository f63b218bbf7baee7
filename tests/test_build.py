"""build(): meta-device construction, buffers, ties, dtypes, devices, memory."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap

import pytest
import torch
from scipy import stats
from torch import nn

from _stats import check_sample
from initlab import build, init_model


class Net(nn.Module):
    """Embedding tied to the head, conv + BatchNorm + PReLU, an LSTM and a computed buffer."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(50, 16)
        self.conv = nn.Conv1d(16, 32, 3)
        self.bn = nn.BatchNorm1d(32)
        self.act = nn.PReLU(32)
        self.lstm = nn.LSTM(32, 8)
        self.norm = nn.LayerNorm(8)
        self.head = nn.Linear(16, 50, bias=False)
        self.head.weight = self.emb.weight
        self.register_buffer("pos", torch.arange(10, dtype=torch.float32) / 10)
        self.register_buffer("mask", torch.tril(torch.ones(4, 4, dtype=torch.bool)), False)

    def forward(self, x):
        h = self.act(self.bn(self.conv(self.emb(x).transpose(1, 2))))
        return self.norm(self.lstm(h.transpose(1, 2))[0])


def _eager(factory, scheme, seed, dtype=None):
    with torch.random.fork_rng(devices=[]):  # eager construction draws from the global RNG
        model = factory()
    if dtype is not None:
        model = model.to(dtype)
    return model, init_model(model, scheme, seed=seed)


def _assert_same_state(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for name in sa:
        assert sa[name].dtype == sb[name].dtype, name
        assert torch.equal(sa[name], sb[name]), name


@pytest.mark.parametrize("scheme", ["he_normal", "xavier_uniform", "he_truncated", "orthogonal"])
def test_build_equals_eager_init_model(scheme):
    model, report = build(Net, scheme, seed=3)
    eager, eager_report = _eager(Net, scheme, 3)
    _assert_same_state(model, eager)
    assert str(report) == str(eager_report)
    assert report.seed == 3


def test_build_keeps_ties_and_buffers():
    model, report = build(Net, seed=0)
    assert model.head.weight is model.emb.weight
    assert report["head.weight"].action == "tied"
    assert torch.equal(model.bn.running_mean, torch.zeros(32))
    assert torch.equal(model.bn.running_var, torch.ones(32))
    assert model.bn.num_batches_tracked.item() == 0
    assert torch.equal(model.pos, torch.arange(10, dtype=torch.float32) / 10)
    assert torch.equal(model.mask, torch.tril(torch.ones(4, 4, dtype=torch.bool)))
    assert "mask" not in model.state_dict()  # still non-persistent
    # PReLU slopes are kept by init_model: build gives them PyTorch's default.
    assert torch.equal(model.act.weight, torch.full((32,), 0.25))


def test_build_buffers_from_template_do_not_use_the_global_rng():
    class Random(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, 3)
            self.register_buffer("projection", torch.randn(3, 3))

    model, _ = build(Random, seed=0)  # the autouse fixture checks the global RNG
    assert model.projection.abs().sum() > 0


def test_build_dtype_matches_eager_cast():
    model, _ = build(Net, "he_truncated", dtype="bfloat16", seed=1)
    eager, _ = _eager(Net, "he_truncated", 1, dtype=torch.bfloat16)
    _assert_same_state(model, eager)
    assert model.conv.weight.dtype == torch.bfloat16
    assert model.bn.num_batches_tracked.dtype == torch.int64
    assert build(Net, dtype=torch.float64, seed=1)[0].emb.weight.dtype == torch.float64


def test_build_kept_parameters_get_their_default():
    model, report = build(
        lambda: nn.Sequential(nn.Linear(400, 300), nn.ReLU()), rules={"0.weight": "keep"}, seed=2
    )
    assert report["0.weight"].action == "keep"
    bound = 1 / math.sqrt(400)
    check_sample(model[0].weight.detach().numpy(), stats.uniform(-bound, 2 * bound))
    again, _ = build(
        lambda: nn.Sequential(nn.Linear(400, 300), nn.ReLU()), rules={"0.weight": "keep"}, seed=2
    )
    assert torch.equal(model[0].weight, again[0].weight)
    assert torch.equal(model[0].bias, torch.zeros(300))


class _Scale(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(2, 2)
        self.alpha = nn.Parameter(torch.full((2,), 1e-6))


def test_build_keeps_the_constructors_constants():
    model, report = build(_Scale, seed=0)
    assert torch.equal(model.alpha, torch.full((2,), 1e-6))  # layer scale survives build
    assert report["alpha"].action == "keep" and "no known layer role" in report["alpha"].note


def test_build_kept_parameter_too_large_without_reset_parameters_is_an_error(monkeypatch):
    import initlab.initializers.build as build_module

    monkeypatch.setattr(build_module, "_TEMPLATE_NUMEL", 1)
    with pytest.raises(ValueError, match=r"alpha.*no reset_parameters\(\); construct") as caught:
        build(_Scale, seed=0)
    assert "zeros" not in str(caught.value)  # never suggest a value that breaks the model
    model, _ = build(_Scale, rules={"alpha": "ones"}, seed=0)
    assert torch.equal(model.alpha, torch.ones(2))


def test_build_validates_arguments():
    with pytest.raises(TypeError, match="factory must be a callable"):
        build(3)
    with pytest.raises(TypeError, match=r"factory\(\) must return a torch.nn.Module"):
        build(lambda: 3)
    with pytest.raises(ValueError, match=r"device must be a torch device.*'gpu'"):
        build(Net, device="gpu")
    with pytest.raises(ValueError, match="meta"):
        build(Net, device="meta")
    with pytest.raises(TypeError, match="device must be a str"):
        build(Net, device=0)
    with pytest.raises(ValueError, match=r"dtype must be one of.*did you mean 'float32'"):
        build(Net, dtype="float33")
    with pytest.raises(ValueError, match="floating dtype"):
        build(Net, dtype=torch.int64)
    with pytest.raises(TypeError, match="dtype must be None"):
        build(Net, dtype=32)
    with pytest.raises(ValueError, match="unknown"):
        build(Net, "he_nromal")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA message")
def test_build_cuda_unavailable_message():
    with pytest.raises(ValueError, match="CUDA is not available"):
        build(Net, device="cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_build_on_cuda():
    model, report = build(Net, "he_truncated", device="cuda", seed=0)
    assert all(p.is_cuda for p in model.parameters())
    assert all(b.is_cuda for b in model.buffers())
    assert report["conv.weight"].realized_std == pytest.approx(
        report["conv.weight"].target_std, rel=0.1
    )


_MEMORY_SCRIPT = textwrap.dedent(
    """
    import json, resource, sys
    import torch
    from torch import nn
    import initlab

    def rss():  # peak resident set size so far, bytes (ru_maxrss is KiB on Linux)
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    # Warm up the code paths (fx, thread pool, allocator) on a small model first.
    initlab.build(lambda: nn.Sequential(nn.Linear(64, 64), nn.ReLU()), "he_truncated", seed=0)
    width, depth = 4096, 5
    factory = lambda: nn.Sequential(*[nn.Linear(width, width) for _ in range(depth)])
    before = rss()
    model, _ = initlab.build(factory, sys.argv[1], seed=0)
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    print(json.dumps({"growth": rss() - before, "params": params}))
    """
)


def test_build_peak_memory_is_about_the_parameters():
    out = subprocess.run(
        [sys.executable, "-c", _MEMORY_SCRIPT, "he_truncated"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["params"] > 300e6
    assert result["growth"] <= 1.1 * result["params"], result


def test_init_model_parallel_fill_equals_serial_fill(monkeypatch):
    """init_model fills big CPU models on threads; per-parameter generators keep the values."""
    from initlab.initializers import apply

    model, report = build(Net, "he_truncated", seed=4)
    from initlab._core.threads import few_threads

    monkeypatch.setattr(apply, "_PARALLEL_NUMEL", 0)  # force the threaded path
    with few_threads(2):  # workers follow torch's thread count (1 per xdist worker)
        threaded = init_model(model, "he_truncated", seed=4)
    _assert_same_state(model, build(Net, "he_truncated", seed=4)[0])
    assert str(threaded) == str(report)
