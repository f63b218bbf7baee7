"""``initlab lsuv``: layer-sequential unit-variance init of a model, in execution order."""

from __future__ import annotations

import argparse

from initlab.cli._theory import add_model_args, build, emit
from initlab.cli.flags import Value, integer, number, output_file


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "lsuv",
        help="LSUV init (Mishkin & Matas 2016) in execution order, residual-aware",
        description="Orthogonal init, then scale each weight layer, in the order the forward "
        "runs them, so its output on an N(0, 1) batch has std --target-std and mean 0; the last "
        "layer of each residual branch gets std(branch)/std(skip) = 1/sqrt(L). Prints each "
        "layer's std before and after, the forward passes and the time.",
    )
    add_model_args(parser, batch=256)
    parser.add_argument(
        "--target-std",
        action=Value,
        item=number(0, strict=True),
        default=1.0,
        example=["0.5"],
        help="std of each layer's output (default 1)",
    )
    parser.add_argument(
        "--tol",
        action=Value,
        item=number(0, strict=True),
        default=0.1,
        example=["0.05"],
        help="tolerance on the std (default 0.1)",
    )
    parser.add_argument(
        "--max-iter",
        action=Value,
        item=integer(1),
        default=10,
        metavar="N",
        example=["3"],
        help="corrections per layer (default 10)",
    )
    parser.add_argument("--per-channel", action="store_true", help="match every channel")
    parser.add_argument(
        "--no-orthogonal",
        action="store_true",
        help="keep the current weights' directions (only rescale)",
    )
    parser.add_argument(
        "--save",
        action=Value,
        item=output_file,
        metavar="PATH",
        example=["w.pt"],
        help="write the state_dict here (torch.save)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from initlab.initializers.lsuv import lsuv
    from initlab.report.theory import plot_lsuv

    model, x = build(args)
    report = lsuv(
        model,
        x,
        target_std=args.target_std,
        tol=args.tol,
        max_iter=args.max_iter,
        orthogonal=not args.no_orthogonal,
        per_channel=args.per_channel,
        seed=args.seed,
    )
    if args.save is not None:
        import io

        import torch

        from initlab._core.files import atomic_write

        buffer = io.BytesIO()
        torch.save(model.state_dict(), buffer)
        atomic_write(args.save, buffer.getvalue())
    return emit(args, report, plot_lsuv)
