"""One grammar over every ``initlab`` command: every flag has help, every list flag takes
``A,B`` and ``A B``, shared defaults agree with the library, and errors are one line under
200 characters that name the flag, the value and at most three closest names."""

from __future__ import annotations

import argparse
import json
import pickle
import subprocess
import sys
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from initlab.cli import build_parser, error_line, flags, main
from initlab.cli.flags import FlagError, Items, Value, join_scheme_parameters, split_items


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


PARSER = build_parser()
COMMANDS = _subparsers(PARSER)


def _required(parser: argparse.ArgumentParser) -> list[str]:
    """Values for the parser's required options (roles needs --model), from their examples."""
    argv: list[str] = []
    for action in parser._actions:
        if action.required and action.option_strings:
            argv += [action.option_strings[0], action.example[0]]
    return argv


def _list_flags() -> list[tuple[str, str, Items]]:
    return [
        (name, action.option_strings[0], action)
        for name, parser in COMMANDS.items()
        for action in parser._actions
        if isinstance(action, Items)
    ]


# ---------------------------------------------------------------------------- the parsers
def test_every_flag_of_every_command_has_help():
    missing = [
        f"{name} {action.option_strings or action.dest}"
        for name, parser in [("initlab", PARSER), *COMMANDS.items()]
        for action in parser._actions
        if not action.help or action.help == argparse.SUPPRESS
    ]
    assert not missing, missing
    sub = next(a for a in PARSER._actions if isinstance(a, argparse._SubParsersAction))
    assert all(choice.help for choice in sub._choices_actions)


def test_list_flags_take_commas_spaces_or_both(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    checked = []
    for name, flag, action in _list_flags():
        parser, example = COMMANDS[name], action.example
        assert len(example) >= 2, (name, flag)
        base = [*_required(parser)]
        forms = [[flag, ",".join(example)], [flag, *example], [flag, ", ".join(example)],
                 [flag, *(e + "," for e in example[:-1]), example[-1]]]  # fmt: skip
        parsed = [getattr(parser.parse_args([*base, *form]), action.dest) for form in forms]
        assert all(p == parsed[0] for p in parsed), (name, flag, parsed)
        assert len(parsed[0]) == len(example), (name, flag, parsed[0])
        checked.append(f"{name} {flag}")
    # the lists the issue named, on every command that has them
    for expected in ("compare --schemes", "compare --seeds", "compare --dims", "sweep --schemes",
                     "sweep --seeds", "sweep --dims", "gradcheck --dims", "diagnose --input-shape",
                     "diagnose --widths", "coord-check --widths", "critical --sigma-b2",
                     "recipes --diff", "roles --input-shape"):  # fmt: skip
        assert expected in checked, expected


def test_single_value_flags_parse_their_example(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for parser in COMMANDS.values():
        for action in parser._actions:
            if isinstance(action, Value) and not isinstance(action, Items):
                argv = [*action.option_strings[:1], action.example[0]]
                parser.parse_args([*_required(parser), *argv])  # no error


def test_the_same_flag_has_one_name_and_meaning_everywhere():
    """--seeds is the list flag (with --seed as the same flag); --dims every layer size;
    --depth, where it exists, says it counts hidden layers."""
    for name, parser in COMMANDS.items():
        options = {s: a for a in parser._actions for s in a.option_strings}
        assert "--layer-dims" not in options, name
        if "--seeds" in options:
            assert options["--seed"] is options["--seeds"], name
        if "--depth" in options:
            assert "hidden layers" in options["--depth"].help, name
    compare = COMMANDS["compare"].parse_args(["--seed", "1,2", "--schemes", "he,xavier"])
    assert compare.seeds == [1, 2] and compare.schemes == ["he", "xavier"]
    sweep = COMMANDS["sweep"].parse_args(["--seed", "1", "2"])
    assert sweep.seed == [1, 2]


def test_shared_defaults_agree_with_the_library():
    from initlab.bench.compare import compare
    from initlab.bench.datasets import NAMES
    from initlab.bench.sweep.spec import DEFAULTS, SweepSpec

    assert flags.SWEEP == DEFAULTS
    assert SweepSpec().iterations == flags.SWEEP_ITERATIONS
    assert set(flags.DATASETS) <= set(NAMES)
    assert compare.__kwdefaults__["seeds"] == flags.COMPARE_SEED
    for name in ("diagnose", "lsuv", "spectrum"):
        args = COMMANDS[name].parse_args([])
        assert (args.depth, args.width, args.activation) == (
            flags.DEPTH, flags.WIDTH, flags.ACTIVATION,
        ), name  # fmt: skip


@pytest.mark.parametrize("command", ["diagnose", "lsuv", "spectrum"])
def test_depth_counts_hidden_layers_in_every_probe(command):
    from torch import nn

    from initlab.cli._theory import build
    from initlab.cli.diagnose import _build

    args = COMMANDS[command].parse_args(["--depth", "2", "--width", "4"])
    model = (
        _build(args)[0] if command == "diagnose" else build(args, square=command == "spectrum")[0]
    )
    linear = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert len(linear) == 3 and linear[0].in_features == 4  # 2 hidden layers: 3 weight layers


def test_sweep_depth_counts_hidden_layers():
    from initlab.bench.datasets import load
    from initlab.bench.sweep.engine import layer_dims
    from initlab.cli.sweep import build_spec

    args = COMMANDS["sweep"].parse_args(["--depth", "2", "--width", "4"])
    spec = build_spec(args)
    config = spec.configs()[0]
    assert layer_dims(spec, config, load("circles")) == [2, 4, 4, 1]  # 2 hidden layers


# ---------------------------------------------------------------------------- the entry points
def test_version_and_python_dash_m(capsys):
    from initlab import __version__

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"initlab {__version__}"
    result = subprocess.run([sys.executable, "-m", "initlab", "--help"], capture_output=True,
                            text=True, check=False)  # fmt: skip
    assert result.returncode == 0 and "COMMAND" in result.stdout and result.stderr == ""
    result = subprocess.run([sys.executable, "-m", "initlab", "--version"], capture_output=True,
                            text=True, check=False)  # fmt: skip
    assert result.stdout.strip() == f"initlab {__version__}"


# ---------------------------------------------------------------------------- list parsing
ITEM = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_.:-", min_size=1, max_size=8)
SEPARATORS = st.sampled_from([",", ", ", " ,", " , ", " ", "  "])


@given(st.lists(ITEM, min_size=1, max_size=6), st.data())
def test_split_items_is_the_same_for_any_separators(items, data):
    separators = data.draw(st.lists(SEPARATORS, min_size=len(items) - 1,
                                    max_size=len(items) - 1))  # fmt: skip
    text = items[0] + "".join(s + item for s, item in zip(separators, items[1:], strict=True))
    assert split_items(text) == items
    assert split_items(text.split(" ")) == items  # as the shell splits it: separate arguments
    assert split_items(items) == items


@given(st.lists(ITEM, min_size=1, max_size=5), st.integers(0, 5))
def test_an_empty_item_is_an_error_naming_the_flag(items, at):
    at = min(at, len(items))
    text = ",".join([*items[:at], "", *items[at:]])
    with pytest.raises(FlagError, match=r"^--dims takes items separated by commas or spaces"):
        split_items(text, "--dims")


@given(st.lists(st.integers(1, 10**6), min_size=1, max_size=6), SEPARATORS)
def test_integer_lists_round_trip_through_the_parser(values, separator):
    parser = COMMANDS["gradcheck"]
    text = separator.join(map(str, values))
    assert parser.parse_args(["--dims", text]).dims == values
    assert parser.parse_args(["--dims", *map(str, values)]).dims == values


SCHEME = st.tuples(
    st.sampled_from(["he", "xavier", "random", "variance_scaling", "normal"]),
    st.lists(st.tuples(st.sampled_from(["scale", "mode", "std", "gain"]),
                       st.sampled_from(["1", "2.5", "fan_out"])), max_size=3),
)  # fmt: skip


@given(st.lists(SCHEME, min_size=1, max_size=4), SEPARATORS)
def test_scheme_parameters_keep_their_commas(schemes, separator):
    specs = [name + (":" + ",".join(f"{k}={v}" for k, v in params) if params else "")
             for name, params in schemes]  # fmt: skip
    assert join_scheme_parameters(split_items(separator.join(specs))) == specs


# ---------------------------------------------------------------------------- errors
BAD = [
    ["compare", "--schemes", "hee"],
    ["compare", "--schemes", "he,xavier_normel"],
    ["compare", "--seeds", "1,x"],
    ["compare", "--seed", "-1"],
    ["compare", "--activation", "rleu,tanh"],
    ["compare", "--dims", "2,,1"],
    ["compare", "--data", "circls"],
    ["compare", "--data", "missing.csv"],
    ["sweep", "--schemes", "hee"],
    ["sweep", "--optimizer", "sgdd"],
    ["sweep", "--depth", "2,x"],
    ["sweep", "--heatmap", "scale,dpth"],
    ["sweep", "--dims", "2,4,1", "--depth", "3"],
    ["diagnose", "--init", "hee"],
    ["diagnose", "--init", "normal:std=x"],
    ["diagnose", "--activation", "rleu"],
    ["diagnose", "--depth", "-1"],
    ["diagnose", "--sections", "sp"],
    ["lsuv", "--init", "he_nromal"],
    ["lsuv", "--save", "/nonexistent-initlab/w.pt"],
    ["spectrum", "--init", "orthogonl"],
    ["gradcheck", "--init", "hee"],
    ["gradcheck", "--seed", "1,2"],
    ["critical", "rleu"],
    ["critical", "--sigma-b2", "x"],
    ["coord-check", "--widths", "8,a"],
    ["recipes", "--show", "megatrn"],
    ["recipes", "--diff", "gpt2"],
    ["reproduce", "he2016"],
    ["compare", "--schemes", "x" * 500],
]


@pytest.mark.parametrize("argv", BAD, ids=lambda a: " ".join(a)[:40])
def test_bad_input_is_one_short_line_naming_the_flag(capsys, tmp_path, argv):
    assert main([*argv]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and "Traceback" not in err
    assert len(err.rstrip("\n")) < flags.MESSAGE_LIMIT, err
    assert err.startswith(f"initlab {argv[0]}: error: ")
    named = [a for a in argv[1:] if a.startswith("--")] or ["ACTIVATION", "NAME"]
    assert any(flag in err for flag in named), err
    assert err.count("'") <= 2 * (1 + 3) + 2, err  # the value and at most three matches


def test_unknown_names_offer_three_matches_and_the_listing(capsys):
    for command in (["compare", "--schemes"], ["sweep", "--schemes"], ["diagnose", "--init"],
                    ["lsuv", "--init"], ["gradcheck", "--init"]):  # fmt: skip
        assert main([*command, "hee"]) == 2
        err = capsys.readouterr().err
        assert f"{command[1]}: unknown scheme 'hee'; did you mean 'he', 'eye' or 'eye_'?" in err
        assert "'initlab schemes' lists them" in err


def test_the_longest_message_was_1900_characters_and_is_now_under_200(capsys, tmp_path):
    """Before: 'unknown scheme' listed every alias (1,898 characters); a recipe 427."""
    lengths = []
    for argv in BAD:
        main(argv)
        lengths.append(len(capsys.readouterr().err.rstrip("\n")))
    assert max(lengths) < flags.MESSAGE_LIMIT


def test_library_unknown_names_are_shortened_too(capsys, tmp_path):
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"scheme": ["hee"], "iterations": 2}))
    assert main(["sweep", "--spec", str(spec), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "unknown scheme 'hee'; did you mean 'he', 'eye' or 'eye_'?" in err
    assert len(err) < flags.MESSAGE_LIMIT and "'initlab schemes' lists them" in err


def test_unknown_name_error_keeps_its_names_through_pickle():
    from initlab._core.validation import UnknownNameError, unknown_name_error

    error = pickle.loads(pickle.dumps(unknown_name_error("scheme", "hee", ["he", "xavier"])))
    assert isinstance(error, UnknownNameError) and isinstance(error, ValueError)
    assert (error.name, error.choices, error.matches) == ("hee", ["he", "xavier"], ["he"])
    assert (
        error_line(error)
        == "unknown scheme 'hee'; did you mean 'he'? ('initlab schemes' lists them)"
    )


def test_os_errors_have_no_errno_prefix():
    assert error_line(FileNotFoundError(2, "No such file or directory", "x.csv")) == (
        "No such file or directory: x.csv"
    )


def test_a_missing_factory_names_the_flag_and_at_most_three_functions(capsys, tmp_path):
    path = tmp_path / "my_torch.py"
    path.write_text("".join(f"def f{i}():\n    pass\n" for i in range(6)))
    assert main(["diagnose", "--model", f"{path}:s", "--input-shape", "3"]) == 2
    err = capsys.readouterr().err
    assert f"--model: no function 's' in {path} (it defines f0, f1, f2 and 3 more)" in err
    assert "my_torch.py:s" not in err.replace(str(path), "")


# ---------------------------------------------------------------------------- reproduce --out
def test_reproduce_refuses_a_busy_or_file_out_before_any_work(capsys, tmp_path, monkeypatch):
    import initlab.papers.base as base

    def no_work(*args, **kwargs):
        raise AssertionError("reproduce ran before the --out check")

    monkeypatch.setattr(base, "reproduce", no_work)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "mine.txt").write_text("x")
    start = time.perf_counter()
    assert main(["reproduce", "he2015", "--out", str(busy)]) == 2
    assert "is not empty; pass --force" in capsys.readouterr().err
    assert (busy / "mine.txt").read_text() == "x"
    file = tmp_path / "file"
    file.write_text("x")
    assert main(["reproduce", "he2015", "--out", str(file)]) == 2
    assert "--out must name a folder" in capsys.readouterr().err
    assert time.perf_counter() - start < 5
