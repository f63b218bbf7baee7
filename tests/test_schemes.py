"""Every scheme against its exact distribution, PyTorch parity, structure and seeding."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

import initlab
from _stats import check_sample
from initlab import get
from initlab.initializers.schemes import TRUNCATED_STD

SHAPE = (256, 128)  # 32768 samples; fan_in 128, fan_out 256
FAN_IN, FAN_OUT = 128, 256
N = {"fan_in": FAN_IN, "fan_out": FAN_OUT, "fan_avg": (FAN_IN + FAN_OUT) / 2}


def _dist(distribution: str, variance: float):
    """The exact SciPy distribution with the given variance."""
    std = math.sqrt(variance)
    if distribution == "normal":
        return stats.norm(0, std)
    if distribution == "uniform":
        limit = math.sqrt(3 * variance)
        return stats.uniform(-limit, 2 * limit)
    return stats.truncnorm(-2, 2, scale=std / TRUNCATED_STD)


def _draw(spec, shape=SHAPE, seed=0) -> np.ndarray:
    return get(spec)(torch.empty(shape, dtype=torch.float64), seed).numpy()


def test_truncated_std_constant_is_exact():
    assert pytest.approx(stats.truncnorm(-2, 2).std(), rel=1e-15) == TRUNCATED_STD


# --------------------------------------------------------------------- raw distributions
@pytest.mark.parametrize(
    ("spec", "dist"),
    [
        ("normal", stats.norm(0, 1)),
        ("normal:mean=0.5,std=0.02", stats.norm(0.5, 0.02)),
        ("normal_", stats.norm(0, 1)),
        ("RandomNormal", stats.norm(0, 0.05)),
        ("flax.normal", stats.norm(0, 0.01)),
        ("uniform", stats.uniform(0, 1)),
        ("uniform:low=-3,high=-1", stats.uniform(-3, 2)),
        ("RandomUniform", stats.uniform(-0.05, 0.1)),
        ("flax.uniform", stats.uniform(0, 0.01)),
        ("random", stats.norm(0, 1)),
        ("random:scale=10", stats.norm(0, 10)),
        ("randn:scale=0.01", stats.norm(0, 0.01)),
        # truncated_normal: std of the parent, default bounds mean -/+ 2 std
        ("truncated_normal", stats.truncnorm(-2, 2)),
        ("truncated_normal:mean=1,std=0.5", stats.truncnorm(-2, 2, loc=1, scale=0.5)),
        ("TruncatedNormal", stats.truncnorm(-2, 2, scale=0.05)),
        ("flax.truncated_normal", stats.truncnorm(-2, 2, scale=0.01)),
        # absolute bounds, as PyTorch's trunc_normal_(a, b)
        ("truncated_normal:std=1,low=-1,high=3", stats.truncnorm(-1, 3)),
        ("truncated_normal:mean=0.2,std=0.1,low=0,high=1", stats.truncnorm(-2, 8, 0.2, 0.1)),
        # PyTorch's trunc_normal_ keeps its absolute default bounds [-2, 2] whatever std is
        ("trunc_normal_:std=0.5", stats.truncnorm(-4, 4, scale=0.5)),
        ("trunc_normal_:std=4", stats.truncnorm(-0.5, 0.5, scale=4)),
        # far tails (inverse-CDF path), within the 10 std the constructor allows
        ("truncated_normal:low=2.5,high=4", stats.truncnorm(2.5, 4)),
        ("truncated_normal:low=-6,high=-5.5", stats.truncnorm(-6, -5.5)),
        ("truncated_normal:low=9,high=10", stats.truncnorm(9, 10)),
        ("truncated_normal:low=-10,high=-8", stats.truncnorm(-10, -8)),
    ],
)
def test_raw_distributions(spec, dist):
    init = get(spec)
    check_sample(_draw(init), dist)
    check_sample(init.sample(SHAPE, seed=1), dist)  # float32
    assert init.target_std(SHAPE) == pytest.approx(dist.std(), rel=1e-9)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_truncated_normal_bounds_hold_in_low_precision(dtype):
    values = get("truncated_normal:std=0.02")(torch.empty(SHAPE, dtype=dtype), 1).float()
    assert values.abs().max() <= 0.04 * (1 + 1e-2)
    assert values.std().item() == pytest.approx(stats.truncnorm(-2, 2).std() * 0.02, rel=0.03)


def test_constant_family():
    t = torch.empty(3, 4)
    assert torch.equal(get("zeros")(t), torch.zeros(3, 4))
    assert torch.equal(get("ones")(t), torch.ones(3, 4))
    assert torch.equal(get("constant:value=-0.5")(t), torch.full((3, 4), -0.5))
    assert torch.equal(get("Constant")(t), torch.zeros(3, 4))  # Keras default value 0
    assert get("constant:value=2").target_std((3, 4)) == 0.0
    assert get("zeros")(torch.empty(5)).abs().sum() == 0  # any shape, 1-D too


# --------------------------------------------------------------------- variance scaling
@pytest.mark.parametrize("mode", ["fan_in", "fan_out", "fan_avg"])
@pytest.mark.parametrize("distribution", ["normal", "uniform", "truncated_normal"])
def test_variance_scaling_modes_and_distributions(mode, distribution):
    scale = 2.5
    init = get("variance_scaling", scale=scale, mode=mode, distribution=distribution)
    variance = scale / N[mode]
    # the target variance holds AFTER truncation (Keras/JAX), not for the parent normal
    check_sample(_draw(init), _dist(distribution, variance), std=math.sqrt(variance))
    assert init.target_std(SHAPE) == pytest.approx(math.sqrt(variance), rel=1e-12)


def test_variance_scaling_defaults_are_keras():
    init = get("VarianceScaling")
    assert (init.scale, init.mode, init.distribution) == (1.0, "fan_in", "truncated_normal")
    assert get("variance_scaling:distribution=untruncated_normal").distribution == "normal"


FAMILIES = {
    # name: (variance for SHAPE, forms)
    "lecun": 1 / FAN_IN,
    "xavier": 2 / (FAN_IN + FAN_OUT),
    "glorot": 2 / (FAN_IN + FAN_OUT),
    "he": 2 / FAN_IN,
    "kaiming": 2 / FAN_IN,
}


@pytest.mark.parametrize("family", list(FAMILIES))
@pytest.mark.parametrize(
    ("suffix", "distribution"),
    [("normal", "normal"), ("uniform", "uniform"), ("truncated", "truncated_normal"),
     ("truncated_normal", "truncated_normal")],
)  # fmt: skip
def test_named_variance_scaling(family, suffix, distribution):
    init = get(f"{family}_{suffix}")
    variance = FAMILIES[family]
    check_sample(_draw(init, seed=7), _dist(distribution, variance), std=math.sqrt(variance))
    assert init.target_std(SHAPE) == pytest.approx(math.sqrt(variance), rel=1e-12)


@pytest.mark.parametrize(
    ("spec", "variance", "distribution"),
    [
        ("GlorotNormal", 2 / (FAN_IN + FAN_OUT), "truncated_normal"),
        ("GlorotUniform", 2 / (FAN_IN + FAN_OUT), "uniform"),
        ("HeNormal", 2 / FAN_IN, "truncated_normal"),
        ("HeUniform", 2 / FAN_IN, "uniform"),
        ("LecunNormal", 1 / FAN_IN, "truncated_normal"),
        ("LecunUniform", 1 / FAN_IN, "uniform"),
        ("flax.lecun_normal", 1 / FAN_IN, "truncated_normal"),
        ("jax.he_normal", 2 / FAN_IN, "truncated_normal"),
        ("flax.glorot_uniform", 2 / (FAN_IN + FAN_OUT), "uniform"),
        ("he_normal:mode=fan_out", 2 / FAN_OUT, "normal"),
        ("he_uniform:nonlinearity=leaky_relu,negative_slope=0.2", 2 / 1.04 / FAN_IN, "uniform"),
        ("he_normal:nonlinearity=tanh", (5 / 3) ** 2 / FAN_IN, "normal"),
        ("he_normal:nonlinearity=linear", 1 / FAN_IN, "normal"),
        ("he_normal:nonlinearity=selu", 0.75**2 / FAN_IN, "normal"),
        ("xavier_uniform:gain=2", 4 * 2 / (FAN_IN + FAN_OUT), "uniform"),
    ],
)
def test_framework_spellings(spec, variance, distribution):
    check_sample(_draw(spec, seed=3), _dist(distribution, variance), std=math.sqrt(variance))


def test_he_leaky_relu_default_slope_is_pytorchs():
    # kaiming_normal_ default: nonlinearity leaky_relu with a=0, i.e. exactly ReLU's gain
    assert get("kaiming_normal_").target_std(SHAPE) == math.sqrt(2 / FAN_IN)
    assert get("he_normal").target_std(SHAPE) == math.sqrt(2 / FAN_IN)
    assert get("he_normal:nonlinearity=leaky_relu").target_std(SHAPE) == math.sqrt(2 / FAN_IN)


# --------------------------------------------------------------------- parity with PyTorch
PARITY_SHAPES = [(64, 32), (16, 8, 3), (32, 16, 3, 3), (8, 4, 2, 3, 3)]


@pytest.mark.parametrize("shape", PARITY_SHAPES)
@pytest.mark.parametrize("mode", ["fan_in", "fan_out"])
@pytest.mark.parametrize(
    ("nonlinearity", "a"),
    [("leaky_relu", 0.0), ("relu", 0.0), ("leaky_relu", 0.2), ("tanh", 0.0),
     ("linear", 0.0), ("selu", 0.0), ("sigmoid", 0.0), ("conv2d", 0.0)],
)  # fmt: skip
@pytest.mark.parametrize("form", ["normal", "uniform"])
def test_kaiming_parity_with_pytorch(shape, mode, nonlinearity, a, form):
    """Same generator state -> the same values as torch.nn.init (so the same std/bound)."""
    ours = get(f"kaiming_{form}_", mode=mode, nonlinearity=nonlinearity, negative_slope=a)(
        torch.empty(shape), torch.Generator().manual_seed(5)
    )
    theirs = getattr(torch.nn.init, f"kaiming_{form}_")(
        torch.empty(shape), a=a, mode=mode, nonlinearity=nonlinearity,
        generator=torch.Generator().manual_seed(5),
    )  # fmt: skip
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=0)


@pytest.mark.parametrize("shape", PARITY_SHAPES)
@pytest.mark.parametrize("gain", [1.0, 5 / 3, 0.5])
@pytest.mark.parametrize("form", ["normal", "uniform"])
def test_xavier_parity_with_pytorch(shape, gain, form):
    ours = get(f"xavier_{form}_", gain=gain)(torch.empty(shape), torch.Generator().manual_seed(9))
    theirs = getattr(torch.nn.init, f"xavier_{form}_")(
        torch.empty(shape), gain=gain, generator=torch.Generator().manual_seed(9)
    )
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=0)


@pytest.mark.parametrize("shape", [(7, 3), (3, 7), (6, 2, 3, 3), (2, 5, 4)])
def test_orthogonal_parity_with_pytorch(shape):
    ours = get("orthogonal_:gain=2")(torch.empty(shape), torch.Generator().manual_seed(2))
    theirs = torch.nn.init.orthogonal_(
        torch.empty(shape), gain=2, generator=torch.Generator().manual_seed(2)
    )
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------- sparse
@pytest.mark.parametrize(("rows", "sparsity"), [(256, 0.1), (100, 0.25), (33, 0.5), (10, 0.0)])
def test_sparse_zeros_per_column_and_normal_nonzeros(rows, sparsity):
    cols = 32768 // rows
    values = _draw(f"sparse:sparsity={sparsity},std=0.03", (rows, cols), seed=4)
    zeros = math.ceil(sparsity * rows)
    assert ((values == 0).sum(axis=0) == zeros).all()
    check_sample(values[values != 0], stats.norm(0, 0.03))
    assert get(f"sparse:sparsity={sparsity},std=0.03").target_std((rows, cols)) == pytest.approx(
        values.std(), rel=5 / math.sqrt(2 * values.size)
    )


def test_sparse_columns_differ():
    values = _draw("sparse:sparsity=0.5", (64, 64), seed=0)
    patterns = {tuple(np.flatnonzero(values[:, j] == 0)) for j in range(64)}
    assert len(patterns) > 60  # zero positions are drawn per column


# --------------------------------------------------------------------- orthogonal
def _assert_orthogonal(values: np.ndarray, gain: float, atol: float) -> None:
    flat = values.reshape(values.shape[0], -1)
    rows, cols = flat.shape
    gram = flat @ flat.T if rows <= cols else flat.T @ flat
    np.testing.assert_allclose(gram, gain**2 * np.eye(min(rows, cols)), atol=atol)


@pytest.mark.parametrize("shape", [(64, 16), (16, 64), (32, 32), (64, 8, 3, 3), (8, 4, 3, 3),
                                   (16, 4, 5), (4, 3, 2, 2, 2)])  # fmt: skip
@pytest.mark.parametrize("gain", [1.0, math.sqrt(2)])
def test_orthogonal(shape, gain):
    values = get("orthogonal", gain=gain)(torch.empty(shape, dtype=torch.float64), 0).numpy()
    _assert_orthogonal(values, gain, atol=1e-12)
    values32 = get("orthogonal", gain=gain).sample(shape, seed=0)
    assert values32.dtype == np.float32
    _assert_orthogonal(values32.astype(np.float64), gain, atol=1e-5)


def test_orthogonal_is_haar_distributed():
    # An entry of a Haar-random orthogonal n x n matrix has variance 1/n and mean 0; without the
    # sign correction of QR the diagonal would be biased (mean > 0).
    diag = np.concatenate([np.diag(_draw("orthogonal", (8, 8), seed=s)) for s in range(150)])
    assert abs(diag.mean()) < 5 * math.sqrt(1 / 8 / diag.size)
    assert get("orthogonal").target_std((64, 16)) == pytest.approx(1 / 8)


def test_orthogonal_needs_two_dims():
    with pytest.raises(ValueError, match="orthogonal needs a tensor with at least 2 dim"):
        get("orthogonal")(torch.empty(5))


# --------------------------------------------------------------------- identity, dirac
@pytest.mark.parametrize("shape", [(4, 4), (3, 5), (6, 2)])
def test_identity_equals_torch_eye(shape):
    expected = torch.nn.init.eye_(torch.empty(shape))
    assert torch.equal(get("eye_")(torch.empty(shape)), expected)
    assert torch.equal(get("Identity:gain=3")(torch.empty(shape)), 3 * expected)
    values = expected.numpy()
    assert get("identity").target_std(shape) == pytest.approx(values.std(), rel=1e-6)


@pytest.mark.parametrize(
    ("shape", "groups"),
    [((4, 4, 3), 1), ((6, 3, 3, 3), 1), ((3, 6, 5, 5), 1), ((8, 2, 3, 3), 4),
     ((6, 2, 3, 4, 5), 3), ((4, 4, 2, 2), 2), ((12, 2, 3), 2)],
)  # fmt: skip
def test_dirac_equals_torch(shape, groups):
    expected = torch.nn.init.dirac_(torch.empty(shape), groups=groups)
    assert torch.equal(get("dirac", groups=groups)(torch.full(shape, 7.0)), expected)
    assert get("dirac", groups=groups).target_std(shape) == pytest.approx(
        expected.numpy().std(), rel=1e-6
    )


def test_dirac_conv_passes_input_through():
    weight = get("dirac")(torch.empty(3, 3, 3, 3))
    x = torch.linspace(-1, 1, 2 * 3 * 5 * 5).reshape(2, 3, 5, 5)
    torch.testing.assert_close(torch.nn.functional.conv2d(x, weight, padding=1), x)


def test_dirac_and_identity_shape_errors():
    with pytest.raises(ValueError, match="dirac needs a tensor with 3 to 5 dimensions"):
        get("dirac")(torch.empty(4, 4))
    with pytest.raises(ValueError, match="divisible by groups=3"):
        get("dirac:groups=3")(torch.empty(4, 4, 3))
    with pytest.raises(ValueError, match="identity needs a tensor with 2 dimensions"):
        get("identity")(torch.empty(2, 2, 2))


# --------------------------------------------------------------------- delta orthogonal
@pytest.mark.parametrize("shape", [(8, 8, 3), (16, 4, 3, 3), (6, 6, 3, 3, 3), (5, 5, 4, 4)])
def test_delta_orthogonal(shape):
    values = get("delta_orthogonal:gain=1.5")(torch.empty(shape, dtype=torch.float64), 1).numpy()
    centre = tuple(k // 2 for k in shape[2:])
    middle = values[(slice(None), slice(None), *centre)]
    np.testing.assert_allclose(middle.T @ middle, 2.25 * np.eye(shape[1]), atol=1e-12)
    mask = np.ones(shape, dtype=bool)
    mask[(slice(None), slice(None), *centre)] = False
    assert (values[mask] == 0).all()
    assert get("delta_orthogonal:gain=1.5").target_std(shape) == pytest.approx(
        math.sqrt((values**2).mean()), rel=1e-9
    )


def test_delta_orthogonal_is_an_isometry():
    weight = get("delta_orthogonal")(torch.empty(8, 4, 3, 3, dtype=torch.float64), 0)
    x = torch.randn(3, 4, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    y = torch.nn.functional.conv2d(x, weight, padding=1)
    torch.testing.assert_close(y.norm(dim=1), x.norm(dim=1))


def test_delta_orthogonal_needs_in_le_out():
    with pytest.raises(ValueError, match="in_channels <= out_channels"):
        get("delta_orthogonal")(torch.empty(4, 8, 3, 3))
    with pytest.raises(ValueError, match="3 to 5 dimensions"):
        get("delta_orthogonal")(torch.empty(4, 4))


# --------------------------------------------------------------------- keras layout, numpy
@pytest.mark.parametrize(
    ("spec", "torch_shape"),
    [
        ("he_normal", (64, 16, 3, 3)),
        ("xavier_uniform", (32, 64, 5)),
        ("lecun_truncated", (512, 64)),
    ],
)
def test_keras_layout_uses_the_right_fans(spec, torch_shape):
    keras_shape = (*torch_shape[2:], torch_shape[1], torch_shape[0])
    init = get(spec)
    values = init.sample(keras_shape, seed=0, layout="keras")
    assert values.shape == keras_shape and values.dtype == np.float32
    assert initlab.fan_in_fan_out(keras_shape, layout="keras") == initlab.fan_in_fan_out(
        torch_shape
    )
    std = init.target_std(torch_shape)
    assert abs(values.std() / std - 1) < 5 / math.sqrt(2 * values.size)
    # the same seed in both layouts gives the same weights, only transposed
    torch_values = init.sample(torch_shape, seed=0)
    np.testing.assert_array_equal(
        values, np.transpose(torch_values, (*range(2, len(torch_shape)), 1, 0))
    )


@pytest.mark.parametrize("keras_shape", [(3, 3, 8, 16), (16, 64), (64, 16), (5, 32, 8)])
def test_keras_layout_orthogonal_axes(keras_shape):
    # Keras flattens to (prod(shape[:-1]), shape[-1]): the output axis is the last one
    values = get("orthogonal").sample(keras_shape, seed=1, layout="keras", dtype="float64")
    flat = values.reshape(-1, keras_shape[-1])
    rows, cols = flat.shape
    gram = flat.T @ flat if rows >= cols else flat @ flat.T
    np.testing.assert_allclose(gram, np.eye(min(rows, cols)), atol=1e-12)


def test_keras_layout_identity_and_delta_orthogonal():
    eye = get("identity").sample((3, 5), layout="keras")
    np.testing.assert_array_equal(eye, np.eye(5, 3).T)  # torch (out=5, in=3) transposed
    values = get("delta_orthogonal").sample((3, 3, 4, 8), seed=0, layout="keras", dtype="float64")
    centre = values[1, 1]  # (in, out)
    np.testing.assert_allclose(centre @ centre.T, np.eye(4), atol=1e-12)


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64", np.float64])
def test_sample_dtype_and_shape(dtype):
    values = get("he_uniform").sample((20, 10), seed=0, dtype=dtype)
    assert values.shape == (20, 10) and values.dtype == np.dtype(dtype)
    assert np.abs(values).max() <= math.sqrt(6 / 10) * (1 + 1e-3)


def test_sample_rejects_bad_dtype_and_layout():
    with pytest.raises(ValueError, match="dtype must be one of"):
        get("normal").sample((2, 2), dtype="int32")
    with pytest.raises(ValueError, match="dtype must be one of 'float16', 'float32', 'float64'"):
        get("normal").sample((2, 2), dtype="bfloat16")  # NumPy has no bfloat16
    with pytest.raises(ValueError, match=r"shape dimensions must be >= 0; got \(2, -1\)"):
        get("normal").sample((2, -1))
    with pytest.raises(ValueError, match=r"layout must be one of .*did you mean 'keras'"):
        get("normal").sample((2, 2), layout="kears")


@settings(max_examples=25, deadline=None)
@given(
    dims=st.lists(st.integers(1, 6), min_size=2, max_size=5),
    spec=st.sampled_from(["he_normal", "xavier_truncated", "lecun_uniform", "orthogonal",
                          "normal", "sparse:sparsity=0.3"]),
    layout=st.sampled_from(["torch", "keras"]),
    dtype=st.sampled_from(["float32", "float64", "float16"]),
)  # fmt: skip
def test_property_sample_shape_dtype(dims, spec, layout, dtype):
    if spec.startswith("sparse") and len(dims) != 2:
        dims = dims[:2]
    values = get(spec).sample(tuple(dims), seed=1, layout=layout, dtype=dtype)
    assert values.shape == tuple(dims) and values.dtype == np.dtype(dtype)
    assert np.isfinite(values).all()
    if spec == "orthogonal":
        flat = values.astype(np.float64)
        flat = flat.reshape(dims[0], -1) if layout == "torch" else flat.reshape(-1, dims[-1]).T
        rows, cols = flat.shape
        gram = flat @ flat.T if rows <= cols else flat.T @ flat
        atol = 5e-3 if dtype == "float16" else 1e-5
        np.testing.assert_allclose(gram, np.eye(min(rows, cols)), atol=atol)


# --------------------------------------------------------------------- seeds and global RNG
ALL_RANDOM = ["normal", "uniform", "truncated_normal", "random", "variance_scaling", "he_normal",
              "he_uniform", "xavier_truncated", "lecun_uniform", "orthogonal", "sparse",
              "delta_orthogonal"]  # fmt: skip


@pytest.mark.parametrize("spec", ALL_RANDOM)
def test_same_seed_same_values_different_seed_differ(spec):
    init = get(spec)
    shape = (8, 8, 3) if spec == "delta_orthogonal" else (16, 8)
    np.testing.assert_array_equal(init.sample(shape, seed=11), init.sample(shape, seed=11))
    assert not np.array_equal(init.sample(shape, seed=11), init.sample(shape, seed=12))
    a = init(torch.empty(shape), 11)
    b = init(torch.empty(shape), torch.Generator().manual_seed(11))
    assert torch.equal(a, b)
    # a NumPy generator is a seed source too, and reproducible
    np.testing.assert_array_equal(
        init.sample(shape, seed=np.random.default_rng(1)),
        init.sample(shape, seed=np.random.default_rng(1)),
    )


@pytest.mark.parametrize("spec", ALL_RANDOM)
def test_global_rngs_untouched(spec):
    # the conftest fixture checks torch's global RNG; check NumPy's (legacy and new) here
    np.random.seed(123)
    before = np.random.get_state()
    torch_before = torch.random.get_rng_state()
    shape = (8, 8, 3) if spec == "delta_orthogonal" else (16, 8)
    init = get(spec)
    init.sample(shape)
    init.sample(shape, seed=3)
    init(torch.empty(shape))
    after = np.random.get_state()
    assert before[0] == after[0] and np.array_equal(before[1], after[1]) and before[2:] == after[2:]
    assert torch.equal(torch_before, torch.random.get_rng_state())


def test_unseeded_draws_differ():
    assert not np.array_equal(get("normal").sample((64,)), get("normal").sample((64,)))


def test_seed_validation():
    with pytest.raises(ValueError, match="seed must be >= 0"):
        get("normal").sample((2,), seed=-1)
    with pytest.raises(TypeError, match="seed must be an int"):
        get("normal").sample((2,), seed=1.5)
    with pytest.raises(TypeError, match=r"expected a torch\.Tensor"):
        get("normal")(np.zeros(3))


# --------------------------------------------------------------------- fan-based: dims
@pytest.mark.parametrize("spec", ["he_normal", "xavier_uniform", "lecun_truncated",
                                  "variance_scaling", "kaiming_uniform_"])  # fmt: skip
def test_fan_based_schemes_need_two_dims(spec):
    with pytest.raises(ValueError, match=r"at least 2 dimensions.*got shape \(5,\)"):
        get(spec)(torch.empty(5))
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        get(spec).sample((5,))


@pytest.mark.parametrize("shape", [(0, 5), (5, 0)])
def test_empty_weights(shape):
    # zero-element weights: orthogonal is a no-op; fan-based schemes say which fan is zero
    assert get("orthogonal")(torch.empty(shape)).numel() == 0
    with pytest.raises(ValueError, match="is 0"):
        get("he_normal", mode="fan_in" if shape[1] == 0 else "fan_out")(torch.empty(shape))


def test_str_and_formula():
    assert str(get("random:scale=10")) == "random:scale=10"
    assert str(get("ones")) == "ones" and str(get("zeros_")) == "zeros"
    assert str(get("constant:value=2")) == "constant:value=2"
    # only parameters that differ from the defaults: short report columns
    assert str(get("he_normal")) == "he_normal"
    assert str(get("HeNormal")) == "he_truncated:nonlinearity=relu"
    assert str(get("trunc_normal_")) == "truncated_normal:low=-2.0,high=2.0"
    for cls in initlab.initializers.schemes.SCHEME_CLASSES:
        assert cls.formula and cls.__doc__


def test_sample_takes_an_int_shape_and_names_a_bad_one():
    assert initlab.get("normal").sample(5, seed=0).shape == (5,)
    with pytest.raises(TypeError, match="expected a shape"):
        initlab.get("normal").sample("ab", seed=0)
