import json
import math

import pytest
import torch

import initlab
from initlab.bench.compare import Comparison, MonitorSeries, compare


@pytest.mark.slow
def test_classic_comparison_reaches_the_course_numbers():
    result = compare(progress=False)  # zeros, random:scale=10, he; 15000 GD steps, float64
    zeros, random10, he = result["zeros"], result["random:scale=10"], result["he"]
    assert zeros.train_accuracy == 0.5 and zeros.test_accuracy == 0.5
    assert math.isclose(random10.train_accuracy, 0.83) and math.isclose(
        random10.test_accuracy, 0.86
    )
    assert he.train_accuracy >= 0.99 and math.isclose(he.test_accuracy, 0.96)
    # why: zeros never moves, random x10 starts huge, he goes down
    assert max(zeros.history.loss) - min(zeros.history.loss) < 1e-12
    assert random10.history.loss[0] > 100
    assert he.history.loss[-1] < 0.1
    assert all(r.status == "finished" and r.iterations == 15000 for r in result.runs)
    assert "random:scale=10" in result.table()


def _separate(scheme, seed, dims, **options):
    model = initlab.mlp(dims).double()
    run = initlab.train(model, "circles", init=scheme, seed=seed, progress=False, **options)
    return run


@pytest.mark.parametrize(
    "options",
    [
        {"lr": 0.05},
        {"lr": 0.05, "optimizer": "momentum", "l2": 0.7, "clip_norm": 0.05},
        {"lr": 0.05, "optimizer": "sgd", "batch_size": 64},
        {"lr": 0.01, "optimizer": "adam", "clip_value": 0.01, "clip_adaptive": 0.05},
    ],
)
def test_batched_members_equal_separate_runs(options):
    dims = [2, 8, 4, 1]
    schemes, seeds = ["he", "xavier_uniform", "random:scale=2"], [0, 1]
    batched = compare(schemes, "circles", dims, seeds=seeds, init_style="model",
                      iterations=120, log_every=40, progress=False, **options)  # fmt: skip
    assert len(batched.runs) == 6
    for run in batched.runs:
        alone = _separate(run.scheme, run.seed, dims, iterations=120, log_every=40, **options)
        assert run.history.iteration == alone.history.iteration
        assert torch.allclose(torch.tensor(run.history.loss), torch.tensor(alone.history.loss),
                              rtol=1e-10, atol=1e-13)  # fmt: skip
        for name in ("linear1", "linear3"):
            assert torch.allclose(torch.tensor(run.history.grad_norm[name]),
                                  torch.tensor(alone.history.grad_norm[name]),
                                  rtol=1e-8, atol=1e-13)  # fmt: skip
        for mine, theirs in zip(run.model.parameters(), alone.model.parameters(), strict=True):
            assert torch.allclose(mine, theirs, rtol=1e-10, atol=1e-13)
        assert run.train_accuracy == alone.train_accuracy
        assert run.test_accuracy == alone.test_accuracy


def test_divergence_in_a_batch_is_per_member_and_exact():
    dims = [2, 10, 5, 1]
    options = {"lr": 0.5, "iterations": 300, "log_every": 100}
    result = compare(["random:scale=3", "he", "zeros"], "circles", dims, activation="linear",
                     output="linear", init_style="model", seeds=[0], progress=False,
                     **options)  # fmt: skip
    by_scheme = {r.scheme: r for r in result.runs}
    bad = by_scheme["random:scale=3"]
    model = initlab.mlp(dims, "linear", "linear").double()
    alone = initlab.train(model, "circles", init="random:scale=3", seed=0, progress=False,
                          **options)  # fmt: skip
    assert alone.status == "diverged"
    assert bad.status == "diverged" and bad.diverged_at == alone.diverged_at
    assert bad.diverged_layer == alone.diverged_layer
    assert bad.final_loss is None and all(i < bad.diverged_at for i in bad.history.iteration)
    assert by_scheme["zeros"].status == "finished"


def test_save_load_and_resume(tmp_path):
    out = tmp_path / "cmp"
    first = compare(["he"], iterations=50, seeds=[3], out=out, progress=False)
    saved = json.loads((out / "results.json").read_text())
    assert {"scheme", "status", "final_loss", "train_accuracy", "test_accuracy", "iterations",
            "seconds"} <= set(saved["runs"][0])  # fmt: skip
    assert (out / "history.csv").read_text().startswith("scheme,seed,iteration,loss")
    with pytest.raises(FileExistsError, match="not empty"):
        compare(["he"], iterations=50, out=out, progress=False)
    with pytest.raises(ValueError, match="different settings"):
        compare(["he"], iterations=60, out=out, resume=True, progress=False)
    # resume with one more scheme: the saved run is reused, not retrained
    second = compare(["he", "zeros"], iterations=50, seeds=[3], out=out, resume=True,
                     progress=False)  # fmt: skip
    assert second.runs[0].seconds == first.runs[0].seconds  # reused
    loaded = Comparison.load(out)
    assert [r.scheme for r in loaded.runs] == ["he", "zeros"]
    assert loaded.runs[0].model is not None


def test_resume_skips_finished_runs(tmp_path):
    out = tmp_path / "cmp"
    compare(["he", "zeros"], iterations=40, out=out, progress=False)
    data = json.loads((out / "results.json").read_text())
    data["runs"][0]["seconds"] = 123.0  # marker: a reused run keeps it
    (out / "results.json").write_text(json.dumps(data))
    again = compare(["he", "zeros"], iterations=40, out=out, resume=True, progress=False)
    assert again.runs[0].seconds == 123.0


def test_slow_activation_falls_back_to_single_runs():
    result = compare(["he", "xavier"], activation="gelu", iterations=30, progress=False)
    assert [r.status for r in result.runs] == ["finished", "finished"]


def test_other_data_defaults_its_dims():
    result = compare(["he"], "blobs", iterations=200, lr=0.1, progress=False)
    assert result.config["layer_dims"] == [2, 10, 5, 3] and result.config["output"] == "softmax"
    assert result.runs[0].train_accuracy > 0.8


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"schemes": "he"}, TypeError, "list of scheme specs"),
        ({"schemes": ["hee"]}, ValueError, "did you mean 'he'"),
        ({"layer_dims": [3, 4, 1]}, ValueError, "has 2 features"),
        ({"activation": "rellu"}, ValueError, "did you mean 'relu'"),
        ({"seeds": [-1]}, ValueError, r"seeds\[0\] must be an integer in \[0, 2\*\*63\)"),
        ({"init_style": "keras"}, ValueError, "init_style must be one of"),
        ({"optimizer": "sgdd"}, ValueError, "did you mean 'sgd'"),
        ({"data": "cirlces"}, ValueError, "did you mean 'circles'"),
    ],
)
def test_bad_inputs(kwargs, error, message):
    with pytest.raises(error, match=message):
        compare(**{"iterations": 5, "progress": False, **kwargs})


# ---------------------------------------------------------------------------- monitor_every
def test_monitored_runs_equal_batched_runs_and_record_the_signal():
    dims, x = [2, 8, 4, 1], initlab.datasets.load("circles").x_train.double()
    options = {"seeds": [0, 1], "init_style": "model", "iterations": 60, "log_every": 20,
               "lr": 0.05, "progress": False}  # fmt: skip
    schemes = ["he", "random:scale=2", "zeros"]
    batched = compare(schemes, "circles", dims, **options)
    monitored = compare(schemes, "circles", dims, monitor_every=10, **options)
    assert not batched.monitors and monitored.config["monitor_every"] == 10
    for fast, slow in zip(batched.runs, monitored.runs, strict=True):
        assert (fast.scheme, fast.seed) == (slow.scheme, slow.seed)
        assert math.isclose(fast.final_loss, slow.final_loss, rel_tol=1e-10, abs_tol=1e-13)
        assert torch.allclose(torch.tensor(fast.history.loss), torch.tensor(slow.history.loss),
                              rtol=1e-10, atol=1e-13)  # fmt: skip
        assert fast.train_accuracy == slow.train_accuracy
        assert fast.test_accuracy == slow.test_accuracy
        series = monitored.monitor(slow.scheme, slow.seed)
        assert series.every == 10 and series.iterations == [0, 10, 20, 30, 40, 50]
        assert series.layers == ["linear1", "linear2", "linear3"]
        # the monitor saw the same training: ||dL/dW|| equals the history's at 0, 20, 40
        for layer in series.layers:
            seen = series.series("grad_weight")[layer][::2]
            logged = slow.history.grad_norm[layer][:3]
            assert seen == pytest.approx(logged, rel=1e-5, abs=1e-12)
    # iteration 0 is the initial net: rms of linear1's output, recomputed by hand
    he = monitored.monitor("he", 1)
    model = initlab.mlp(dims).double()
    initlab.init_model(model, "he", seed=1)
    with torch.no_grad():
        expected = float(model.linear1(x).pow(2).mean().sqrt())
    assert he.series("rms")["linear1"][0] == pytest.approx(expected, rel=1e-6)
    assert he.verdicts[0] == ["healthy"]
    zeros = monitored.monitor("zeros", 0)
    assert set(zeros.series("rms")["linear1"]) == {0.0} and "symmetric" in zeros.verdicts[0]
    # JSON all the way
    data = json.loads(json.dumps(monitored.to_dict(), allow_nan=False))
    assert [(m["scheme"], m["seed"]) for m in data["monitor"]] == [
        (r.scheme, r.seed) for r in monitored.runs
    ]
    with pytest.raises(KeyError, match="monitor_every=k"):
        batched.monitor("he")


def test_monitor_series_json_keeps_non_finite_values():
    series = MonitorSeries(2, [0, 2], {"rms": {"linear1": [1.5, math.inf]},
                                       "grad_output": {"linear1": [math.nan, None]}},
                           [["healthy"], ["exploding"]])  # fmt: skip
    text = json.dumps(series.to_dict(), allow_nan=False)
    back = MonitorSeries.from_dict(json.loads(text))
    assert back.series("rms") == {"linear1": [1.5, math.inf]}
    value, missing = back.series("grad_output")["linear1"]
    assert math.isnan(value) and missing is None
    assert back.verdicts == series.verdicts and back.layers == ["linear1"]
    with pytest.raises(ValueError, match="did you mean 'rms'"):
        back.series("rmss")


def test_public_result_types_and_functions_are_exported():
    # Comparison.monitors holds MonitorSeries; recommend and train_stacked are public in
    # their modules (doctor.__all__, train.__all__)
    from initlab.bench.stacked import train_stacked
    from initlab.doctor.diagnose import recommend

    for name, value in (("MonitorSeries", MonitorSeries), ("recommend", recommend),
                        ("train_stacked", train_stacked)):  # fmt: skip
        assert name in initlab.__all__ and getattr(initlab, name) is value


def test_monitored_divergence_is_the_batched_one():
    options = {"activation": "linear", "output": "linear", "lr": 0.5, "iterations": 60,
               "init_style": "model", "seeds": [0], "progress": False}  # fmt: skip
    fast = compare(["random:scale=3"], **options).runs[0]
    result = compare(["random:scale=3"], monitor_every=2, **options)
    slow = result.runs[0]
    assert slow.status == fast.status == "diverged"
    assert (slow.diverged_at, slow.diverged_layer) == (fast.diverged_at, fast.diverged_layer)
    series = result.monitor("random:scale=3")
    assert series.iterations == [0, 2] and series.verdicts[-1][0] == "exploding"
    rms = series.series("rms")["linear3"]
    assert rms[1] > 1e50 * rms[0]  # the explosion, seen one step before the NaN


def test_monitoring_every_iteration_of_a_diverging_run():
    # the record of the iteration the run diverges holds huge finite values in the first layer
    # (1.6e88 with init_model's counter-stream values for seed 0; 1e100+ with rng="torch")
    result = compare(["random:scale=3"], activation="linear", output="linear", lr=0.5,
                     iterations=60, init_style="model", seeds=[0], monitor_every=1,
                     progress=False)  # fmt: skip
    series = result.monitor("random:scale=3")
    assert series.iterations == [0, 1, 2, 3] and result.runs[0].diverged_at == 3
    last = [values[3] for values in series.series("rms").values()]
    assert last[0] > 1e80 and not (math.isfinite(last[-1]) and last[-1] < 1e150)
    saved = json.loads(json.dumps(result.to_dict(), allow_nan=False))["monitor"][0]
    back = MonitorSeries.from_dict(saved).series("rms")
    assert [str(values[3]) for values in back.values()] == [str(v) for v in last]


def test_monitored_comparison_saves_loads_and_resumes(tmp_path):
    out = tmp_path / "cmp"
    first = compare(["he"], iterations=30, seeds=[3], monitor_every=10, out=out, progress=False)
    saved = json.loads((out / "monitor.json").read_text())
    assert saved["every"] == 10 and [r["scheme"] for r in saved["runs"]] == ["he"]
    assert saved["runs"][0]["iterations"] == [0, 10, 20]
    loaded = Comparison.load(out)
    assert loaded.monitor("he") == first.monitor("he")
    for other in (None, 5):  # monitored with another k, or not at all: not the same comparison
        with pytest.raises(ValueError, match=r"different settings \(monitor_every: "):
            compare(["he"], iterations=30, seeds=[3], monitor_every=other, out=out,
                    resume=True, progress=False)  # fmt: skip
    second = compare(["he", "zeros"], iterations=30, seeds=[3], monitor_every=10, out=out,
                     resume=True, progress=False)  # fmt: skip
    assert second.runs[0].seconds == first.runs[0].seconds  # reused, with its series
    assert second.monitor("he") == first.monitor("he")
    assert set(Comparison.load(out).monitors) == {("he", 3), ("zeros", 3)}
    # a run whose series was lost is trained again rather than left unplotted
    data = json.loads((out / "monitor.json").read_text())
    data["runs"] = data["runs"][1:]
    (out / "monitor.json").write_text(json.dumps(data))
    third = compare(["he", "zeros"], iterations=30, seeds=[3], monitor_every=10, out=out,
                    resume=True, progress=False)  # fmt: skip
    assert third.runs[0].seconds != first.runs[0].seconds
    assert third.runs[1].seconds == second.runs[1].seconds
    assert set(third.monitors) == {("he", 3), ("zeros", 3)}


def test_unmonitored_comparison_ignores_a_stale_monitor_file(tmp_path):
    out = tmp_path / "cmp"
    compare(["he"], iterations=20, monitor_every=5, out=out, progress=False)
    stale = (out / "monitor.json").read_text()
    plain = compare(["he"], iterations=20, out=out, force=True, progress=False)
    assert not (out / "monitor.json").exists() and not plain.monitors  # --force cleared it
    (out / "monitor.json").write_text(stale)  # a file put back by hand is still ignored
    assert not Comparison.load(out).monitors


@pytest.mark.parametrize(
    ("every", "error", "message"),
    [(0, ValueError, "monitor_every must be >= 1"), (2.5, ValueError, "must be an integer"),
     ("10", TypeError, "monitor_every must be a number")],
)  # fmt: skip
def test_bad_monitor_every(every, error, message):
    with pytest.raises(error, match=message):
        compare(["he"], iterations=5, monitor_every=every, progress=False)
