"""initialize_parameters: bit-identical to the classic NumPy course code."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from initlab import initialize_parameters
from initlab.initializers.schemes import TRUNCATED_STD

DIMS = [2, 10, 5, 1]


def _course(layer_dims, factor, seed=3):
    """The course's code, verbatim in spirit: global seed, then randn * factor per layer."""
    state = np.random.get_state()
    try:
        np.random.seed(seed)
        params = {}
        for l in range(1, len(layer_dims)):  # noqa: E741 (the course's name)
            n_l, n_prev = layer_dims[l], layer_dims[l - 1]
            params["W" + str(l)] = np.random.randn(n_l, n_prev) * factor(n_l, n_prev)
            params["b" + str(l)] = np.zeros((n_l, 1))
        return params
    finally:
        np.random.set_state(state)


COURSE_FACTORS = {
    "random:scale=10": lambda n_l, n_prev: 10,
    "random": lambda n_l, n_prev: 1,
    "he": lambda n_l, n_prev: np.sqrt(2.0 / n_prev),
    "xavier": lambda n_l, n_prev: np.sqrt(2.0 / (n_prev + n_l)),
    "glorot": lambda n_l, n_prev: np.sqrt(2.0 / (n_prev + n_l)),
    "lecun": lambda n_l, n_prev: np.sqrt(1.0 / n_prev),
    "he_normal:mode=fan_out": lambda n_l, n_prev: np.sqrt(2.0 / n_l),
    "normal:std=0.01": lambda n_l, n_prev: 0.01,
}


@pytest.mark.parametrize("scheme", list(COURSE_FACTORS))
@pytest.mark.parametrize(("dims", "seed"), [(DIMS, 3), ([5, 4, 3], 1), ([12288, 20, 7, 5, 1], 3)])
def test_bit_identical_to_course_code(scheme, dims, seed):
    ours = initialize_parameters(dims, scheme, seed=seed)
    theirs = _course(dims, COURSE_FACTORS[scheme], seed=seed)
    assert list(ours) == list(theirs)
    for key in theirs:
        assert ours[key].dtype == np.float64 and ours[key].shape == theirs[key].shape
        assert np.array_equal(ours[key], theirs[key]), key


def test_zeros():
    params = initialize_parameters(DIMS, "zeros")
    assert list(params) == ["W1", "b1", "W2", "b2", "W3", "b3"]
    assert all((v == 0).all() for v in params.values())
    assert params["W1"].shape == (10, 2) and params["b1"].shape == (10, 1)


def test_default_is_he_seed_3():
    np.testing.assert_array_equal(
        initialize_parameters(DIMS)["W2"], _course(DIMS, COURSE_FACTORS["he"])["W2"]
    )


def test_global_numpy_rng_untouched():
    np.random.seed(7)
    before = np.random.get_state()[1].copy()
    initialize_parameters([4, 30, 1], "he_uniform")
    initialize_parameters([4, 30, 1], "orthogonal")
    initialize_parameters([4, 30, 1], "he")
    assert np.array_equal(before, np.random.get_state()[1])
    assert np.random.rand() == np.random.RandomState(7).rand()


@pytest.mark.parametrize(
    ("scheme", "dist"),
    [
        ("he_uniform", stats.uniform(-math.sqrt(6 / 200), 2 * math.sqrt(6 / 200))),
        ("xavier_truncated", stats.truncnorm(-2, 2, scale=math.sqrt(2 / 400) / TRUNCATED_STD)),
        ("variance_scaling:scale=3,mode=fan_out,distribution=uniform",
         stats.uniform(-math.sqrt(9 / 200), 2 * math.sqrt(9 / 200))),
    ],
)  # fmt: skip
def test_other_distributions_follow_the_spec(scheme, dist):
    from _stats import check_sample

    w = initialize_parameters([200, 200, 200, 200], scheme, seed=0)
    values = np.concatenate([w["W1"].ravel(), w["W2"].ravel(), w["W3"].ravel()])
    check_sample(values, dist)


def test_structured_schemes_via_torch():
    w = initialize_parameters([8, 8, 4], "orthogonal", seed=0)
    np.testing.assert_allclose(w["W1"] @ w["W1"].T, np.eye(8), atol=1e-12)
    assert w["W1"].dtype == np.float64
    same = initialize_parameters([8, 8, 4], "orthogonal", seed=0)
    assert all(np.array_equal(w[k], same[k]) for k in w)


@pytest.mark.parametrize(
    ("dims", "seed", "match"),
    [([3], 3, "at least 2 sizes"), ([3, 0], 3, r"layer_dims\[1\] must be >= 1"),
     ([3, 2.5], 3, r"layer_dims\[1\] must be an integer"), ([3, 2], -1, "seed must be >= 0"),
     ([3, 2], 2**32, "seed must be <= 4294967295")],
)  # fmt: skip
def test_bad_inputs(dims, seed, match):
    with pytest.raises(ValueError, match=match):
        initialize_parameters(dims, seed=seed)


def test_bad_scheme():
    with pytest.raises(ValueError, match="unknown scheme 'hee'; did you mean 'he'"):
        initialize_parameters(DIMS, "hee")
