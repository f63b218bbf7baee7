"""The counter stream's device path: Philox4x64 in torch integer operations equals NumPy's
Philox, and the torch-operations fill (what accelerators run) equals the CPU's NumPy fill bit
for bit, here run on the CPU; on a CUDA machine also the GPU against the CPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import initlab._core.counter_rng as counter_rng
from initlab._core.counter_rng import CounterStream, counter_key, words
from initlab._core.philox import philox4x64, unsigned64, words32

FILLS = {
    "uniform": lambda s, t: s.uniform_(t, -3.0, 1.0),
    "normal": lambda s, t: s.normal_(t, 0.1, 2.0),
    "truncated": lambda s, t: s.truncated_normal_(t, -2.0, 1.5, 0.5, 0.1),
    "wide": lambda s, t: s.truncated_normal_(t, -6.0, 7.0),
    "far_tail": lambda s, t: s.truncated_normal_(t, 4.0, 6.0),
}
PARTS = [None, ((3, 5), (20, 11)), ((10, 0), (5, 29)), ((0, 28), (37, 1)), ((36, 0), (1, 29))]


def _numpy_philox(key: tuple[int, int], block: int, count: int) -> np.ndarray:
    """``count`` blocks of NumPy's Philox4x64-10 from counter ``block`` (its raw words)."""
    generator = np.random.Philox(key=[0, 0])
    state = generator.state
    state["state"]["key"] = np.array(key, dtype=np.uint64)
    state["state"]["counter"] = np.array([(block - 1) % 2**64, 0, 0, 0], dtype=np.uint64)
    if block == 0:  # the increment carries through all four words
        state["state"]["counter"] = np.full(4, 2**64 - 1, dtype=np.uint64)
    generator.state = state
    return generator.random_raw(4 * count)


def test_torch_philox_equals_numpys_for_random_keys_and_counters():
    rng = np.random.default_rng(0)
    for trial in range(12):
        key = tuple(int(k) for k in rng.integers(0, 2**64, 2, dtype=np.uint64))
        block = 0 if trial == 0 else int(rng.integers(1, 2**62))
        got = philox4x64(torch.arange(block, block + 3), *key).reshape(-1).tolist()
        want = _numpy_philox(key, block, 3)
        assert [unsigned64(v) for v in got] == want.tolist(), (key, block)


def test_torch_philox_takes_one_key_per_counter():
    keys = [counter_key(s, "w") for s in range(5)]
    k0 = torch.tensor([np.uint64(k[0]).astype(np.int64) for k in keys])
    k1 = torch.tensor([np.uint64(k[1]).astype(np.int64) for k in keys])
    counters = torch.tensor([0, 7, 1, 2**40, 3])
    batched = philox4x64(counters, k0, k1)
    for i, key in enumerate(keys):
        assert torch.equal(batched[i], philox4x64(counters[i : i + 1], *key)[0])


def test_torch_words_equal_the_streams_words_at_any_offset():
    key = counter_key(3, "layer.weight")
    blocks = philox4x64(torch.arange(0, 40), *key)
    for start in (0, 1, 7, 8, 9, 100, 250):
        want = words(key, start, 60).view(np.uint32).astype(np.int64)
        assert np.array_equal(words32(blocks, torch.arange(start, start + 60)).numpy(), want)


@pytest.mark.parametrize("kind", sorted(FILLS))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_torch_operations_fill_equals_the_numpy_fill(kind, dtype, monkeypatch):
    """Every part (rows, columns, one column: the per-element block branch, the last row),
    with chunks cut anywhere: the path accelerators run gives the CPU's exact bits."""
    stream = CounterStream(counter_key(0, "x"), (37, 29))
    fill = FILLS[kind]
    for part in PARTS:
        s = stream if part is None else stream.part(*part)
        shape = stream.shape if part is None else part[1]
        want = fill(s, torch.empty(shape, dtype=dtype))
        monkeypatch.setattr(counter_rng, "_TORCH_WORDS", True)
        monkeypatch.setattr(counter_rng, "_DEVICE_CHUNK", 101)
        got = fill(s, torch.empty(shape, dtype=dtype))
        monkeypatch.setattr(counter_rng, "_TORCH_WORDS", False)
        assert torch.equal(got, want), (kind, part)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_equals_the_cpu():
    """Uniform: the same bits (integer Philox, two correctly rounded float operations).
    Normal and truncated: erfinv on the GPU may differ from the CPU's in the last bits."""
    stream = CounterStream(counter_key(0, "x"), (300, 70))
    for kind, fill in FILLS.items():
        cpu = fill(stream, torch.empty(300, 70))
        gpu = fill(stream, torch.empty(300, 70, device="cuda")).cpu()
        if kind == "uniform":
            assert torch.equal(cpu, gpu)
        else:
            torch.testing.assert_close(gpu, cpu, rtol=4e-6, atol=1e-6)
