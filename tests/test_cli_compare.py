import json

from initlab.cli import main


def test_compare_writes_everything(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["compare", "--iterations", "200", "--out", str(out), "--no-progress"])
    assert code == 0
    printed = capsys.readouterr().out
    for word in ("scheme", "final loss", "train acc", "test acc", "status", "seconds",
                 "zeros", "random:scale=10", "he"):  # fmt: skip
        assert word in printed
    runs = json.loads((out / "results.json").read_text())["runs"]
    assert [r["scheme"] for r in runs] == ["zeros", "random:scale=10", "he"]
    assert runs[0]["train_accuracy"] == 0.5 and runs[0]["iterations"] == 200
    for name in ("history.csv", "loss.png", "gradient_norms.png", "decision_boundaries.png",
                 "report.html"):  # fmt: skip
        assert (out / name).exists()


def test_options_reach_the_library(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["compare", "--schemes", "he", "xavier_uniform", "--data", "moons", "--dims",
                 "2,6,1", "--activation", "tanh", "--iterations", "50", "--lr", "0.1",
                 "--optimizer", "momentum", "--seed", "0", "1", "--l2", "0.1", "--dropout", "0.1",
                 "--clip-norm", "1.0", "--clip-adaptive", "0.5", "--init-style", "model",
                 "--out", str(out),
                 "--no-progress", "--no-report"])  # fmt: skip
    assert code == 0
    config = json.loads((out / "results.json").read_text())["config"]
    assert config["layer_dims"] == [2, 6, 1] and config["activation"] == ["tanh"]
    assert config["optimizer"] == "momentum" and config["seeds"] == [0, 1]
    assert config["l2"] == 0.1 and config["dropout"] == 0.1 and config["clip_norm"] == 1.0
    assert config["clip_adaptive"] == 0.5
    assert len(json.loads((out / "results.json").read_text())["runs"]) == 4


def _one_line_error(capsys, argv):
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    return err


def test_errors_are_one_line_and_exit_2(tmp_path, capsys):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "file").write_text("x")
    assert "not empty" in _one_line_error(capsys, ["compare", "--out", str(out)])
    assert "did you mean 'he'" in _one_line_error(
        capsys, ["compare", "--schemes", "hee", "--out", str(tmp_path / "a")]
    )
    assert "has 2 features" in _one_line_error(
        capsys, ["compare", "--dims", "3,4,1", "--out", str(tmp_path / "b")]
    )
    assert "--lr must be a number > 0; got '-1'" in _one_line_error(
        capsys, ["compare", "--lr", "-1", "--out", str(tmp_path / "c")]
    )
    assert "--dims must be an integer >= 1; got 'x'" in _one_line_error(
        capsys, ["compare", "--dims", "2,x"]
    )
    assert "--resume needs --out" in _one_line_error(capsys, ["compare", "--resume"])
    assert not (tmp_path / "a").exists()  # nothing created when the input is bad


def test_force_overwrites(tmp_path, capsys):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "file").write_text("x")
    code = main(["compare", "--schemes", "he", "--iterations", "20", "--out", str(out),
                 "--force", "--no-progress", "--no-report"])  # fmt: skip
    assert code == 0 and (out / "results.json").exists()


def test_resume_continues_a_saved_comparison(tmp_path, capsys):
    out = tmp_path / "run"
    base = ["compare", "--iterations", "20", "--out", str(out), "--no-progress", "--no-report"]
    assert main([*base, "--schemes", "he"]) == 0
    assert main([*base, "--schemes", "he", "zeros", "--resume"]) == 0
    runs = json.loads((out / "results.json").read_text())["runs"]
    assert [r["scheme"] for r in runs] == ["he", "zeros"]
    capsys.readouterr()
    assert "different settings (lr: 0.01 -> 0.1)" in _one_line_error(
        capsys, [*base, "--lr", "0.1", "--resume"]
    )


def test_monitor_every_writes_the_monitor_files(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["compare", "--schemes", "he", "zeros", "--iterations", "30", "--monitor-every",
                 "10", "--out", str(out), "--no-progress"])  # fmt: skip
    assert code == 0
    assert "monitor.json" in capsys.readouterr().out
    saved = json.loads((out / "monitor.json").read_text())
    assert [(r["scheme"], r["iterations"]) for r in saved["runs"]] == [
        ("he", [0, 10, 20]), ("zeros", [0, 10, 20])
    ]  # fmt: skip
    assert json.loads((out / "results.json").read_text())["config"]["monitor_every"] == 10
    assert (out / "monitor.png").exists() and "monitor" in (out / "report.html").read_text()
    base = ["compare", "--schemes", "he", "zeros", "--iterations", "30", "--out", str(out),
            "--no-progress", "--resume"]  # fmt: skip
    assert main([*base, "--monitor-every", "10"]) == 0  # everything reused
    capsys.readouterr()
    assert "different settings (monitor_every: " in _one_line_error(capsys, base)


def test_monitor_every_must_be_a_positive_integer(tmp_path, capsys):
    out = tmp_path / "m"
    err = _one_line_error(capsys, ["compare", "--monitor-every", "0", "--out", str(out)])
    assert "--monitor-every must be an integer >= 1; got '0'" in err
    assert not out.exists()
    err = _one_line_error(capsys, ["compare", "--monitor-every", "x"])
    assert "--monitor-every must be an integer >= 1; got 'x'" in err
