"""``initlab spp``: signal propagation plot of a residual network (NF-ResNets)."""

from __future__ import annotations

import argparse

from initlab.cli._theory import add_model_args, build, emit


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "spp",
        help="signal propagation plot of a residual network, with a verdict",
        description="Feed an N(0, 1) batch and, at every residual addition (found by data "
        "flow), report the average channel squared mean, the average channel variance and the "
        "residual branch's variance (Brock, De & Smith 2021), with a verdict.",
    )
    add_model_args(parser, built_in=False, batch=32)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from initlab.doctor.spp import spp
    from initlab.report.theory import plot_spp

    model, x = build(args, built_in=False)
    return emit(args, spp(model, x), plot_spp)
