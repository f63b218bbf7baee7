"""``initlab recipes``: every codebase's init recipe with formulas and sources; ``--diff A B``
compares two recipes on a model, parameter by parameter."""

from __future__ import annotations

import argparse
import json

from initlab._core.table import format_table
from initlab.cli import flags
from initlab.cli.flags import Items, Value
from initlab.cli.model_file import load_model
from initlab.cli.roles import add_model_arguments, example_input, parse_overrides


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "recipes",
        help="list the training codebases' init recipes, or diff two on a model",
        description="List every recipe (Megatron, GPT-2/nanoGPT, OLMo, torchtitan, T5, DeepNet, "
        "Fixup, muP, ...) with its per-role formulas and the source it reproduces. "
        "--diff A B --model FILE.py:FACTORY prints, per parameter, the std and truncation "
        "under each recipe and their ratio.",
    )
    parser.add_argument(
        "--diff",
        action=Items,
        item=_recipe,
        count=2,
        metavar="RECIPE",
        example=["gpt2", "olmo2"],
        help="two recipe names A B (or A,B) to compare on --model",
    )
    parser.add_argument(
        "--show",
        action=Value,
        item=_recipe,
        metavar="NAME",
        example=["gpt2"],
        help="print one recipe in full",
    )
    add_model_arguments(parser, required=False)
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SYMBOL=VALUE",
        help="override a recipe symbol (sigma, L, d, base_width, ...), repeatable",
    )
    flags.add_json(parser)
    parser.set_defaults(handler=run)


def _recipe(name: str, flag: str) -> str:
    """A recipe name or alias, checked against the recipes (``initlab recipes`` lists them)."""
    from initlab._core.validation import UnknownNameError
    from initlab.initializers.recipes import get_recipe

    try:
        get_recipe(name)
    except UnknownNameError as error:
        raise flags.FlagError(
            flags.unknown(flag, "recipe", name, error.choices, "initlab recipes")
        ) from None
    return name


def _options(items: list[str]) -> dict[str, float]:
    options: dict[str, float] = {}
    for item in items:
        key, sep, value = item.partition("=")
        try:
            options[key] = float(value)
        except ValueError:
            raise ValueError(f"--set must be SYMBOL=NUMBER; got {item!r}") from None
        if not sep or not key:
            raise ValueError(f"--set must be SYMBOL=NUMBER; got {item!r}")
    return options


def run(args: argparse.Namespace) -> int:
    from initlab.initializers.recipes import get_recipe, list_recipes, recipe_diff

    if args.diff:
        if not args.model:
            raise ValueError("--diff A B needs --model FILE.py:FACTORY")
        model = load_model(args.model)
        diff = recipe_diff(model, *args.diff, example_input=example_input(model, args),
                           overrides=parse_overrides(args.override),
                           **_options(args.set))  # fmt: skip
        print(json.dumps(diff.to_dict(), indent=2) if args.json else diff)
        return 0
    rows = list_recipes()
    if args.show:
        name = get_recipe(args.show).name
        rows = [r for r in rows if r["name"] == name]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not args.show:
        print(format_table(["recipe", "codebase", "source"],
                           [(r["name"], r["title"], r["source"]) for r in rows]))  # fmt: skip
        print(
            "\n'initlab recipes --show NAME' prints a recipe's rules; roles not named keep "
            "norms neutral, biases zero and other parameters as they are."
        )
        return 0
    r = rows[0]
    print(f"{r['name']}: {r['title']}\nsource: {r['source']}")
    if r["aliases"]:
        print(f"aliases: {', '.join(r['aliases'])}")
    if r["defaults"]:
        print("defaults: " + ", ".join(f"{k}={v:g}" for k, v in r["defaults"].items()))
    print(format_table(["role", "rule"], list(r["rules"].items())))
    for note in r["notes"]:
        print(f"note: {note}")
    return 0
