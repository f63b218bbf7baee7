"""``initlab gradcheck``: tables, verdicts and exit statuses, run in-process."""

from __future__ import annotations

import json

from initlab.cli import main


def test_default_run_passes(capsys):
    assert main(["gradcheck", "--examples", "64"]) == 0
    out = capsys.readouterr().out
    assert "model: mlp [2, 10, 5, 1], relu" in out
    assert "linear2.weight" in out and "overall" in out
    assert out.rstrip().splitlines()[-1].startswith("verdict: correct")


def test_after_training_with_l2_and_dropout_passes(capsys):
    argv = ["gradcheck", "--after", "30", "--l2", "0.7", "--dropout", "0.2", "--mode", "fast"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "trained 30 iterations" in out
    assert "+ 0.7/(2m) sum ||W||^2" in out
    assert "dropout switched off for the check" in out
    assert "verdict: correct" in out


def test_planted_bug_fails_with_exit_status_1(capsys):
    argv = ["gradcheck", "--plant-bug", "linear2.bias", "--examples", "64"]
    assert main(argv) == 1
    out = capsys.readouterr().out
    assert "verdict: bug" in out and "in linear2.bias" in out
    argv = ["gradcheck", "--plant-bug", "linear1.weight:1.5", "--mode", "sample", "--json"]
    assert main(argv) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["verdict"] == "bug" and data["worst_tensor"] == "linear1.weight"
    assert data["mode"] == "sample"
    assert any("multiplied by 1.5" in line for line in data["setup"])


def test_strict_fails_on_look_closer(capsys):
    # A step so large that truncation error stays above 1e-7 even at eps / 100.
    argv = ["gradcheck", "--activation", "tanh", "--eps", "0.2", "--examples", "32"]
    assert main(argv) == 0
    assert "look closer" in capsys.readouterr().out
    assert main([*argv, "--strict"]) == 1


def test_bad_input_is_one_line_and_exit_2(capsys):
    cases = [
        (["--dims", "2,x,1"], "--dims must be an integer >= 1; got 'x'"),
        (["--dims", "2,,1"], "--dims takes items separated by commas or spaces, none empty"),
        (["--dims", "2,0,1"], "--dims must be an integer >= 1; got '0'"),
        (["--dims", "2"], "--dims needs at least an input and an output size"),
        (["--dims", "2,100000000,1"], "GiB of memory"),
        (["--mode", "fast", "--directions", "1000000000"], "with 1,000,000,000 directions"),
        (["--seed", "18446744073709551616"], "--seed must be an integer in [0, 2**63)"),
        (["--seed", "1,2"], "--seed must be an integer in [0, 2**63); got '1,2'"),
        (["--seed", "-1"], "--seed must be an integer in [0, 2**63)"),
        (["--numpy", "missing.py"], "file 'missing.py' does not exist"),
        (["--init", "hee"], "--init: unknown scheme 'hee'; did you mean 'he'"),
        (["--data", "circls"], "--data: unknown dataset 'circls'; did you mean 'circles'"),
        (["--dims", "3,4,1"], "number of input features of circles (2)"),
        (["--dims", "2,4,3"], "one sigmoid output"),
        (["--activation", "rellu"], "did you mean 'relu'"),
        (["--plant-bug", "linear2.bais"], "did you mean 'linear2.bias'"),
        (["--plant-bug", "linear2.bias:x"], "FACTOR must be a number"),
        (["--eps", "0"], "--eps must be a number > 0; got '0'"),
        (["--l2", "-1"], "--l2 must be a number >= 0; got '-1'"),
        (["--examples", "0"], "--examples must be an integer >= 1; got '0'"),
    ]
    for argv, message in cases:
        assert main(["gradcheck", *argv]) == 2, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, (argv, err)
        assert err.startswith("initlab gradcheck: error:")


def test_unknown_mode_is_a_usage_error(capsys):
    assert main(["gradcheck", "--mode", "fsat"]) == 2
    assert "invalid choice: 'fsat'" in capsys.readouterr().err


# ------------------------------------------------------------------ issue 12: NaN never passes


def test_a_diverged_net_is_never_correct(capsys):
    # weights of 1e11..1e14 after lr 1e6: w + eps == w - eps, the numeric gradient is 0/0
    for extra in ([], ["--plant-bug", "linear2.bias"], ["--mode", "fast"]):
        argv = ["gradcheck", "--after", "50", "--lr", "1e6", *extra]
        assert main(argv) == 1, extra
        out = capsys.readouterr().out
        assert "verdict: not finite" in out and "lost in the rounding" in out
        assert "verdict: correct" not in out


def test_an_eps_lost_in_round_off_is_never_correct(capsys):
    assert main(["gradcheck", "--eps", "1e-320", "--examples", "16"]) == 1
    out = capsys.readouterr().out
    assert "verdict: not finite" in out and "use a larger eps" in out


# ------------------------------------------------------------------ --numpy FILE.py

LEARNER = """
import numpy as np

rng = np.random.RandomState(1)
X = rng.randn(4, 3)
Y = np.array([1, 1, 0])
_shapes = [("W1", (5, 4)), ("b1", (5, 1)), ("W2", (3, 5)), ("b2", (3, 1)), ("W3", (1, 3)),
           ("b3", (1, 1))]
_values = {name: rng.randn(*shape) for name, shape in _shapes}


def parameters():
    return dict(_values)


def forward(p):
    A1 = np.maximum(0, p["W1"] @ X + p["b1"])
    A2 = np.maximum(0, p["W2"] @ A1 + p["b2"])
    A3 = 1 / (1 + np.exp(-(p["W3"] @ A2 + p["b3"])))
    cost = np.sum(-Y * np.log(A3) - (1 - Y) * np.log(1 - A3)) / 3
    return cost, (A1, A2, A3)


cost = forward


def gradients(p):
    _, (A1, A2, A3) = forward(p)
    dZ3 = A3 - Y
    dZ2 = (p["W3"].T @ dZ3) * (A2 > 0)
    dZ1 = (p["W2"].T @ dZ2) * (A1 > 0)
    return {"dW3": dZ3 @ A2.T / 3, "db3": dZ3.sum(1, keepdims=True) / 3,
            "dW2": dZ2 @ A1.T / 3 * FACTOR, "db2": dZ2.sum(1, keepdims=True) / 3,
            "dW1": dZ1 @ X.T / 3, "db1": dZ1.sum(1, keepdims=True) / 3}
"""


def test_numpy_file_fixed_passes_and_planted_bug_is_named(tmp_path, capsys):
    good = tmp_path / "good.py"
    good.write_text(LEARNER.replace("FACTOR", "1"))
    assert main(["gradcheck", "--numpy", str(good)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Your backward propagation works perfectly fine! difference = ")
    bad = tmp_path / "bad.py"
    bad.write_text(LEARNER.replace("FACTOR", "2"))
    assert main(["gradcheck", "--numpy", str(bad)]) == 1
    out = capsys.readouterr().out
    assert out.startswith("There is a mistake in the backward propagation! difference = ")
    assert "backward pass is wrong for W2" in out
    assert main(["gradcheck", "--numpy", str(bad), "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["wrong"] == ["W2"] and data["file"] == str(bad)
    # the same numbers as the library call on the same functions
    import importlib.util

    spec = importlib.util.spec_from_file_location("bad_learner", bad)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    from initlab.course import gradient_check

    params = module.parameters()
    direct = gradient_check(module.cost, params, module.gradients(params))
    assert data["difference"] == direct.difference


def test_numpy_file_errors_are_one_line(tmp_path, capsys):
    cases = {
        "none.py": ("x = 1\n", "must define cost, parameters, gradients; missing"),
        "exits.py": ("import sys\nsys.exit(3)\n", "exited with code 3"),
        "raises.py": ("raise RuntimeError('boom')\n", "RuntimeError: boom"),
        "notfn.py": ("cost = 1\nparameters = {}\ngradients = {}\n", "must be a function"),
    }
    for name, (text, message) in cases.items():
        path = tmp_path / name
        path.write_text(text)
        assert main(["gradcheck", "--numpy", str(path)]) == 2, name
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, (name, err)
