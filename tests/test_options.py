"""RunOptions: one definition of the run options, validated once, round-tripping through JSON."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from initlab.bench.options import RunOptions, merge_options


def test_defaults_round_trip_through_json():
    opts = RunOptions(optimizer="adam", lr=1e-3, iterations=20, betas=(0.8, 0.99), dtype="float32")
    again = RunOptions.from_dict(json.loads(json.dumps(opts.to_dict())))
    assert again == opts and again.betas == (0.8, 0.99)


def test_values_are_normalised_and_frozen():
    opts = RunOptions(lr=1, iterations=10.0, dtype="torch.float64")
    assert opts.lr == 1.0 and isinstance(opts.iterations, int) and opts.dtype == "float64"
    assert opts.log_interval == 1 and RunOptions(iterations=15000).log_interval == 150
    with pytest.raises(AttributeError):
        opts.lr = 2.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"optimizer": "adamw"}, "optimizer must be one of"),
        ({"lr": 0}, "lr must be > 0"),
        ({"iterations": 0}, "iterations must be >= 1"),
        ({"batch_size": 8}, "full-batch"),
        ({"optimizer": "sgd", "batch_size": 0}, "batch_size must be >= 1"),
        ({"l2": -1}, "l2 must be >= 0"),
        ({"dropout": 1.0}, r"dropout must be in \[0, 1\)"),
        ({"clip_norm": 0}, "clip_norm must be > 0"),
        ({"momentum": 1.5}, "momentum must be <= 1"),
        ({"optimizer": "adam", "betas": (2, -1)}, r"betas\[0\] must be in \[0, 1\)"),
        ({"optimizer": "adam", "betas": (0.9, -1)}, r"betas\[1\] must be >= 0"),
        ({"betas": (0.9,)}, "betas must be two numbers"),
        ({"optimizer": "adam", "eps": -1}, "eps must be > 0"),
        ({"dtype": "float16"}, "dtype must be one of"),
        ({"log_every": 0}, "log_every must be >= 1"),
    ],
)
def test_each_option_is_checked_once_where_it_is_defined(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RunOptions(**kwargs)


def test_from_dict_takes_a_results_config_and_fills_missing_fields():
    config = {"schemes": ["he"], "lr": 0.5, "iterations": 3, "layer_dims": [2, 1]}
    opts = RunOptions.from_dict(config)
    assert opts.lr == 0.5 and opts.iterations == 3 and opts.momentum == 0.9


def test_options_and_keywords_are_not_mixed():
    assert merge_options(None, "f", lr=0.1).lr == 0.1
    opts = RunOptions(lr=0.2)
    assert merge_options(opts, "f", lr=0.01) is opts  # keywords at their defaults
    with pytest.raises(ValueError, match="not both"):
        merge_options(opts, "f", lr=0.3)


def test_train_compare_and_stacked_accept_options():
    import initlab

    opts = RunOptions(iterations=5, lr=0.05)
    run = initlab.train(initlab.mlp([2, 3, 1]), "circles", options=opts, progress=False)
    assert run.iterations == 5 and run.config["lr"] == 0.05
    result = initlab.compare(["he"], iterations=5, lr=0.05, progress=False)
    same = initlab.compare(["he"], options=opts, progress=False)
    assert result.runs[0].final_loss == same.runs[0].final_loss
    assert RunOptions.from_dict(same.config) == opts.replace(dtype="float64")


def test_train_rejects_adam_betas_and_eps_out_of_range():
    import initlab

    model = initlab.mlp([2, 3, 1])
    with pytest.raises(ValueError, match=r"betas\[0\]"):
        initlab.train(model, "circles", optimizer="adam", betas=(2, -1), progress=False)
    with pytest.raises(ValueError, match="eps must be > 0"):
        initlab.train(model, "circles", optimizer="adam", eps=-1, progress=False)


def test_options_module_imports_no_torch():
    code = "import sys, initlab.bench.options; assert 'torch' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
