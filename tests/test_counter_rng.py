"""The counter-based generator: pure function of (key, logical index), exact distributions,
parts equal to the whole, and init_model's ``rng`` option."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from torch import nn

import initlab
import initlab._core.counter_rng as counter_rng
from _stats import check_sample
from initlab import get
from initlab._core.counter_rng import CounterStream, counter_key, words
from initlab._core.rng import derive_seed, make_generator
from initlab._core.threads import few_threads
from initlab.initializers.schemes import TRUNCATED_STD

SHAPE = (256, 128)  # 32768 samples
KEY = counter_key(0, "layer.weight")


def _stream(shape=SHAPE, name="layer.weight", seed=0) -> CounterStream:
    return CounterStream(counter_key(seed, name), tuple(shape))


def _draw(spec, dtype=torch.float64, shape=SHAPE) -> np.ndarray:
    tensor = torch.empty(shape, dtype=dtype)
    return get(spec)(tensor, _stream(shape)).double().numpy()


# ------------------------------------------------------------------ the words
def test_words_at_any_start_are_the_same_stream():
    whole = words(KEY, 0, 5000)
    for start in (1, 2, 7, 8, 9, 15, 16, 17, 333, 4096):
        assert np.array_equal(words(KEY, start, 5000 - start), whole[start:]), start


def test_values_are_pinned():
    """Golden values: a change of NumPy's Philox, of the transforms or of torch's erfinv would
    silently change every model's weights; this fails first."""
    assert counter_key(0, "w") == (3389661191112107728, 10098127970140697071)
    assert words(counter_key(0, "w"), 0, 4).tolist() == GOLDEN_WORDS
    values = _stream((2, 3), "w").normal_(torch.empty(2, 3), 0.0, 1.0)
    assert values.flatten().tolist() == GOLDEN_NORMAL


GOLDEN_WORDS = [1464602703, -749304374, -326152185, 802453874]
GOLDEN_NORMAL = [
    0.9985944628715515, -0.4522652328014374, -0.19151310622692108,
    0.48690128326416016, -1.405608057975769, -1.3950096368789673,
]  # fmt: skip


def test_keys_differ_by_seed_and_name():
    keys = {counter_key(s, n) for s in (0, 1) for n in ("a.weight", "b.weight", "a.bias")}
    assert len(keys) == 6


# ------------------------------------------------------------------ parts equal the whole
@settings(max_examples=40, deadline=None)
@given(
    shape=st.lists(st.integers(1, 9), min_size=1, max_size=3),
    data=st.data(),
    kind=st.sampled_from(["normal", "uniform", "truncated", "far_tail"]),
    dtype=st.sampled_from([torch.float32, torch.float64, torch.bfloat16]),
)
def test_any_rectangular_part_equals_the_same_part_of_the_whole(shape, data, kind, dtype):
    offsets = [data.draw(st.integers(0, d - 1)) for d in shape]
    sizes = [data.draw(st.integers(1, d - o)) for d, o in zip(shape, offsets, strict=True)]
    stream = _stream(shape)

    def fill(s: CounterStream, target: torch.Tensor) -> torch.Tensor:
        if kind == "normal":
            return s.normal_(target, 0.1, 2.0)
        if kind == "uniform":
            return s.uniform_(target, -3.0, 1.0)
        if kind == "truncated":
            return s.truncated_normal_(target, -2.0, 1.5, 0.5, 0.1)
        return s.truncated_normal_(target, 4.0, 6.0)

    whole = fill(stream, torch.empty(shape, dtype=dtype))
    part = fill(stream.part(offsets, sizes), torch.empty(sizes, dtype=dtype))
    index = tuple(slice(o, o + n) for o, n in zip(offsets, sizes, strict=True))
    assert torch.equal(part, whole[index])


def test_values_do_not_depend_on_piece_size_or_threads(monkeypatch):
    stream = _stream((300, 70))
    reference = stream.normal_(torch.empty(300, 70), 0.0, 1.0)
    monkeypatch.setattr(counter_rng, "_PIECE", 37)  # many pieces, runs cut anywhere
    monkeypatch.setattr(counter_rng, "_PARALLEL", 1)  # always on threads
    with few_threads(3):  # parallel_map's workers: torch's thread count (1 under xdist)
        assert torch.equal(stream.normal_(torch.empty(300, 70), 0.0, 1.0), reference)
        part = stream.part((0, 13), (300, 41))  # short runs: span and per-run paths
        assert torch.equal(part.normal_(torch.empty(300, 41), 0.0, 1.0), reference[:, 13:54])


def test_non_contiguous_tensor_is_filled_in_logical_order():
    stream = _stream((20, 30))
    reference = stream.uniform_(torch.empty(20, 30), 0.0, 1.0)
    transposed = torch.empty(30, 20).T  # shape (20, 30), not contiguous
    assert torch.equal(stream.uniform_(transposed, 0.0, 1.0), reference)


def test_uniform_never_reaches_its_bounds_and_is_centred():
    v = _stream((1 << 16,)).uniform_(torch.empty(1 << 16), -1.0, 1.0)
    assert v.abs().max() < 1.0 and v.abs().min() > 0.0


def test_wrong_shape_is_refused():
    with pytest.raises(ValueError, match=r"covers shape \(4, 5\); got a tensor of shape \(5, 4\)"):
        _stream((4, 5)).normal_(torch.empty(5, 4), 0.0, 1.0)


# ------------------------------------------------------------------ exact distributions
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    ("spec", "dist"),
    [
        ("normal", stats.norm(0, 1)),
        ("normal:mean=0.5,std=0.02", stats.norm(0.5, 0.02)),
        ("uniform:low=-3,high=-1", stats.uniform(-3, 2)),
        ("random:scale=10", stats.norm(0, 10)),
        ("truncated_normal", stats.truncnorm(-2, 2)),
        ("truncated_normal:mean=1,std=0.5", stats.truncnorm(-2, 2, loc=1, scale=0.5)),
        ("truncated_normal:std=1,low=-1,high=3", stats.truncnorm(-1, 3)),
        ("trunc_normal_:std=4", stats.truncnorm(-0.5, 0.5, scale=4)),
        ("truncated_normal:low=2.5,high=4", stats.truncnorm(2.5, 4)),
        ("truncated_normal:low=-6,high=-5.5", stats.truncnorm(-6, -5.5)),
        ("truncated_normal:low=9,high=10", stats.truncnorm(9, 10)),
    ],
)
def test_raw_distributions(spec, dist, dtype):
    check_sample(_draw(spec, dtype), dist)


@pytest.mark.parametrize("family", ["lecun", "xavier", "he"])
@pytest.mark.parametrize("distribution", ["normal", "uniform", "truncated"])
def test_variance_scaling_families(family, distribution):
    variance = {"lecun": 1 / 128, "xavier": 2 / (128 + 256), "he": 2 / 128}[family]
    spec = f"{family}_{distribution}" + (":nonlinearity=relu" if family == "he" else "")
    std = math.sqrt(variance)
    dist = {
        "normal": stats.norm(0, std),
        "uniform": stats.uniform(-math.sqrt(3) * std, 2 * math.sqrt(3) * std),
        "truncated": stats.truncnorm(-2, 2, scale=std / TRUNCATED_STD),
    }[distribution]
    check_sample(_draw(spec, torch.float32), dist, std=std)


def test_orthogonal_and_sparse_keep_their_structure():
    q = torch.from_numpy(_draw("orthogonal", torch.float64, (64, 32)))
    torch.testing.assert_close(q.T @ q, torch.eye(32, dtype=torch.float64), atol=1e-12, rtol=0)
    w = torch.from_numpy(_draw("sparse:sparsity=0.25,std=0.03", torch.float64, (100, 40)))
    assert ((w == 0).sum(0) == 25).all()
    check_sample(w[w != 0].numpy(), stats.norm(0, 0.03))


def test_whole_tensor_schemes_on_a_part_compute_the_whole_and_keep_the_part():
    stream = _stream((12, 9, 3))
    for spec in ("orthogonal", "dirac", "delta_orthogonal", "sparse"):
        whole = get(spec)(torch.empty(12, 9, 3), stream) if spec != "sparse" else None
        if whole is None:
            stream2 = _stream((12, 9))
            whole = get(spec)(torch.empty(12, 9), stream2)
            part = get(spec)(torch.empty(5, 4), stream2.part((7, 2), (5, 4)))
            assert torch.equal(part, whole[7:, 2:6])
            continue
        part = get(spec)(torch.empty(5, 4, 3), stream.part((7, 2, 0), (5, 4, 3)))
        assert torch.equal(part, whole[7:, 2:6]), spec


def test_fans_come_from_the_logical_shape():
    stream = _stream((512, 64))  # fan_in 64: std sqrt(2/64) = 0.177
    part = get("he_normal:nonlinearity=relu")(torch.empty(512, 8), stream.part((0, 0), (512, 8)))
    assert abs(part.std().item() / math.sqrt(2 / 64) - 1) < 5 / math.sqrt(2 * part.numel())


# ------------------------------------------------------------------ init_model / build
def _empty(factory) -> nn.Module:
    """A model with storage but no default init (which would draw from the global RNG)."""
    with torch.device("meta"):
        model = factory()
    return model.to_empty(device="cpu")


def _mlp() -> nn.Sequential:
    return _empty(lambda: nn.Sequential(nn.Linear(30, 40), nn.ReLU(), nn.Linear(40, 10)))


def test_init_model_default_is_the_counter_stream():
    model = _mlp()
    initlab.init_model(model, "he_normal", seed=3)
    want = get("he_normal")(torch.empty(40, 30), _stream((40, 30), "0.weight", 3),
                            activation=("relu", None))  # fmt: skip
    assert torch.equal(model[0].weight, want)


def test_rng_torch_keeps_the_previous_values():
    model = _mlp()
    initlab.init_model(model, "he_normal", seed=3, rng="torch")
    generator = make_generator(derive_seed(3, "0.weight"))
    want = get("he_normal")(torch.empty(40, 30), generator, activation=("relu", None))
    assert torch.equal(model[0].weight, want)
    built, _ = initlab.build(_mlp, "he_normal", seed=3, rng="torch")
    assert torch.equal(built[0].weight, want)


def test_rng_is_validated():
    with pytest.raises(ValueError, match=r"rng must be one of 'counter', 'torch'.*'counter'"):
        initlab.init_model(_mlp(), rng="countr")


def test_values_do_not_depend_on_the_other_parameters():
    """A pipeline stage that holds only some of the layers gets the same values for them."""
    full = _empty(lambda: nn.ModuleDict({"a": nn.Linear(8, 8), "b": nn.Linear(8, 8)}))
    stage = _empty(lambda: nn.ModuleDict({"b": nn.Linear(8, 8)}))
    initlab.init_model(full, "xavier_uniform", seed=1)
    initlab.init_model(stage, "xavier_uniform", seed=1)
    assert torch.equal(full["b"].weight, stage["b"].weight)


def test_gate_blocks_use_the_parameters_logical_indices():
    lstm = _empty(lambda: nn.LSTM(6, 5))
    initlab.init_model(lstm, "xavier_uniform", seed=0)
    stream = _stream(tuple(lstm.weight_ih_l0.shape), "weight_ih_l0")
    gate = get("xavier_uniform")(torch.empty(5, 6), stream.rows(10, 15), fans=(6, 5))
    assert torch.equal(lstm.weight_ih_l0[10:15], gate)


def test_half_precision_rounds_the_float32_values():
    model, _ = initlab.build(_mlp, "he_normal", seed=0, dtype="bfloat16")
    reference, _ = initlab.build(_mlp, "he_normal", seed=0)
    assert torch.equal(model[0].weight, reference[0].weight.to(torch.bfloat16))


def test_a_scheme_defined_elsewhere_gets_a_seeded_generator_on_the_whole_block():
    """Subclasses outside initlab's schemes may call ``tensor.normal_(generator=...)``: they get
    a torch generator seeded from the stream, so their values still ignore the sharding."""
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class Mine(initlab.Normal):
        def _fill(self, tensor, generator, fans, activation):
            tensor.normal_(0.0, 2.0, generator=generator)

    stream = _stream((10, 6))
    whole = Mine()(torch.empty(10, 6), stream)
    assert torch.equal(Mine()(torch.empty(4, 6), stream.part((6, 0), (4, 6))), whole[6:])
    assert torch.equal(whole, Mine()(torch.empty(10, 6), _stream((10, 6))))
