"""The ``initlab`` command: a thin shell over the library.

Each subcommand lives in its own module in this package and exposes ``register(subparsers)``,
which adds its parser and sets ``handler`` to a function ``handler(args) -> int``. Errors in
user input (``ValueError``, ``TypeError``, missing files) become one line on stderr and exit
status 2, never a traceback.
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


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="initlab",
        description="Weight initialization that makes deep networks train.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS:
        importlib.import_module(f"initlab.cli.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
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
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        sys.stderr.write(f"initlab {args.command}: error: {message}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write(f"initlab {args.command}: interrupted\n")
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
