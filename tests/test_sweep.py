"""initlab.sweep: spec expansion and errors, seeding, chunking, the result store and resume."""

from __future__ import annotations

import json
import os

import pytest
import torch

from initlab import SweepResult, SweepSpec, sweep
from initlab.bench.sweep import backends
from initlab.bench.sweep.engine import build_member
from initlab.bench.sweep.spec import config_id, init_seed
from initlab.bench.sweep.store import METRICS, read_csv
from initlab.bench.train import as_dataset

SMALL = {"scheme": ["he", "xavier"], "scale": [0.5, 2.0], "depth": [1, 2], "width": 6,
         "seed": [0, 1], "iterations": 30, "dtype": "float64"}  # fmt: skip


def _metrics(result):
    return [{k: r[k] for k in ("config_id", *METRICS)} for r in result.rows]


# ---------------------------------------------------------------------------- spec
def test_grid_expands_in_axis_order_with_defaults():
    spec = SweepSpec.from_dict(SMALL)
    configs = spec.configs()
    assert len(configs) == 2 * 2 * 2 * 2
    assert [c["seed"] for c in configs[:2]] == [0, 1]  # the last axis varies fastest
    assert configs[0]["scheme"] == configs[7]["scheme"] == "he"
    assert configs[0]["lr"] == 0.01 and configs[0]["data"] == "circles"
    assert len({config_id(c) for c in configs}) == len(configs)


def test_random_search_is_reproducible_and_draws_from_ranges():
    data = {"scale": {"low": 0.1, "high": 10, "log": True}, "depth": [1, 2, 3],
            "search": "random", "samples": 20, "sweep_seed": 5}  # fmt: skip
    a, b = SweepSpec.from_dict(data).configs(), SweepSpec.from_dict(data).configs()
    assert a == b and 10 < len(a) <= 20
    assert all(0.1 <= c["scale"] <= 10 for c in a)
    assert {c["depth"] for c in a} <= {1, 2, 3}
    other = SweepSpec.from_dict({**data, "sweep_seed": 6}).configs()
    assert other != a


def test_spec_files_json_and_yaml(tmp_path):
    (tmp_path / "s.json").write_text(json.dumps({"schemes": ["he"], "depths": [1, 3]}))
    (tmp_path / "s.yaml").write_text("schemes: [he]\ndepths: [1, 3]\n")
    a = SweepSpec.from_file(tmp_path / "s.json").configs()
    b = SweepSpec.from_file(tmp_path / "s.yaml").configs()
    assert a == b and [c["depth"] for c in a] == [1, 3]


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"sceme": ["he"]}, "did you mean 'scheme'"),
        ({"scheme": ["hee_normal"]}, "he_normal"),
        ({"activation": ["tahn"]}, "did you mean 'tanh'"),
        ({"optimizer": ["sgd"]}, "full-batch"),
        ({"depth": "2,x"}, "axis 'depth' takes integers; got 'x'"),
        ({"depth": [2, 2]}, "lists a value twice"),
        ({"scale": {"low": 1, "high": 2}}, "needs search='random'"),
        ({"depth": {"low": 1, "high": 2}, "search": "random", "samples": 2}, "only for scale"),
        ({"search": "random"}, "needs samples"),
        ({"lr": [0.0]}, "lr\\[0\\] must be > 0"),
        ({"depth": [2, 3], "layer_dims": [2, 4, 1]}, "layer_dims fixes"),
        ({"iterations": 0}, "iterations must be >= 1"),
    ],
)
def test_bad_specs_say_what_was_wrong(data, match):
    with pytest.raises(ValueError, match=match):
        SweepSpec.from_dict(data)


def test_bad_spec_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        SweepSpec.from_file(tmp_path / "missing.yaml")
    (tmp_path / "s.toml").write_text("x")
    with pytest.raises(ValueError, match=r"must end in \.json, \.yaml or \.yml"):
        SweepSpec.from_file(tmp_path / "s.toml")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ValueError, match="not valid JSON"):
        SweepSpec.from_file(tmp_path / "bad.json")


def test_factory_without_a_swept_argument_is_refused():
    def net(width: int = 4) -> torch.nn.Module:
        return torch.nn.Linear(2, 1)

    with pytest.raises(TypeError, match="varies 'depth' but model factory"):
        sweep(SweepSpec(axes={"depth": [1, 2]}, model=net, iterations=2), progress=False)


def test_a_model_with_the_wrong_output_shape_fails_before_training():
    def net(width: int = 4) -> torch.nn.Module:
        return torch.nn.Sequential(torch.nn.Linear(2, width), torch.nn.Flatten(0))

    with pytest.raises(ValueError, match="logits of shape"):
        sweep(SweepSpec(axes={"width": [3, 4]}, model=net, iterations=2), progress=False)


# ---------------------------------------------------------------------------- seeding
def test_init_depends_on_the_config_not_its_position():
    spec = SweepSpec.from_dict(SMALL)
    configs = spec.configs()
    data = as_dataset("circles")
    c = configs[5]
    assert init_seed(0, c) == init_seed(0, dict(reversed(list(c.items()))))
    a = build_member(spec, c, data)
    b = build_member(SweepSpec.from_dict({**SMALL, "scheme": ["xavier", "he"]}), c, data)
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)
    # same draw, scaled: configs that differ only in scale are common random numbers
    twin = build_member(spec, {**c, "scale": 0.5 if c["scale"] == 2.0 else 2.0}, data)
    ratio = next(a.parameters()) / next(twin.parameters())
    expected = (c["scale"] / (0.5 if c["scale"] == 2.0 else 2.0)) ** 0.5
    assert torch.allclose(ratio, torch.full_like(ratio, expected), rtol=1e-12)


@pytest.mark.parametrize("engine", ["stacked", "vmap", "loop"])
def test_results_do_not_depend_on_chunking(engine):
    spec = {**SMALL, "engine": engine, "scheme": "he", "lr": [0.05, 0.5], "iterations": 20}
    whole = sweep(spec, progress=False)
    ones = sweep(spec, chunk=1, progress=False)
    threes = sweep(spec, chunk=3, progress=False)
    assert _metrics(whole) == _metrics(ones) == _metrics(threes)
    assert {r["members"] for r in ones.rows} == {1}
    assert {r["members"] for r in whole.rows} == ({4} if engine == "stacked" else {8})


def test_stacked_vmap_and_loop_engines_agree():
    a = sweep({**SMALL, "engine": "stacked"}, progress=False)
    b = sweep({**SMALL, "engine": "vmap"}, progress=False)
    c = sweep({**SMALL, "engine": "loop"}, progress=False)
    for x, y, z in zip(a.rows, b.rows, c.rows, strict=True):
        for key in ("final_loss", "best_loss", "initial_loss", "test_loss"):
            assert x[key] == pytest.approx(y[key], rel=1e-9) == z[key]
        assert x["train_accuracy"] == y["train_accuracy"] == z["train_accuracy"]


class _TinyCNN(torch.nn.Module):
    def __init__(self, width: int = 3) -> None:
        super().__init__()
        self.conv = torch.nn.Conv1d(1, width, 1)
        self.conv.weight.requires_grad_(False)  # the vmap engine trains it all the same
        self.head = torch.nn.Linear(2 * width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.conv(x.unsqueeze(1))).flatten(1))


def _mlp_factory(width: int = 3) -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(2, width), torch.nn.ReLU(),
                               torch.nn.Linear(width, 1))  # fmt: skip


def test_auto_trains_models_with_convolutions_member_by_member():
    """Issue 16: vmapped convolutions become grouped ones, 2.3x slower on the CPU than a
    per-run loop; auto gives such models the loop engine, with the vmap engine's numbers."""
    spec = {"width": [2, 3], "scale": [0.5, 2.0], "iterations": 10, "dtype": "float64",
            "lr": 0.1}  # fmt: skip
    with torch.random.fork_rng(devices=[]):
        auto = sweep({**spec, "model": _TinyCNN}, progress=False)
        vmapped = sweep({**spec, "model": _TinyCNN, "engine": "vmap"}, progress=False)
        mlp = sweep({**spec, "model": _mlp_factory}, progress=False)
    assert {r["engine"] for r in auto.rows} == {"loop"}
    assert {r["engine"] for r in mlp.rows} == {"vmap"}
    for x, y in zip(auto.rows, vmapped.rows, strict=True):
        assert x["status"] == y["status"] == "finished"
        assert x["final_loss"] == pytest.approx(y["final_loss"], rel=1e-9)
        assert x["test_accuracy"] == y["test_accuracy"]


def test_divergence_is_recorded_with_its_iteration():
    result = sweep({"scale": [1.0, 1e40], "depth": 3, "lr": 0.1, "iterations": 20,
                    "dtype": "float32", "engine": "vmap"}, progress=False)  # fmt: skip
    ok, bad = result.rows
    assert ok["status"] == "finished" and ok["final_loss"] is not None
    assert bad["status"] == "diverged" and bad["diverged_at"] == 0 and bad["final_loss"] is None


# ---------------------------------------------------------------------------- store
def test_store_round_trips_every_number(tmp_path):
    result = sweep(SMALL, out=tmp_path / "s", progress=False)
    rows = read_csv(tmp_path / "s" / "results.csv")  # in the order chunks finished

    def ordered(res):
        return sorted(_metrics(res), key=lambda r: r["config_id"])

    assert ordered(SweepResult(rows, result.spec)) == ordered(result)
    import pyarrow.parquet as pq

    table = pq.read_table(tmp_path / "s" / "results.parquet")
    assert table.column("final_loss").to_pylist() == [r["final_loss"] for r in rows]
    assert set(table.column("fingerprint").to_pylist()) == {result.rows[0]["fingerprint"]}
    loaded = SweepResult.load(tmp_path / "s")
    assert ordered(loaded) == ordered(result)
    with pytest.raises(FileExistsError, match="not empty"):
        sweep(SMALL, out=tmp_path / "s", progress=False)


def test_resume_after_a_kill_loses_nothing(tmp_path, monkeypatch):
    spec = {**SMALL, "depth": [1, 2, 3]}  # three architectures: three chunks
    reference = sweep(spec, progress=False)
    calls = []
    real = backends.run_chunk

    def dies_after_first(chunk):
        if calls:
            raise KeyboardInterrupt
        calls.append(chunk.index)
        return real(chunk)

    monkeypatch.setattr(backends, "run_chunk", dies_after_first)
    with pytest.raises(KeyboardInterrupt):
        sweep(spec, out=tmp_path / "s", progress=False)
    saved = read_csv(tmp_path / "s" / "results.csv")
    assert len(saved) == len(reference.rows) // 3  # the first chunk, complete
    ran = []

    def counting(chunk):
        ran.extend(config_id(c) for c in chunk.configs)
        return real(chunk)

    monkeypatch.setattr(backends, "run_chunk", counting)
    resumed = sweep(spec, out=tmp_path / "s", resume=True, progress=False)
    assert len(ran) == len(reference.rows) - len(saved)
    assert not {r["config_id"] for r in saved} & set(ran)
    assert _metrics(resumed) == _metrics(reference)
    assert len(read_csv(tmp_path / "s" / "results.csv")) == len(reference.rows)


def _snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def test_resume_with_other_settings_is_refused_before_writing(tmp_path):
    """Issue 26: a resume whose configs did not overlap the saved ones was accepted with other
    settings (one results.csv held runs of 5, 50 and 7 iterations), and a refused resume still
    overwrote sweep.json."""
    out = tmp_path / "s"
    sweep({"scale": [1.0], "iterations": 5}, out=out, progress=False)
    before = _snapshot(out)
    changes = (({"iterations": 50}, "iterations: 5 -> 50"),
               ({"iterations": 5, "dtype": "float64"}, "dtype: 'float32' -> "),
               ({"iterations": 5, "sweep_seed": 1}, "sweep_seed: 0 -> 1"))  # fmt: skip
    for change, message in changes:
        with pytest.raises(ValueError, match=rf"different settings \({message}"):
            sweep({"scale": [2.0], **change}, out=out, resume=True, progress=False)
        assert _snapshot(out) == before  # nothing written, sweep.json included
    with pytest.raises(ValueError, match="different settings"):  # overlapping configs too
        sweep({"scale": [1.0], "iterations": 31}, out=out, resume=True, progress=False)


def test_resume_with_other_data_of_the_same_name_is_refused(tmp_path):
    x = torch.randn(40, 2, generator=torch.Generator().manual_seed(0))
    y = (x[:, 0] > 0).long()
    out = tmp_path / "s"
    sweep({"data": "mine", "scale": [1.0], "iterations": 3}, out=out, progress=False,
          datasets={"mine": (x, y)})  # fmt: skip
    before = _snapshot(out)
    with pytest.raises(ValueError, match=r"runs on data 'mine' were made with other data"):
        sweep({"data": "mine", "scale": [2.0], "iterations": 3}, out=out, resume=True,
              progress=False, datasets={"mine": (x, 1 - y)})  # fmt: skip
    assert _snapshot(out) == before


def test_resume_keeps_the_rows_it_does_not_ask_for(tmp_path):
    out = tmp_path / "s"
    first = sweep({"scale": [1.0, 2.0], "iterations": 5}, out=out, progress=False)
    again = sweep({"scale": [4.0], "iterations": 5}, out=out, resume=True, progress=False)
    assert [r["scale"] for r in again.rows] == [4.0, 1.0, 2.0]  # asked for first, then kept
    assert again.rows[1:] == first.rows
    assert [r["scale"] for r in read_csv(out / "results.csv")] == [1.0, 2.0, 4.0]
    assert json.loads((out / "sweep.json").read_text())["axes"]["scale"] == [1.0, 2.0]


def test_force_removes_the_previous_report_and_plots(tmp_path, capsys):
    """Issue 26: sweep --force left the previous report and plots beside the new results."""
    from initlab.cli import main

    out = tmp_path / "s"
    assert main(["sweep", "--scale", "1,2", "--depth", "1,2", "--iterations", "2", "--out",
                 str(out), "--no-progress"]) == 0  # fmt: skip
    (out / "notes.txt").write_text("mine")
    assert {"phase.png", "multiplier.png", "curve-depth.png", "report.html"} <= set(os.listdir(out))
    assert main(["sweep", "--iterations", "2", "--out", str(out), "--force", "--no-progress",
                 "--no-report"]) == 0  # fmt: skip
    capsys.readouterr()
    assert sorted(os.listdir(out)) == ["notes.txt", "results.csv", "results.parquet",
                                       "sweep.json"]  # fmt: skip
    assert len(read_csv(out / "results.csv")) == 1


def _with(line, column, value):
    from initlab.bench.sweep.store import COLUMNS

    cells = line.split(",")  # the rows of these specs hold no quoted commas
    cells[COLUMNS.index(column)] = value
    return ",".join(cells)


_DAMAGE = {
    "a row twice": (lambda lines: [*lines, lines[1]], "line 4: config .* is already on line 2"),
    "an empty id": (lambda lines: [lines[0], _with(lines[1], "config_id", ""), *lines[2:]],
                    "line 2: the row has no config_id"),
    "nan loss marked finished": (
        lambda lines: [lines[0], _with(lines[1], "final_loss", "nan"), *lines[2:]],
        "line 2: config .* is marked finished but its final_loss is nan"),
    "an unknown status": (lambda lines: [lines[0], _with(lines[1], "status", "done"), *lines[2:]],
                          "status must be finished or diverged; got 'done'"),
    "a word for a number": (lambda lines: [lines[0], _with(lines[1], "depth", "two"), *lines[2:]],
                            "line 2: depth must be an integer; got 'two'"),
}  # fmt: skip


@pytest.mark.parametrize("damage", list(_DAMAGE))
def test_a_damaged_results_csv_is_refused_on_resume(tmp_path, capsys, damage):
    """Issue 26: a results.csv with a duplicate row, an empty id or a NaN loss marked
    finished was accepted on resume."""
    from initlab.cli import main

    out = tmp_path / "s"
    sweep({"scale": [1.0, 2.0], "iterations": 3}, out=out, progress=False)
    edit, message = _DAMAGE[damage]
    lines = (out / "results.csv").read_text().splitlines()
    (out / "results.csv").write_text("\n".join(edit(lines)) + "\n")
    before = _snapshot(out)
    with pytest.raises(ValueError, match=message):
        sweep({"scale": [1.0, 2.0], "iterations": 3}, out=out, resume=True, progress=False)
    assert main(["sweep", "--scale", "1,2", "--iterations", "3", "--out", str(out), "--resume",
                 "--no-progress"]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "results.csv, line" in err
    assert _snapshot(out) == before


def test_ray_missing_gives_one_line(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray":
            raise ImportError("No module named 'ray'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    with pytest.raises(ValueError, match=r"pip install initlab\[ray\]"):
        sweep({"iterations": 2}, backend="ray", progress=False)


# ---------------------------------------------------------------------------- CLI, report
def test_cli_sweep_writes_results_and_report(tmp_path, capsys):
    from initlab.cli import main

    out = tmp_path / "cli"
    code = main(["sweep", "--schemes", "he,variance_scaling:scale=1,mode=fan_avg",
                 "--scale", "0.5,2", "--depth", "1,2", "--iterations", "20", "--out",
                 str(out), "--no-progress"])  # fmt: skip
    assert code == 0
    text = capsys.readouterr().out
    assert "variance_scaling:scale=1,mode=fan_avg" in text
    names = set(os.listdir(out))
    assert {"results.csv", "results.parquet", "sweep.json", "phase.png", "multiplier.png",
            "report.html"} <= names  # fmt: skip
    assert (out / "phase.png").read_bytes()[:4] == b"\x89PNG"
    assert "Phase diagram: scale x depth" in (out / "report.html").read_text()
    assert len(read_csv(out / "results.csv")) == 8


def test_cli_model_factory_and_bad_input(tmp_path, capsys):
    from initlab.cli import main

    (tmp_path / "net.py").write_text(
        "import torch.nn as nn\n"
        "def make(width, in_features, out_features):\n"
        "    return nn.Sequential(nn.Linear(in_features, width), nn.Tanh(),\n"
        "                         nn.Linear(width, out_features))\n"
    )
    out = tmp_path / "m"
    model = f"{tmp_path / 'net.py'}:make"
    code = main(["sweep", "--model", model, "--width", "3,5", "--iterations", "5", "--out",
                 str(out), "--no-progress", "--no-report"])  # fmt: skip
    assert code == 0
    assert [r["engine"] for r in read_csv(out / "results.csv")] == ["vmap", "vmap"]
    capsys.readouterr()
    assert main(["sweep", "--depth", "2,x", "--no-progress", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--depth must be an integer >= 0; got 'x'" in err
    assert main(["sweep", "--model", f"{tmp_path / 'net.py'}:mkae", "--out",
                 str(tmp_path / "y")]) == 2  # fmt: skip
    assert "did you mean 'make'" in capsys.readouterr().err


def test_report_plots_any_two_axes(tmp_path):
    from initlab.report.sweep import metric_curves, phase_diagram, trainable

    result = sweep({**SMALL, "activation": ["relu", "tanh"]}, progress=False)
    assert phase_diagram(result, "activation", "width")[:4] == b"\x89PNG"
    assert metric_curves(result, "depth", hue="scheme")[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="two different axes"):
        phase_diagram(result, "depth", "depth")
    row = dict(result.rows[0], status="finished", final_loss=0.1, prior_loss=0.69)
    assert trainable(row) and not trainable(dict(row, final_loss=0.6))


def test_ray_chunk_size_spreads_configs_over_the_cpus():
    from initlab.bench.sweep.run import MIN_RAY_CHUNK, ray_chunk

    configs = [{}] * 32
    assert ray_chunk(configs, 64, num_cpus=2) == 16  # two tasks, not one task and an idle CPU
    assert ray_chunk(configs * 2, 64, num_cpus=2) == 32
    assert ray_chunk(configs * 8, 64, num_cpus=2) == 64  # never above the chunk size
    assert ray_chunk(configs[:10], 64, num_cpus=4) == MIN_RAY_CHUNK  # Ray's per-task cost
    assert ray_chunk(configs[:3], 2, num_cpus=4) == 2


class _MetaShyCNN(_TinyCNN):
    """Builds only on a real device (reads a value in __init__), so the engine choice must
    not rely on the meta device alone."""

    def __init__(self, width: int = 3) -> None:
        super().__init__(width)
        self.scale = float(torch.ones(1).sum())


def test_auto_finds_convolutions_in_a_model_that_cannot_be_built_on_meta():
    with torch.random.fork_rng(devices=[]):
        result = sweep({"model": _MetaShyCNN, "width": [2], "iterations": 2}, progress=False)
    assert {r["engine"] for r in result.rows} == {"loop"}


class _ResidualBNCNN(torch.nn.Module):
    """A ResNet basic block on digits: conv-BN-ReLU-conv-BN plus the identity, then a head."""

    def __init__(self, width: int = 4) -> None:
        super().__init__()
        nn = torch.nn
        self.stem = nn.Sequential(nn.Unflatten(1, (1, 8, 8)), nn.Conv2d(1, width, 3, padding=1))
        self.body = nn.Sequential(
            nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
        )  # fmt: skip
        self.head = nn.Sequential(nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                  nn.Linear(width, 10))  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x)
        return self.head(h + self.body(h))


def test_loop_and_vmap_engines_agree_on_a_residual_batch_norm_cnn():
    from initlab.bench.datasets import load

    d = load("digits")
    data = as_dataset((d.x_train[:64], d.y_train[:64], d.x_test[:16], d.y_test[:16]))
    spec = {"model": _ResidualBNCNN, "width": [3, 4], "scale": [0.5, 2.0], "iterations": 5,
            "data": "small", "dtype": "float64", "lr": 0.05, "optimizer": "adam"}  # fmt: skip
    with torch.random.fork_rng(devices=[]):
        loop = sweep(spec, datasets={"small": data}, progress=False)
        vmapped = sweep({**spec, "engine": "vmap"}, datasets={"small": data}, progress=False)
    assert {r["engine"] for r in loop.rows} == {"loop"}
    for x, y in zip(loop.rows, vmapped.rows, strict=True):
        assert x["status"] == y["status"] == "finished"
        for key in ("initial_loss", "final_loss", "best_loss", "test_loss"):
            assert x[key] == pytest.approx(y[key], rel=1e-9)
        assert x["train_accuracy"] == y["train_accuracy"]
