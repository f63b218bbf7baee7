"""``initlab reproduce NAME``: re-run a classic initialization paper's key result."""

from __future__ import annotations

import argparse
import os

from initlab._core.table import format_table
from initlab.cli import flags
from initlab.cli.flags import Value
from initlab.papers.catalog import PAPERS

_FILES = ("figure.png", "results.json", "index.html")


def _paper(name: str, flag: str) -> str:
    if name != "all" and name not in PAPERS:
        raise flags.FlagError(
            flags.unknown(flag, "paper", name, [*PAPERS, "all"], "initlab reproduce --list")
        )
    return name


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "reproduce",
        help="re-run a classic paper's key result and check it against the paper's claim",
        description="Re-run the key result of a classic initialization paper at CPU scale, "
        "write its figure (figure.png), results.json and index.html (claim, setting, checks, "
        "verdict), and print the checks. 'all' runs every paper and prints a summary table. "
        "Exit status 0 when every check passed, 1 when a claim was not reproduced.",
    )
    parser.add_argument(
        "name",
        nargs="?",
        action=Value,
        item=_paper,
        metavar="NAME",
        example=["he2015"],
        help=f"{', '.join(PAPERS)} or all",
    )
    parser.add_argument(
        "--quick", action="store_true", help="the small setting (under a minute each on 2 cores)"
    )
    parser.add_argument(
        "--out",
        action=Value,
        metavar="DIR",
        item=flags.output_folder,
        default=None,
        example=["out"],
        help="output folder (default runs/reproduce/NAME, replaced on each run); with 'all', "
        "one subfolder per paper. A non-empty --out is refused unless --force",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="write into a non-empty --out folder (replacing the paper's files)",
    )
    parser.add_argument("--list", action="store_true", help="list the papers and their claims")
    parser.set_defaults(handler=run)


def _prepare(out: str, force: bool) -> None:
    """Refuse a non-empty ``--out`` without ``--force`` and create it: before minutes of work."""
    if os.path.isdir(out) and os.listdir(out) and not force:
        raise FileExistsError(f"--out folder {out} is not empty; pass --force to write into it")
    os.makedirs(out, exist_ok=True)


def run(args: argparse.Namespace) -> int:
    if args.list:
        rows = [(p.name, p.citation, p.claim) for p in PAPERS.values()]
        print(format_table(["paper", "citation", "claim"], rows))
        return 0
    if not args.name:
        raise ValueError("name a paper (initlab reproduce --list shows them) or 'all'")
    from initlab.papers.base import names, reproduce
    from initlab.report.papers import summary_table, write_reproduction

    chosen = names(args.name)
    base = args.out or os.path.join("runs", "reproduce")
    if args.out is not None:
        _prepare(args.out, args.force)
    results = []
    for name in chosen:
        folder = os.path.join(base, name) if (args.out is None or len(chosen) > 1) else base
        if args.out is None:
            os.makedirs(folder, exist_ok=True)  # a path that cannot be a folder fails now
        result = reproduce(name, quick=args.quick)
        write_reproduction(result, folder)
        results.append(result)
        print(result if len(chosen) == 1 else f"{name}: {result.verdict} ({result.seconds:.1f} s)")
        print(f"wrote {folder}/: {', '.join(_FILES)}\n")
    if len(results) > 1:
        print(summary_table(results))
    return 0 if all(r.verdict == "reproduced" for r in results) else 1
