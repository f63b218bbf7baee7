"""Same seed, same orthogonal matrix, whatever the number of threads (issue 12 #12)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from initlab import get
from initlab._core.counter_rng import CounterStream, counter_key
from initlab._core.threads import few_threads

_SCRIPT = """
import hashlib, sys, torch
from torch import nn
torch.set_num_threads(int(sys.argv[1]))
import initlab
w = torch.empty(512, 512)
initlab.get("orthogonal")(w, 0)
with torch.random.fork_rng():
    model = nn.Sequential(nn.Linear(300, 200), nn.Tanh(), nn.Linear(200, 10))
initlab.init_model(model, "orthogonal:gain=auto", seed=0)
digest = hashlib.sha256(w.numpy().tobytes())
for p in model.parameters():
    digest.update(p.detach().numpy().tobytes())
print(digest.hexdigest())
"""


def _digest(threads: int) -> str:
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = os.environ | {"PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(threads)],
        capture_output=True, text=True, env=env, check=True, timeout=300,
    )  # fmt: skip
    return out.stdout.strip()


def test_orthogonal_and_init_model_do_not_depend_on_the_thread_count():
    assert _digest(1) == _digest(2)


KEY = counter_key(0, "w")


def _reference(stream: CounterStream, rows: int, cols: int) -> torch.Tensor:
    """The specification: float32 N(0, 1) draws of the derived stream, QR in float32 on the
    CPU on one thread, signs of diag(R)."""
    g = torch.empty(rows, cols)
    stream.derived("orthogonal", (rows, cols)).normal_(g, 0.0, 1.0)
    g = g if rows >= cols else g.T
    with few_threads(1):
        q, r = torch.linalg.qr(g)
    q = q * torch.sign(torch.diagonal(r))
    return q if rows >= cols else q.T


@pytest.mark.parametrize("shape", [(48, 32), (20, 50), (300, 260)])
def test_counter_orthogonal_is_the_one_thread_cpu_qr_whatever_the_threads(shape):
    stream = CounterStream(counter_key(0, "w"), shape)
    got = {}
    for threads in (1, 2, 3):
        with few_threads(threads):
            got[threads] = get("orthogonal:gain=2")(torch.empty(shape), stream)
    assert torch.equal(got[1], got[2]) and torch.equal(got[1], got[3])
    assert torch.equal(got[1], _reference(stream, *shape) * 2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_counter_orthogonal_on_cuda_equals_the_cpu():
    stream = CounterStream(counter_key(0, "w"), (64, 48))
    cpu = get("orthogonal")(torch.empty(64, 48), stream)
    assert torch.equal(get("orthogonal")(torch.empty(64, 48, device="cuda"), stream).cpu(), cpu)


def test_counter_orthogonal_computes_on_the_cpu_for_any_device(monkeypatch):
    """The matrix is made on the CPU and moved: a tensor on another device (here ``meta``,
    which stands for any) gets the CPU's QR, not one computed on its own device."""
    from initlab.initializers import structured

    seen, real = [], structured._qr
    monkeypatch.setattr(structured, "_qr", lambda m: seen.append(m.device) or real(m))
    out = get("orthogonal")(torch.empty(8, 6, device="meta"), CounterStream(KEY, (8, 6)))
    assert seen == [torch.device("cpu")] and out.device.type == "meta"
