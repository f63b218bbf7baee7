"""``initlab schemes``: every scheme with its aliases and formula."""

from __future__ import annotations

import argparse
import json

from initlab._core.table import format_table


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "schemes",
        help="list every initialization scheme with its aliases and formula",
        description="List every scheme: canonical name, default parameters, formula, aliases "
        "(PyTorch spellings end in '_', Keras classes are CamelCase, JAX/Flax ones start "
        "with 'flax.' or 'jax.').",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from initlab.initializers.registry import describe

    rows = describe()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(
        format_table(
            ["scheme", "draws", "parameters", "formula"],
            [(r["name"], r["draws"], r["parameters"], r["formula"]) for r in rows],
        )
    )
    print()
    print(format_table(["scheme", "aliases"], [(r["name"], r["aliases"]) for r in rows]))
    print(
        "\n*_normal draw an untruncated normal (PyTorch); *_truncated a normal truncated at 2 std "
        "and widened so its variance is the target (Keras's GlorotNormal/HeNormal/LecunNormal, "
        "JAX's glorot_normal/he_normal/lecun_normal). Parameters: 'name:key=value,...', "
        "e.g. random:scale=10."
    )
    return 0
