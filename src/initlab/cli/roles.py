"""``initlab roles``: the role of every parameter of a model, as recipes see it."""

from __future__ import annotations

import argparse
import json
from typing import Any

from initlab.cli import flags
from initlab.cli.flags import Value, integer
from initlab.cli.model_file import load_model


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "roles",
        help="print each parameter's role (embedding, attn_q, mlp_down, ...) and block index",
        description="Find the role of every parameter of a model (token/position embedding, "
        "attention q/k/v/out, MLP in/gate/up/down, head, norms, convolutions, ...) and its "
        "block index i of L, so you can check it before trusting a recipe. With an example "
        "input (--input-shape or --tokens) the residual-stream writers come from the data flow.",
    )
    add_model_arguments(parser)
    flags.add_json(parser, "a table")
    parser.set_defaults(handler=run)


def add_model_arguments(parser: argparse.ArgumentParser, required: bool = True) -> None:
    flags.add_model(
        parser,
        "a Python file and a function in it that returns an nn.Module "
        "(the file's code runs: only name files you trust)",
        required=required,
    )
    flags.add_input_shape(parser, "example float input: shape without the batch, e.g. 3,32,32")
    parser.add_argument(
        "--tokens",
        action=Value,
        item=integer(1),
        metavar="T",
        example=["8"],
        help="example input: 2 x T token ids (language models)",
    )
    parser.add_argument(
        "--override",
        action="append",
        default=[],
        metavar="GLOB=ROLE",
        help="set the role of parameters matching GLOB (repeatable), "
        "e.g. '*.c_proj.weight=attn_out'",
    )


def parse_overrides(items: list[str]) -> dict[str, str]:
    overrides: dict[str, str] = {}
    for item in items:
        glob, sep, role = item.partition("=")
        if not sep or not glob or not role:
            raise ValueError(f"--override must be GLOB=ROLE; got {item!r}")
        overrides[glob] = role
    return overrides


def example_input(model: Any, args: argparse.Namespace) -> Any:
    """A random example input from ``--input-shape`` or ``--tokens`` (``None`` if neither)."""
    import torch
    from torch import nn

    if args.input_shape and args.tokens:
        raise ValueError("give --input-shape or --tokens, not both")
    generator = torch.Generator().manual_seed(0)
    if args.input_shape:
        return torch.randn((2, *args.input_shape), generator=generator)
    if args.tokens:
        embeddings = [m for m in model.modules() if isinstance(m, nn.Embedding)]
        vocab = max((m.num_embeddings for m in embeddings), default=2)
        return torch.randint(0, vocab, (2, args.tokens), generator=generator)
    return None


def run(args: argparse.Namespace) -> int:
    from initlab.initializers.roles import roles

    model = load_model(args.model)
    table = roles(model, example_input(model, args), parse_overrides(args.override))
    print(json.dumps(table.to_dict(), indent=2) if args.json else table)
    return 0
