import json
import math

import pytest
import torch

import initlab
from initlab.experiments import Comparison, compare


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
        ({"seeds": [-1]}, ValueError, r"seeds\[0\] must be >= 0"),
        ({"init_style": "keras"}, ValueError, "init_style must be one of"),
        ({"optimizer": "sgdd"}, ValueError, "did you mean 'sgd'"),
        ({"data": "cirlces"}, ValueError, "did you mean 'circles'"),
    ],
)
def test_bad_inputs(kwargs, error, message):
    with pytest.raises(error, match=message):
        compare(**{"iterations": 5, "progress": False, **kwargs})
