"""The flags the ``initlab`` commands share: one name, one meaning, one default, one parser.

Grammar (every command):

* **Lists.** A flag that takes several values (``--schemes``, ``--seeds``, ``--dims``,
  ``--widths``, ``--input-shape``, ``--sections``, ``--sigma-b2``, ``--diff`` and every sweep
  axis) accepts them comma-separated, space-separated or both: ``--seeds 0,1,2``,
  ``--seeds 0 1 2`` and ``--seeds 0, 1, 2`` are the same. An empty item (``2,,1``) is an error.
  A scheme keeps its own parameters' commas: in ``--schemes he,variance_scaling:scale=2,
  mode=fan_out`` an item with ``=`` and no ``:`` continues the scheme before it.
* **Names.** ``--schemes`` are the schemes an experiment compares; ``--init`` the one scheme a
  single model starts from. ``--seeds`` (``--seed`` is the same flag) replicate an experiment;
  ``--seed`` alone seeds one run. ``--dims`` gives every layer size ``n0,n1,...,nL``;
  ``--depth`` is the number of **hidden layers** of the built-in MLP (``--depth 2``: in -> w ->
  w -> out, three weight layers) and ``--width`` their units; ``--activation`` the hidden
  activation.
* **Errors** name the flag and the value given; an unknown name offers at most three closest
  matches and the command that lists them all (``initlab schemes``), in one line under 200
  characters.

Nothing here imports torch at import time: building the parsers (``initlab --help``) stays light.
Checking a value (a scheme spec, a dataset name) imports what the check needs, at parse time.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from initlab._core.files import check_target
from initlab._core.validation import SEED_LIMIT, closest

# ---------------------------------------------------------------------------- defaults
# The built-in MLP that diagnose, lsuv and spectrum probe: [width] * (depth + 1) + [1 output].
DEPTH = 20
WIDTH = 256
ACTIVATION = "relu"
INIT = "he_normal"
SEED = 0
# compare reproduces the course's experiment: its net and its initial weights (seed 3).
COURSE_DIMS = (2, 10, 5, 1)
COMPARE_SEED = 3
# critical is a mean-field calculator: tanh is its classic case (ReLU has no edge of chaos).
CRITICAL_ACTIVATION = "tanh"
# sweep trains many small nets: the value of every axis a spec leaves out. The library's
# initlab.bench.sweep.spec.DEFAULTS (tests/test_cli_flags.py checks they agree).
SWEEP = {
    "scheme": "he", "scale": 1.0, "activation": "relu", "depth": 2, "width": 16, "lr": 0.01,
    "optimizer": "gd", "data": "circles", "seed": 0,
}  # fmt: skip
SWEEP_ITERATIONS = 1000
DATASETS = ("circles", "moons", "spiral", "blobs", "digits")
MESSAGE_LIMIT = 200
"""Longest error line (``initlab CMD: error: ...``) the CLI prints."""

# ---------------------------------------------------------------------------- wording


def shown(value: object, limit: int = 40) -> str:
    """``repr`` of a value given on the command line, cut to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


def _or(names: Sequence[str]) -> str:
    quoted = [repr(n) for n in names]
    return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"


def unknown(
    flag: str,
    what: str,
    value: str,
    choices: Iterable[str],
    listing: str | None = None,
    also: str = "",
) -> str:
    """``FLAG: unknown WHAT 'x'; did you mean 'a', 'b' or 'c'?`` and where to see them all:
    the command ``listing`` (``initlab schemes``) or, when they fit, the valid names (and
    ``also``, e.g. "or a .csv/.npz file")."""
    choices = sorted(set(choices))
    hint = closest(value, choices)
    message = f"{flag}: unknown {what} {shown(value)}" if flag else f"unknown {what} {shown(value)}"
    if hint:
        message += f"; did you mean {_or(hint)}?"
    valid = ", ".join(choices) + (f", {also}" if also else "")
    tail = f" ('{listing}' lists them)" if listing else f" (valid: {valid})"
    if len(message) + len(tail) <= MESSAGE_LIMIT - 40:
        message += tail
    return message


class FlagError(ValueError):
    """A bad value for one flag; the message names the flag and the value."""


def _expected(flag: str, text: str, what: str) -> FlagError:
    return FlagError(f"{flag} must be {what}; got {shown(text)}")


# ---------------------------------------------------------------------------- lists
_SEPARATOR = re.compile(r"\s*,\s*|\s+")


def split_items(tokens: str | Sequence[str], flag: str = "value") -> list[str]:
    """The items of a list flag: ``["he,xavier", "lecun"]`` -> ``["he", "xavier", "lecun"]``.

    Items are separated by commas, whitespace (the shell's separate arguments) or both; an
    empty item (``2,,1``, ``2,``) is an error naming ``flag``.
    """
    text = tokens if isinstance(tokens, str) else " ".join(tokens)
    items = _SEPARATOR.split(text.strip())
    if not text.strip() or any(item == "" for item in items):
        raise FlagError(
            f"{flag} takes items separated by commas or spaces, none empty; got {shown(text)}"
        )
    return items


def join_scheme_parameters(items: Sequence[str]) -> list[str]:
    """``["he", "variance_scaling:scale=2", "mode=fan_out"]`` -> two specs: an item with ``=``
    and no ``:`` is a further parameter of the scheme before it."""
    specs: list[str] = []
    for item in items:
        if specs and "=" in item and ":" not in item:
            specs[-1] += "," + item
        else:
            specs.append(item)
    return specs


# ---------------------------------------------------------------------------- values
# Each converter takes (text, flag) and returns the value, or raises FlagError.


def integer(minimum: int | None = None) -> Callable[[str, str], int]:
    def convert(text: str, flag: str) -> int:
        what = "an integer" if minimum is None else f"an integer >= {minimum}"
        try:
            value = int(text)
        except ValueError:
            raise _expected(flag, text, what) from None
        if minimum is not None and value < minimum:
            raise _expected(flag, text, what)
        return value

    return convert


def number(minimum: float | None = None, strict: bool = False) -> Callable[[str, str], float]:
    def convert(text: str, flag: str) -> float:
        what = "a number"
        if minimum is not None:
            what = f"a number {'>' if strict else '>='} {minimum:g}"
        try:
            value = float(text)
        except ValueError:
            raise _expected(flag, text, what) from None
        if value != value or value in (float("inf"), float("-inf")):
            raise _expected(flag, text, f"{what} (finite)")
        if minimum is not None and (value <= minimum if strict else value < minimum):
            raise _expected(flag, text, what)
        return value

    return convert


def fraction(text: str, flag: str) -> float:
    """A probability in [0, 1)."""
    value = number(0.0)(text, flag)
    if value >= 1:
        raise _expected(flag, text, "a number in [0, 1)")
    return value


def seed(text: str, flag: str) -> int:
    what = "an integer in [0, 2**63)"
    try:
        value = int(text)
    except ValueError:
        raise _expected(flag, text, what) from None
    if not 0 <= value < SEED_LIMIT:
        raise _expected(flag, text, what)
    return value


def text(value: str, flag: str) -> str:
    """Any text but an empty one (``--out ''`` is a mistake, not the default)."""
    if not value.strip():
        raise FlagError(f"{flag} must not be empty; got {value!r}")
    return value


def choice(names: Sequence[str], what: str) -> Callable[[str, str], str]:
    def convert(value: str, flag: str) -> str:
        if value not in names:
            raise FlagError(unknown(flag, what, value, names))
        return value

    return convert


def scheme(spec: str, flag: str) -> str:
    """A scheme spec (``he``, ``random:scale=10``), checked by building it once."""
    from initlab._core.validation import UnknownNameError
    from initlab.initializers.registry import get

    text(spec, flag)
    try:
        get(spec)
    except UnknownNameError as error:
        raise FlagError(
            unknown(flag, "scheme", error.name, error.choices, "initlab schemes")
        ) from None
    except (ValueError, TypeError) as error:
        raise FlagError(f"{flag} {shown(spec)}: {str(error).splitlines()[0]}") from None
    return spec


def activation(name: str, flag: str) -> str:
    """A hidden activation of the built-in nets."""
    from initlab.bench.choices import HIDDEN_ACTIVATION_NAMES

    return choice(HIDDEN_ACTIVATION_NAMES, "activation")(name, flag)


def any_activation(name: str, flag: str) -> str:
    """Any activation the gains know (critical's mean-field calculator)."""
    from initlab.initializers.gains import ACTIVATIONS

    return choice(tuple(ACTIVATIONS), "activation")(name, flag)


def dataset(value: str, flag: str) -> str:
    """A built-in dataset name or an existing .csv/.npz file."""
    text(value, flag)
    if value.lower().endswith((".csv", ".npz")):
        if not os.path.isfile(value):
            raise FlagError(f"{flag}: no such data file {shown(value)}")
        return value
    if value not in DATASETS:
        raise FlagError(unknown(flag, "dataset", value, DATASETS, also="or a .csv/.npz file"))
    return value


def model_spec(spec: str, flag: str) -> str:
    """``path/to/file.py:FACTORY`` (the file is imported later, when the command runs)."""
    path, sep, name = spec.rpartition(":")
    if not sep or not path.strip() or not name.strip():
        raise _expected(flag, spec, "FILE.py:FACTORY (a file and a function in it)")
    return spec


def output_file(value: str, flag: str) -> str:
    """A file to write: not empty, not a folder, in a folder that exists, and not a link,
    device or FIFO (initlab replaces only regular files)."""
    text(value, flag)
    if os.path.isdir(value) or value.endswith(("/", "\\")):
        raise FlagError(f"{flag} must name a file, not a folder; got {shown(value)}")
    folder = os.path.dirname(os.path.abspath(value))
    if not os.path.isdir(folder):
        raise FlagError(f"{flag}: folder {shown(os.path.dirname(value))} does not exist")
    try:
        check_target(value)
    except OSError as error:
        raise FlagError(f"{flag}: {error}") from None
    return value


def output_folder(value: str, flag: str) -> str:
    """A folder to write: not empty and not an existing file."""
    text(value, flag)
    if os.path.exists(value) and not os.path.isdir(value):
        raise FlagError(f"{flag} must name a folder; {shown(value)} is a file")
    return value


# ---------------------------------------------------------------------------- actions
class Value(argparse.Action):
    """One value, converted by ``item(text, flag)``; errors name the flag the user typed."""

    def __init__(
        self,
        option_strings: Sequence[str],
        dest: str,
        *,
        item: Callable[[str, str], Any] = text,
        example: Sequence[str] = ("x",),
        **kwargs: Any,
    ) -> None:
        super().__init__(option_strings, dest, **kwargs)
        self.item, self.example = item, list(example)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        if values is None:  # an optional positional left out: its default
            setattr(namespace, self.dest, self.default)
            return
        flag = option_string or (self.metavar if isinstance(self.metavar, str) else self.dest)
        try:
            setattr(namespace, self.dest, self.item(values, flag))
        except FlagError as error:
            raise argparse.ArgumentError(None, str(error)) from None


class Items(Value):
    """A list flag: comma- and/or space-separated items, each converted by ``item``.

    ``count``: exactly this many items; ``schemes``: items are scheme specs whose parameters
    keep their commas. ``example``: two or more valid items (the parser tests use them).
    """

    def __init__(
        self,
        option_strings: Sequence[str],
        dest: str,
        *,
        count: int | None = None,
        schemes: bool = False,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("nargs", "+")
        super().__init__(option_strings, dest, **kwargs)
        self.count, self.schemes = count, schemes

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        flag = option_string or self.dest
        try:
            items = split_items(values, flag)
            if self.schemes:
                items = join_scheme_parameters(items)
            if self.count is not None and len(items) != self.count:
                given = shown(" ".join(values))
                raise FlagError(f"{flag} takes {self.count} items; got {len(items)} in {given}")
            setattr(namespace, self.dest, [self.item(item, flag) for item in items])
        except FlagError as error:
            raise argparse.ArgumentError(None, str(error)) from None


# ---------------------------------------------------------------------------- shared flags
def add_seed(parser: argparse._ActionsContainer, what: str = "init and inputs") -> None:
    parser.add_argument(
        "--seed",
        action=Value,
        item=seed,
        default=SEED,
        metavar="N",
        example=["1"],
        help=f"seed for {what}, in [0, 2**63) (default {SEED})",
    )


def add_seeds(parser: argparse._ActionsContainer, default: Any, help: str) -> None:
    parser.add_argument(
        "--seeds",
        "--seed",
        action=Items,
        item=seed,
        default=default,
        metavar="N",
        example=["0", "1"],
        help=help,
    )


def add_json(parser: argparse._ActionsContainer, what: str = "tables") -> None:
    parser.add_argument("--json", action="store_true", help=f"print JSON instead of {what}")


def add_batch(parser: argparse._ActionsContainer, default: int) -> None:
    parser.add_argument(
        "--batch",
        action=Value,
        item=integer(1),
        default=default,
        metavar="N",
        example=["8"],
        help=f"batch size (default {default})",
    )


def add_model(parser: argparse._ActionsContainer, help: str, required: bool = False) -> None:
    parser.add_argument(
        "--model",
        action=Value,
        item=model_spec,
        metavar="FILE.py:FACTORY",
        required=required,
        example=["net.py:build"],
        help=help,
    )


def add_input_shape(parser: argparse._ActionsContainer, help: str, default: Any = None) -> None:
    parser.add_argument(
        "--input-shape",
        action=Items,
        item=integer(1),
        default=default,
        metavar="N",
        example=["3", "8"],
        help=help,
    )


def add_built_in_mlp(parser: argparse._ActionsContainer) -> None:
    """--depth, --width, --activation of the built-in MLP the probes build without --model."""
    parser.add_argument(
        "--depth",
        action=Value,
        item=integer(0),
        default=DEPTH,
        metavar="N",
        example=["3"],
        help=f"hidden layers of the built-in MLP (default {DEPTH}; it has N+1 weight layers)",
    )
    parser.add_argument(
        "--width",
        action=Value,
        item=integer(1),
        default=WIDTH,
        metavar="N",
        example=["8"],
        help=f"units per hidden layer (default {WIDTH})",
    )
    parser.add_argument(
        "--activation",
        action=Value,
        item=activation,
        default=ACTIVATION,
        example=["tanh"],
        metavar="NAME",
        help=f"hidden activation (default {ACTIVATION}): {', '.join(_hidden_activations())}",
    )


def add_init(parser: argparse._ActionsContainer, help: str | None = None) -> None:
    parser.add_argument(
        "--init",
        action=Value,
        item=scheme,
        default=None,
        metavar="SCHEME",
        example=["xavier_normal"],
        help=help
        or f"scheme to initialize with first, e.g. xavier_normal, "
        f"orthogonal, 'normal:std=0.01', zeros ('initlab schemes' lists them; "
        f"default {INIT} for the built-in MLP, the model's own init for "
        f"--model)",
    )


def add_plot(parser: argparse._ActionsContainer, help: str) -> None:
    parser.add_argument(
        "--plot", action=Value, item=output_file, metavar="PATH", example=["plot.png"], help=help
    )


def add_run_folder(parser: argparse._ActionsContainer, resume_help: str) -> None:
    """``--out``, ``--force``, ``--resume`` and ``--no-report``: the output folder of a command
    that trains runs (compare, sweep), locked while initlab writes it."""
    parser.add_argument(
        "--out",
        action=Value,
        metavar="DIR",
        item=output_folder,
        default=None,
        example=["out"],
        help="output folder (default: a new folder under runs/); locked while initlab writes it",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="replace the initlab files of a non-empty --out folder (other files are kept)",
    )
    parser.add_argument(
        "--resume", action="store_true", help=f"{resume_help}, keeping every run saved there "
        "(same settings only)",
    )  # fmt: skip
    parser.add_argument("--no-report", action="store_true", help="skip the plots and report.html")


def add_progress(parser: argparse._ActionsContainer) -> None:
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _hidden_activations() -> tuple[str, ...]:
    from initlab.bench.choices import HIDDEN_ACTIVATION_NAMES

    return HIDDEN_ACTIVATION_NAMES


__all__ = [
    "ACTIVATION", "COMPARE_SEED", "COURSE_DIMS", "CRITICAL_ACTIVATION", "DATASETS", "DEPTH",
    "INIT", "MESSAGE_LIMIT", "SEED", "SWEEP", "SWEEP_ITERATIONS", "WIDTH", "FlagError", "Items",
    "Value", "activation", "add_batch", "add_built_in_mlp", "add_init", "add_input_shape",
    "add_json", "add_model", "add_plot", "add_progress", "add_seed", "add_seeds",
    "any_activation", "choice", "dataset", "fraction", "integer", "join_scheme_parameters",
    "model_spec", "number", "output_file", "output_folder", "scheme", "seed", "shown",
    "split_items", "text", "unknown",
]  # fmt: skip
