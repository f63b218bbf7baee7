"""``initlab critical``: mean-field theory as a calculator (edge of chaos, depth scales)."""

from __future__ import annotations

import argparse
import json
import sys

from initlab.cli import flags
from initlab.cli.flags import Items, Value, number


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "critical",
        help="edge of chaos, depth scales and trainable depth for an activation or an MLP",
        description="For an activation: the critical sigma_w^2 at each --sigma-b2 (the edge of "
        "chaos), or with --sigma-w2 the fixed point q*, chi_1, the depth scales xi_q and xi_c "
        "and the trainable depth ~6 xi_c at that point. With --model: read an MLP stack's "
        "weight and bias variances and say how far it is from criticality.",
    )
    parser.add_argument(
        "activation",
        nargs="?",
        action=Value,
        item=flags.any_activation,
        default=flags.CRITICAL_ACTIVATION,
        metavar="ACTIVATION",
        example=["relu"],
        help=f"e.g. tanh, relu, gelu (default {flags.CRITICAL_ACTIVATION})",
    )
    parser.add_argument(
        "--sigma-b2",
        action=Items,
        item=number(0),
        default=[0.05],
        metavar="V",
        example=["0", "0.05"],
        help="bias variance, or several for the critical line (default 0.05)",
    )
    parser.add_argument(
        "--sigma-w2",
        action=Value,
        item=number(0, strict=True),
        default=None,
        example=["1.5"],
        help="evaluate at this weight variance instead of the critical one",
    )
    parser.add_argument(
        "--dist",
        default="gaussian",
        choices=("gaussian", "orthogonal"),
        help="weight distribution: gaussian (i.i.d.) or orthogonal matrices (default gaussian)",
    )
    flags.add_model(
        parser,
        "an MLP to read instead of an activation (the file's code runs: only name files you trust)",
    )
    flags.add_json(parser)
    flags.add_plot(parser, "write the edge-of-chaos plot (critical line, 6 xi_c) here")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from initlab._core.table import format_table

    if args.model is not None:
        from initlab.cli.model_file import load_model
        from initlab.doctor.criticality import mlp_criticality

        result = mlp_criticality(load_model(args.model))
        print(json.dumps(result.to_dict(), indent=2) if args.json else str(result))
        activation = result.activation
        sb2 = result.sigma_b2
    else:
        from initlab.initializers.critical import critical, edge_of_chaos, mean_field

        values = args.sigma_b2
        activation, sb2 = args.activation, values[0]
        if args.sigma_w2 is not None:
            if len(values) > 1:
                raise ValueError("--sigma-w2 evaluates one point: give one --sigma-b2")
            point = mean_field(args.activation, args.sigma_w2, values[0], dist=args.dist)
            print(json.dumps(point.to_dict(), indent=2) if args.json else str(point))
        elif len(values) == 1:
            point = critical(args.activation, values[0], dist=args.dist)
            print(json.dumps(point.to_dict(), indent=2) if args.json else str(point))
        else:
            line = edge_of_chaos(args.activation, values, dist=args.dist)
            if args.json:
                print(json.dumps([c.to_dict() for c in line], indent=2))
            else:
                print(
                    format_table(
                        ["sigma_b^2", "critical sigma_w^2", "q*"],
                        [(c.sigma_b2, c.sigma_w2, c.q_star) for c in line],
                    )
                )
    if args.plot is not None:
        from initlab.report.theory import plot_edge_of_chaos

        path = plot_edge_of_chaos(activation, args.plot, sigma_b2=sb2)
        print(f"wrote {path}", file=sys.stderr if args.json else sys.stdout)
    return 0
