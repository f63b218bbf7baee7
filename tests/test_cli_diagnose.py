"""``initlab diagnose``: built-in MLP, user models, --fix/--json/--plot, one-line errors."""

from __future__ import annotations

import json
import textwrap

import pytest

from initlab.cli import main

SMALL = ["diagnose", "--depth", "9", "--width", "32", "--batch", "64"]  # 10 weight layers


def run(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_builtin_mlp_vanishing(capsys):
    code, out, err = run(capsys, *SMALL, "--activation", "tanh", "--init", "normal:std=0.01")
    assert code == 0 and err == ""
    assert "grad out" in out and "act9" in out
    assert "vanishing: activation rms falls from" in out
    assert "recommended init" in out and "xavier_normal" in out


def test_builtin_mlp_healthy_json(capsys):
    code, out, _ = run(capsys, *SMALL, "--json")
    assert code == 0
    data = json.loads(out)
    assert [v["kind"] for v in data["verdicts"]] == ["healthy"]
    assert len(data["layers"]) == 19


def test_fix_shows_before_and_after_and_plots(capsys, tmp_path):
    path = tmp_path / "signal.png"
    code, out, _ = run(capsys, *SMALL, "--init", "zeros", "--fix", "--plot", str(path))
    assert code == 0
    before, after = out.split("\nafter:\n")
    assert "symmetric" in before and "healthy" in after
    assert "rms before" in after and f"wrote {path}" in out
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_fix_json_keeps_stdout_parseable(capsys, tmp_path):
    path = tmp_path / "s.png"
    code, out, err = run(capsys, *SMALL, "--init", "zeros", "--fix", "--json", "--plot", str(path))
    assert code == 0 and "wrote" in err
    data = json.loads(out)
    assert data["before"]["verdicts"][0]["kind"] == "symmetric"
    assert [v["kind"] for v in data["after"]["verdicts"]] == ["healthy"]


MODEL_FILE = textwrap.dedent(
    """
    import torch
    from torch import nn

    def cnn():
        return nn.Sequential(
            nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 2)
        )

    def broken():
        raise RuntimeError("no weights here")

    def not_a_model():
        return 3

    def exits():
        import sys
        sys.exit(5)

    def gpt2():
        from transformers import GPT2Config, GPT2LMHeadModel

        config = GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=128, n_positions=32)
        return GPT2LMHeadModel(config)
    """
)


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "models.py"
    path.write_text(MODEL_FILE)
    return path


def test_user_model(capsys, model_file):
    code, out, _ = run(
        capsys,
        "diagnose",
        "--model",
        f"{model_file}:cnn",
        "--input-shape",
        "3,8,8",
        "--init",
        "he_normal",
        "--batch",
        "16",
    )
    assert code == 0
    assert "Conv2d" in out and "verdicts" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "missing.py:f", "--input-shape", "3"], "does not exist"),
        (["--model", "{dir}:f", "--input-shape", "3"], "is not a regular file"),
        (["--model", "{file}:broken", "--input-shape", "3"], "broken() in"),
        (["--model", "{file}:not_a_model", "--input-shape", "3"], "not nn.Module"),
        (["--model", "{file}:cnm", "--input-shape", "3,8,8"], "did you mean 'cnn'"),
        (["--model", "{file}:cnn", "--input-shape", "3,9"], "rejected inputs of shape"),
        (["--model", "{file}:cnn", "--input-shape", "3,x"], "--input-shape must be"),
        (["--model", "{file}:cnn"], "needs --input-shape"),
        (["--model", "{file}"], "--model must be FILE.py:FACTORY"),
        (["--model", "{file}:cnm", "--input-shape", "3,8,8"], "no function 'cnm' in"),
        (["--init", "he_nromal"], "he_normal"),
        (["--depth", "-1"], "--depth must be an integer >= 0; got '-1'"),
        (["--activation", "tahn"], "tanh"),
        (["--model", "{file}:exits", "--input-shape", "3"], "exited (sys.exit) with code 5"),
        (["--model", "{exit_file}:f", "--input-shape", "3"], "exited (sys.exit) with code 3"),
        (["--plot", ""], "--plot must not be empty"),
        (["--init", ""], "--init must not be empty"),
        (["--init", "normal:std=x"], "--init 'normal:std=x': std must be a number"),
        (["--input-shape", "3,,8"], "--input-shape takes items separated by commas or spaces"),
        (["--sections", "sp"], "--sections: unknown section 'sp'; did you mean 'spp'?"),
        (["--widths", "8,8"], "--widths needs at least two different widths"),
        (["--html", "{dir}"], "--html must name a file, not a folder"),
        (["--width", "10000000"], "GiB, more than this machine's"),
        (["--batch", "1000000000000"], "GiB, more than this machine's"),
        (["--model", "{file}:cnn", "--input-shape", "4", "--input-dtype", "long"], "--vocab-size"),
        (["--vocab-size", "10"], "--vocab-size goes with --model"),
    ],
)
def test_errors_are_one_line(capsys, model_file, args, message):
    exit_file = model_file.parent / "exits.py"
    exit_file.write_text("import sys\nsys.exit(3)\n")
    args = [
        a.replace("{file}", str(model_file))
        .replace("{exit_file}", str(exit_file))
        .replace("{dir}", str(model_file.parent))
        for a in args
    ]
    code, out, err = run(capsys, "diagnose", "--width", "8", "--depth", "2", *args)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("initlab diagnose: error:")
    assert message in err


def test_token_inputs_for_a_language_model(capsys, model_file):
    code, out, _ = run(
        capsys,
        "diagnose",
        "--model",
        f"{model_file}:gpt2",
        "--input-shape",
        "16",
        "--vocab-size",
        "128",
        "--batch",
        "2",
    )
    assert code == 0, out
    assert "healthy" in out and "lm_head" in out


def test_model_help_says_the_file_runs(capsys):
    assert main(["diagnose", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "file's code runs" in out and "weights_only=False" in out
