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
    # A step so large that truncation error lands between the thresholds.
    argv = ["gradcheck", "--activation", "tanh", "--eps", "1e-3", "--examples", "32"]
    assert main(argv) == 0
    assert "look closer" in capsys.readouterr().out
    assert main([*argv, "--strict"]) == 1


def test_bad_input_is_one_line_and_exit_2(capsys):
    cases = [
        (["--dims", "2,x,1"], "--dims must be comma-separated integers"),
        (["--dims", "3,4,1"], "number of input features of circles (2)"),
        (["--dims", "2,4,3"], "one sigmoid output"),
        (["--activation", "rellu"], "did you mean 'relu'"),
        (["--plant-bug", "linear2.bais"], "did you mean 'linear2.bias'"),
        (["--plant-bug", "linear2.bias:x"], "FACTOR must be a number"),
        (["--eps", "0"], "eps must be > 0"),
        (["--l2", "-1"], "--l2 must be >= 0"),
    ]
    for argv, message in cases:
        assert main(["gradcheck", *argv]) == 2, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, (argv, err)
        assert err.startswith("initlab gradcheck: error:")


def test_unknown_mode_is_a_usage_error(capsys):
    try:
        main(["gradcheck", "--mode", "fsat"])
    except SystemExit as stop:
        assert stop.code == 2
    else:
        raise AssertionError("argparse should reject --mode fsat")
    assert "invalid choice: 'fsat'" in capsys.readouterr().err
