"""``initlab coord-check``: muP's coordinate check over widths, with a verdict."""

from __future__ import annotations

import argparse

from initlab.cli._theory import check_plot, emit, positive
from initlab.cli.model_file import load_factory, parse_shape


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
    parser.add_argument(
        "--model", metavar="FILE.py:FACTORY", help="a function factory(width) -> nn.Module"
    )
    parser.add_argument(
        "--input-shape",
        metavar="D",
        default=None,
        help="shape of one input without the batch (default 16 for the MLP)",
    )
    parser.add_argument("--widths", default="64,128,256,512,1024", help="comma-separated")
    parser.add_argument("--steps", type=int, default=3, help="optimizer steps (default 3)")
    parser.add_argument("--optimizer", default="adam", choices=("adam", "adamw", "sgd"))
    parser.add_argument("--lr", type=float, default=None, help="default 1e-2 Adam, 0.1 SGD")
    parser.add_argument("--batch", type=int, default=64, help="batch size (default 64)")
    parser.add_argument("--seed", type=int, default=0, help="seed for init and inputs")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.add_argument("--plot", metavar="PATH", help="write the coord-check plot here")
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

    check_plot(args)
    try:
        widths = [int(w) for w in args.widths.replace(" ", "").split(",") if w]
    except ValueError:
        raise ValueError(
            f"--widths must be integers separated by commas; got {args.widths!r}"
        ) from None
    if args.model is None:
        shape = parse_shape(args.input_shape) if args.input_shape else (16,)
        factory = _mlp(shape[0])
    else:
        if args.input_shape is None:
            raise ValueError("--model needs --input-shape (one input without the batch)")
        shape = parse_shape(args.input_shape)
        factory = load_factory(args.model)
    batch = positive("--batch", args.batch)
    x = torch.randn((batch, *shape), generator=torch.Generator().manual_seed(args.seed))
    result = coord_check(
        factory,
        widths,
        x,
        steps=positive("--steps", args.steps),
        optimizer=args.optimizer,
        lr=args.lr,
        seed=args.seed,
    )
    return emit(args, result, plot_coord_check)
