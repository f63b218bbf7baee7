"""``initlab reproduce NAME``: re-run a classic initialization paper's key result."""

from __future__ import annotations

import argparse
import os

from initlab._core.table import format_table
from initlab.papers.catalog import PAPERS


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "reproduce",
        help="re-run a classic paper's key result and check it against the paper's claim",
        description="Re-run the key result of a classic initialization paper at CPU scale, "
        "write its figure (figure.png), results.json and index.html (claim, setting, checks, "
        "verdict), and print the checks. 'all' runs every paper and prints a summary table. "
        "Exit status 0 when every check passed, 1 when a claim was not reproduced.",
    )
    parser.add_argument("name", nargs="?", help=f"{', '.join(PAPERS)} or all")
    parser.add_argument(
        "--quick", action="store_true", help="the small setting (under a minute each on 2 cores)"
    )
    parser.add_argument(
        "--out",
        default=None,
        help="output folder (default runs/reproduce/NAME); with 'all', one subfolder per paper",
    )
    parser.add_argument("--list", action="store_true", help="list the papers and their claims")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.list:
        rows = [(p.name, p.citation, p.claim) for p in PAPERS.values()]
        print(format_table(["paper", "citation", "claim"], rows))
        return 0
    if not args.name:
        raise ValueError("name a paper (initlab reproduce --list shows them) or 'all'")
    if args.out is not None and not args.out.strip():
        raise ValueError("--out must not be empty")
    from initlab.papers.base import names, reproduce
    from initlab.report.papers import summary_table, write_reproduction

    chosen = names(args.name)
    base = args.out or os.path.join("runs", "reproduce")
    results = []
    for name in chosen:
        result = reproduce(name, quick=args.quick)
        folder = os.path.join(base, name) if (args.out is None or len(chosen) > 1) else base
        write_reproduction(result, folder)
        results.append(result)
        print(result if len(chosen) == 1 else f"{name}: {result.verdict} ({result.seconds:.1f} s)")
        print(f"wrote {folder}/: figure.png, results.json, index.html\n")
    if len(results) > 1:
        print(summary_table(results))
    return 0 if all(r.verdict == "reproduced" for r in results) else 1
