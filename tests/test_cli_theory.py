"""The theory subcommands: lsuv, critical, coord-check, spp, spectrum (text, --json, --plot,
one-line errors), and the criticality section of ``initlab diagnose``."""

from __future__ import annotations

import json
import textwrap

import pytest

from initlab.cli import main

MODEL_FILE = textwrap.dedent(
    """
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2 = nn.Linear(16, 16), nn.Linear(16, 16)

        def forward(self, x):
            return x + self.fc2(torch.relu(self.fc1(x)))

    def resmlp():
        return nn.Sequential(nn.Linear(8, 16), Block(), Block(), nn.Linear(16, 2))

    def mlp_of_width(width):
        return nn.Sequential(nn.Linear(8, width), nn.ReLU(), nn.Linear(width, 3))
    """
)


def run(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "m.py"
    path.write_text(MODEL_FILE)
    return path


def test_lsuv_text_json_plot_and_save(capsys, model_file, tmp_path):
    spec = f"{model_file}:resmlp"
    code, out, _ = run(capsys, "lsuv", "--model", spec, "--input-shape", "8")
    assert code == 0
    assert "2 residual merges" in out and "3 forward passes" in out and "converged" in out
    plot, saved = tmp_path / "l.png", tmp_path / "w.pt"
    code, out, err = run(
        capsys,
        "lsuv",
        "--model",
        spec,
        "--input-shape",
        "8",
        "--json",
        "--plot",
        str(plot),
        "--save",
        str(saved),
    )
    data = json.loads(out)
    assert code == 0 and data["converged"] and "wrote" in err
    assert [r["kind"] for r in data["rows"]] == [
        "layer",
        "layer",
        "branch",
        "layer",
        "branch",
        "layer",
    ]
    assert plot.read_bytes()[:4] == b"\x89PNG" and saved.stat().st_size > 0


def test_critical_point_line_and_model(capsys, model_file, tmp_path):
    code, out, _ = run(capsys, "critical", "tanh", "--sigma-b2", "0.05", "--json")
    assert code == 0 and json.loads(out)["sigma_w2"] == pytest.approx(1.761, abs=1e-3)
    code, out, _ = run(capsys, "critical", "tanh", "--sigma-b2", "0,0.05")
    assert code == 0 and "1.761" in out
    code, out, _ = run(
        capsys, "critical", "tanh", "--sigma-w2", "1.0", "--sigma-b2", "0.05", "--json"
    )
    assert json.loads(out)["xi_c"] == pytest.approx(3.6, rel=0.02)
    plot = tmp_path / "eoc.png"
    code, out, _ = run(capsys, "critical", "relu", "--sigma-b2", "0", "--plot", str(plot))
    assert code == 0 and plot.read_bytes()[:4] == b"\x89PNG"


def test_spp_and_spectrum(capsys, model_file, tmp_path):
    spec = f"{model_file}:resmlp"
    code, out, _ = run(capsys, "spp", "--model", spec, "--input-shape", "8", "--json")
    assert code == 0 and len(json.loads(out)["blocks"]) == 2
    plot = tmp_path / "s.png"
    code, out, _ = run(
        capsys,
        "spectrum",
        "--depth",
        "4",
        "--width",
        "8",
        "--init",
        "orthogonal",
        "--activation",
        "linear",
        "--batch",
        "1",
        "--plot",
        str(plot),
    )
    assert code == 0 and "verdict: isometric" in out and plot.exists()


def test_coord_check(capsys, model_file, tmp_path):
    plot = tmp_path / "c.png"
    code, out, _ = run(
        capsys,
        "coord-check",
        "--model",
        f"{model_file}:mlp_of_width",
        "--input-shape",
        "8",
        "--widths",
        "16,64",
        "--steps",
        "1",
        "--json",
        "--plot",
        str(plot),
    )
    data = json.loads(out)
    assert code == 0 and data["widths"] == [16, 64] and plot.exists()
    assert {r["module"] for r in data["rows"]} == {"0", "1", "2"}


def test_coord_check_model_file_errors_are_the_shared_ones(capsys, model_file, tmp_path):
    # coord-check had its own copy of the model-file loader: no closest match for a misspelt
    # factory, and a file that calls sys.exit ended the CLI without a message.
    base = ["coord-check", "--input-shape", "8", "--model"]
    code, _, err = run(capsys, *base, f"{model_file}:mlp_of_widht")
    assert code == 2 and "did you mean 'mlp_of_width'" in err
    exits = tmp_path / "exits.py"
    exits.write_text("import sys\nsys.exit(3)\n")
    code, _, err = run(capsys, *base, f"{exits}:f")
    assert code == 2 and "exited (sys.exit) with code 3" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["critical", "tahn"], "did you mean 'tanh'"),
        (["critical", "tanh", "--sigma-b2", "x"], "--sigma-b2 must be a number >= 0; got 'x'"),
        (["critical", "rleu"], "ACTIVATION: unknown activation 'rleu'; did you mean 'relu'"),
        (["critical", "--sigma-b2", "0,0.05", "--sigma-w2", "1"], "give one --sigma-b2"),
        (["spp", "--input-shape", "3"], "--model FILE.py:FACTORY is required"),
        (["coord-check", "--widths", "8,a"], "--widths must be an integer >= 1; got 'a'"),
        (["coord-check", "--input-shape", "3,4"], "--input-shape of the built-in MLP is one"),
        (["lsuv", "--batch", "0"], "--batch must be an integer >= 1; got '0'"),
        (["lsuv", "--save", "/nonexistent-folder/w.pt"], "--save: folder '/nonexistent-folder'"),
        (["spectrum", "--steps", "0"], "--steps must be an integer >= 1; got '0'"),
    ],
)
def test_errors_are_one_line(capsys, args, message):
    code, _, err = run(capsys, *args)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_diagnose_prints_criticality_for_mlps(capsys):
    code, out, _ = run(
        capsys,
        "diagnose",
        "--depth",
        "6",
        "--width",
        "16",
        "--batch",
        "32",
        "--activation",
        "tanh",
        "--init",
        "xavier_normal",
        "--json",
    )
    data = json.loads(out)
    assert code == 0 and data["criticality"]["activation"] == "tanh"
    assert data["criticality"]["recommended_sigma_w2"] == pytest.approx(1.0)
