"""``initlab coord-check``: muP's coordinate check over widths, with a verdict."""

from __future__ import annotations

import argparse

from initlab.cli import flags
from initlab.cli._theory import emit
from initlab.cli.flags import Items, Value, integer, number
from initlab.cli.model_file import load_factory


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "coord-check",
        help="muP's coordinate check: which layers' scale depends on the width",
        description="Build the model at each width, train a few steps on one fixed N(0, 1) "
        "batch, and fit log(mean |output|) against log(width) for every module; flag the "
        "modules whose slope is away from 0 and say what to change. --model FILE.py:FACTORY "
        "names a function of the width; without it a 2-hidden-layer ReLU MLP in PyTorch's "
        "standard parametrization.",
    )
    flags.add_model(
        parser,
        "a function factory(width) -> nn.Module in a Python file (the "
        "file's code runs: only name files you trust)",
    )
    flags.add_input_shape(
        parser, "shape of one input without the batch (default 16 for the built-in MLP)"
    )
    parser.add_argument(
        "--widths",
        action=Items,
        item=integer(1),
        default=[64, 128, 256, 512, 1024],
        metavar="N",
        example=["8", "16"],
        help="widths to build the model at (default 64,128,256,512,1024)",
    )
    parser.add_argument(
        "--steps",
        action=Value,
        item=integer(1),
        default=3,
        metavar="N",
        example=["1"],
        help="optimizer steps (default 3)",
    )
    parser.add_argument(
        "--optimizer",
        default="adam",
        choices=("adam", "adamw", "sgd"),
        help="adam, adamw or sgd (default adam)",
    )
    parser.add_argument(
        "--lr",
        action=Value,
        item=number(0, strict=True),
        default=None,
        example=["0.1"],
        help="learning rate (default 1e-2 for Adam, 0.1 for SGD)",
    )
    flags.add_batch(parser, 64)
    flags.add_seed(parser)
    flags.add_json(parser)
    flags.add_plot(parser, "write the coord-check plot here")
    parser.set_defaults(handler=run)


def _mlp(input_dim: int):
    from torch import nn

    def factory(width: int) -> nn.Module:
        return nn.Sequential(
            nn.Linear(input_dim, width),
            nn.ReLU(),
            nn.Linear(width, width),
            nn.ReLU(),
            nn.Linear(width, 10),
        )

    return factory


def run(args: argparse.Namespace) -> int:
    import torch

    from initlab.doctor.coord_check import coord_check
    from initlab.report.theory import plot_coord_check

    widths = args.widths
    if args.model is None:
        shape = tuple(args.input_shape) if args.input_shape else (16,)
        if len(shape) != 1:
            raise ValueError(f"--input-shape of the built-in MLP is one size; got {list(shape)}")
        factory = _mlp(shape[0])
    else:
        if args.input_shape is None:
            raise ValueError("--model needs --input-shape (one input without the batch)")
        shape = tuple(args.input_shape)
        factory = load_factory(args.model)
    x = torch.randn((args.batch, *shape), generator=torch.Generator().manual_seed(args.seed))
    result = coord_check(
        factory,
        widths,
        x,
        steps=args.steps,
        optimizer=args.optimizer,
        lr=args.lr,
        seed=args.seed,
    )
    return emit(args, result, plot_coord_check)
