"""The ``initlab`` command: a thin shell over the library.

Each subcommand lives in its own module in this package and exposes ``register(subparsers)``,
which adds its parser and sets ``handler`` to a function ``handler(args) -> int``. The flags
the commands share (names, meanings, defaults, list grammar) are defined once in
:mod:`initlab.cli.flags`. Errors in user input (``ValueError``, ``TypeError``, missing files)
become one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Subcommand modules, in the order ``initlab --help`` lists them.
COMMANDS = (
    "schemes", "compare", "sweep", "gradcheck", "diagnose",
    "roles", "recipes",
    "lsuv", "critical", "coord_check", "spp", "spectrum",
    "reproduce",
)  # fmt: skip


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors are one line and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(2)


def _version() -> str:
    """The installed distribution's version (the cli sits below the top-level API, so it does
    not import ``initlab.__version__``; tests/test_cli_flags.py checks the two agree)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("initlab")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed; pip install -e .)"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="initlab",
        description="Weight initialization that makes deep networks train. Lists are given "
        "comma- or space-separated (--seeds 0,1 or --seeds 0 1); --depth counts hidden layers.",
    )
    parser.add_argument("--version", action="version", version=f"initlab {_version()}",
                        help="print the version and exit")  # fmt: skip
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser,
                                       help="'initlab COMMAND --help' describes each")  # fmt: skip
    for name in COMMANDS:
        importlib.import_module(f"initlab.cli.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``initlab`` with ``argv`` (default ``sys.argv[1:]``); returns the exit status (2 for
    bad input, whether argparse or the command found it; 0 after ``--help``/``--version``)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # usage errors (one line already written), --help, --version
        return stop.code if isinstance(stop.code, int) else 2
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        return int(args.handler(args) or 0)
    except BrokenPipeError:
        # The reader went away (`initlab schemes | head`): not an error of ours. Point stdout
        # at devnull so the interpreter's final flush does not raise again.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (ValueError, TypeError, OSError) as error:  # bad input, unusable files, disk full
        sys.stderr.write(f"initlab {args.command}: error: {error_line(error)}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write(f"initlab {args.command}: interrupted\n")
        return 130


def error_line(error: BaseException) -> str:
    """One line for an error of the library: an unknown name with at most three closest matches
    (not every valid name), an ``OSError`` without its ``[Errno N]`` prefix."""
    from initlab._core.validation import UnknownNameError
    from initlab.cli.flags import unknown

    if isinstance(error, UnknownNameError) and error.choices:
        listing = _LISTINGS.get(error.what)
        return unknown("", error.what, str(error.name), error.choices, listing)
    if isinstance(error, OSError) and error.strerror:
        return error.strerror + (f": {error.filename}" if error.filename else "")
    text = str(error)
    return text.splitlines()[0] if text.strip() else type(error).__name__


# Where the CLI lists every valid name of a kind.
_LISTINGS = {"scheme": "initlab schemes", "recipe": "initlab recipes",
             "paper": "initlab reproduce --list"}  # fmt: skip


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
