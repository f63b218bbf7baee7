"""Names, aliases, spec parsing, config round-trips and error messages."""

from __future__ import annotations

import json

import pytest
import torch

import initlab
from initlab import get
from initlab.initializers import registry
from initlab.initializers import schemes as s

ALL_NAMES = registry.all_names()


def test_canonical_names_cover_the_issue():
    expected = {
        "zeros", "ones", "constant", "normal", "uniform", "truncated_normal", "random",
        "variance_scaling", "orthogonal", "identity", "dirac", "sparse", "delta_orthogonal",
        *(f"{f}_{d}" for f in ("lecun", "xavier", "he")
          for d in ("normal", "uniform", "truncated")),
    }  # fmt: skip
    assert set(registry.names()) == expected


@pytest.mark.parametrize("name", ALL_NAMES)
def test_round_trip_every_name_and_alias(name):
    init = get(name)
    config = init.get_config()
    json.dumps(config)  # plain data
    assert get(config) == init
    assert get(json.loads(json.dumps(config))) == init
    assert get(str(init)) == init  # the short string form round-trips too
    assert get(init) is init


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("random:scale=10", s.Random(10)),
        ("variance_scaling:scale=2,mode=fan_out", s.VarianceScaling(2, "fan_out")),
        ("variance_scaling: scale = 2 , distribution = uniform",
         s.VarianceScaling(2, "fan_in", "uniform")),
        ("he_uniform:mode=fan_out,nonlinearity=leaky_relu,negative_slope=0.1",
         s.He("fan_out", "leaky_relu", 0.1, "uniform")),
        ("xavier_normal:gain=auto", s.Xavier("auto")),
        ("truncated_normal:std=0.02,low=none", s.TruncatedNormal(0, 0.02)),
        ({"name": "he_normal", "mode": "fan_out"}, s.He(mode="fan_out")),
        ("HeNormal", s.He(nonlinearity="relu", distribution="truncated_normal")),
        ("kaiming_normal_", s.He(nonlinearity="leaky_relu")),
        ("he", s.He()),
        ("xavier", s.Xavier()),
        ("glorot_uniform", s.Xavier(distribution="uniform")),
        ("lecun", s.Lecun()),
        ("trunc_normal_", s.TruncatedNormal(0, 1, -2, 2)),
        ("GlorotNormal", s.Xavier(distribution="truncated_normal")),
        ("jax.glorot_normal", s.Xavier(distribution="truncated_normal")),
        ("flax.delta_orthogonal", s.DeltaOrthogonal()),
        ("eye", s.Identity()),
        ("zeros_", s.Constant(0.0)),
        ("Ones", s.Constant(1.0)),
        ("HENORMAL", s.He(nonlinearity="relu", distribution="truncated_normal")),
        ("Kaiming_Uniform", s.He(distribution="uniform")),
    ],
)  # fmt: skip
def test_specs(spec, expected):
    assert get(spec) == expected


def test_overrides():
    assert get("he_normal", mode="fan_out") == s.He(mode="fan_out")
    assert get("random:scale=10", scale=2) == s.Random(2)  # keyword wins over the string
    assert get(s.Random(3), scale=4) == s.Random(4)
    assert get({"name": "normal", "std": 2}, mean=1) == s.Normal(1, 2)


def test_parse():
    assert registry.parse("a:x=1,y=2.5,z=true,w=none,v=fan_in") == (
        "a",
        {"x": 1, "y": 2.5, "z": True, "w": None, "v": "fan_in"},
    )
    assert registry.parse("he_normal") == ("he_normal", {})


def test_aliases_listing():
    table = registry.aliases()
    assert table["kaiming_normal_"] == "he_normal"
    assert table["GlorotNormal"] == "xavier_truncated"
    assert "HeUniform" in registry.aliases("he_uniform")
    assert all(target in registry.names() for target in table.values())


def test_xavier_and_glorot_are_one_scheme():
    shape = (30, 20)
    for suffix in ("normal", "uniform", "truncated"):
        assert get(f"xavier_{suffix}") == get(f"glorot_{suffix}")
        assert get(f"he_{suffix}") == get(f"kaiming_{suffix}")
    assert get("xavier_normal").target_std(shape) == pytest.approx((2 / 50) ** 0.5)


# --------------------------------------------------------------------- errors
def test_unknown_name_suggests_the_closest():
    with pytest.raises(ValueError, match=r"unknown scheme 'he_normel'; did you mean 'he_normal'"):
        get("he_normel")
    with pytest.raises(ValueError, match=r"did you mean .*'xavier_uniform'"):
        get("xavier_unifrom")
    with pytest.raises(ValueError, match=r"Valid schemes: .*kaiming_normal_"):
        get("nope")


@pytest.mark.parametrize(
    ("spec", "error", "match"),
    [
        ("normal:std=-1", ValueError, r"std must be >= 0.0; got -1"),
        ("truncated_normal:std=-0.1", ValueError, r"std must be >= 0.0; got -0.1"),
        ("random:scale=-10", ValueError, r"scale must be >= 0.0; got -10"),
        ("variance_scaling:mode=fan_avgg", ValueError,
         r"mode must be one of 'fan_in', 'fan_out', 'fan_avg'; got 'fan_avgg' "
         r"\(did you mean 'fan_avg'\?\)"),
        ("variance_scaling:distribution=gaussian", ValueError, r"distribution must be one of"),
        ("variance_scaling:scale=-1", ValueError, r"scale must be >= 0.0"),
        ("he_normal:mode=fan_avg", ValueError,
         r"mode must be one of 'fan_in', 'fan_out'; got 'fan_avg'"),
        ("he_normal:nonlinearity=rleu", ValueError,
         r"unknown activation 'rleu'; did you mean 'relu'"),
        ("he_normal:stdd=1", ValueError,
         r"he_normal has no parameter 'stdd'; its parameters are: mode, nonlinearity, "
         r"negative_slope"),
        ("normal:sdt=1", ValueError, r"normal has no parameter 'sdt' \(did you mean 'std'\?\)"),
        ("he_normal:distribution=uniform", ValueError,
         r"he_normal fixes distribution='normal'; got distribution='uniform'.*he_uniform"),
        ("zeros:value=1", ValueError, r"zeros fixes value=0.0; got value=1"),
        ("uniform:low=1,high=0", ValueError, r"uniform needs low <= high; got low=1, high=0"),
        ("truncated_normal:low=1,high=-1", ValueError, r"truncated_normal needs low < high"),
        ("truncated_normal:low=50", ValueError, r"low < high|more than 10 std"),
        ("truncated_normal:low=20,high=30", ValueError, r"more than 10 std"),
        ("sparse:sparsity=1.5", ValueError, r"sparsity must be <= 1.0; got 1.5"),
        ("dirac:groups=0", ValueError, r"groups must be >= 1"),
        ("dirac:groups=1.5", ValueError, r"groups must be an integer"),
        ("xavier_normal:gain=-1", ValueError, r"gain must be >= 0.0"),
        ("xavier_normal:gain=big", TypeError, r"gain must be a number; got 'big'"),
        ("normal:std=nan", ValueError, r"std must be finite"),
        ("random:scale", ValueError, r"cannot parse scheme parameter 'scale'.*key=value"),
        ({"std": 1}, ValueError, r"needs a 'name' key"),
        ({"name": 3}, TypeError, r"scheme name must be a string"),
        (3.5, TypeError, r"a scheme spec is a name"),
    ],
)  # fmt: skip
def test_bad_specs(spec, error, match):
    with pytest.raises(error, match=match):
        get(spec)


def test_too_few_dims_errors_name_the_shape():
    with pytest.raises(
        ValueError, match=r"needs a weight with at least 2 dimensions.*got shape \(7,\)"
    ):
        get("kaiming_normal_")(torch.empty(7))


def test_schemes_validate_when_built_directly():
    with pytest.raises(ValueError, match="mode must be one of"):
        initlab.VarianceScaling(mode="fan_sum")
    with pytest.raises(ValueError, match=r"std must be >= 0\.0"):
        initlab.Normal(std=-2)


def test_describe_rows():
    rows = registry.describe()
    assert [r["name"] for r in rows] == registry.names()
    by_name = {r["name"]: r for r in rows}
    assert "kaiming_normal_" in by_name["he_normal"]["aliases"]
    assert "GlorotNormal" in by_name["xavier_truncated"]["aliases"]
    assert by_name["random"]["parameters"] == "scale=1.0"
    assert all(r["formula"] for r in rows)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("kaiming_normal_:a=0.2", s.He(nonlinearity="leaky_relu", negative_slope=0.2)),
        ("kaiming_uniform_:a=2.23606797749979", s.He(nonlinearity="leaky_relu",
         negative_slope=2.23606797749979, distribution="uniform")),
        ("uniform_:a=-1,b=1", s.Uniform(-1, 1)),
        ("trunc_normal_:std=0.02,a=-0.04,b=0.04", s.TruncatedNormal(0, 0.02, -0.04, 0.04)),
        ("constant_:val=3", s.Constant(3)),
        ("RandomNormal:stddev=0.1", s.Normal(0, 0.1)),
        ("RandomUniform:minval=-1,maxval=1", s.Uniform(-1, 1)),
        ("TruncatedNormal:mean=1,stddev=0.1", s.TruncatedNormal(1, 0.1)),
        ("flax.normal:stddev=0.5", s.Normal(0, 0.5)),
        ("jax.uniform:scale=0.5", s.Uniform(0, 0.5)),
        ("flax.orthogonal:scale=2", s.Orthogonal(2)),
        ("flax.delta_orthogonal:scale=2", s.DeltaOrthogonal(2)),
    ],
)  # fmt: skip
def test_framework_parameter_spellings(spec, expected):
    assert get(spec) == expected
    assert get(get(spec).get_config()) == expected


def test_framework_parameter_spellings_are_per_alias():
    with pytest.raises(ValueError, match="uniform_: give a or low, not both"):
        get("uniform_:a=1,low=2")
    with pytest.raises(ValueError, match="uniform has no parameter 'a'"):
        get("uniform:a=1")  # initlab's own name keeps initlab's parameter names


def test_kaiming_a_matches_pytorch():
    ours = get("kaiming_uniform_:a=0.5")(torch.empty(30, 20), torch.Generator().manual_seed(1))
    theirs = torch.nn.init.kaiming_uniform_(
        torch.empty(30, 20), a=0.5, generator=torch.Generator().manual_seed(1)
    )
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=0)
