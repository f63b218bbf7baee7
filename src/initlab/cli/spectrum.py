"""``initlab spectrum``: singular values of the input-output Jacobian (dynamical isometry)."""

from __future__ import annotations

import argparse

from initlab.cli._theory import add_model_args, build, emit
from initlab.cli.flags import Value, integer


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "spectrum",
        help="singular values of the input-output Jacobian: isometric or not",
        description="Estimate the singular values of d output / d input on an N(0, 1) batch by "
        "Lanczos on J^T J (JVP and VJP products on one forward pass): max, median, spread and a "
        "verdict. Built-in MLP by default, or --model FILE.py:FACTORY.",
    )
    add_model_args(parser, batch=4)
    parser.add_argument(
        "--steps",
        action=Value,
        item=integer(1),
        default=40,
        metavar="N",
        example=["5"],
        help="Lanczos steps (default 40)",
    )
    parser.add_argument(
        "--probes",
        action=Value,
        item=integer(1),
        default=3,
        metavar="N",
        example=["2"],
        help="random starts (default 3)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from initlab.doctor.jacobian import jacobian_spectrum
    from initlab.report.theory import plot_jacobian

    model, x = build(args, square=True)
    model.eval()
    result = jacobian_spectrum(
        model,
        x,
        steps=args.steps,
        probes=args.probes,
        seed=args.seed,
    )
    return emit(args, result, plot_jacobian)
