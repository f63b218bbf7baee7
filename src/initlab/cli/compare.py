"""``initlab compare``: train one net per scheme on the same data and compare them.

With no arguments: the classic course experiment (zeros, random x10 and He on the circles
data, a 2-10-5-1 ReLU net, 15000 iterations of full-batch gradient descent).
"""

from __future__ import annotations

import argparse
import os

from initlab.bench.choices import CLASSIC_SCHEMES, OPTIMIZERS
from initlab.bench.options import RunOptions
from initlab.cli import flags
from initlab.cli.flags import Items, Value, integer, number
from initlab.cli.out_folder import out_folder

_DEFAULTS = RunOptions()


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "compare",
        help="train one net per scheme on the same data and compare (the classic experiment)",
        description="Train one fully connected net per initialization scheme (and seed) on the "
        "same data, all together as one batched model, then print a table and write "
        "results.json, history.csv, PNG plots and report.html. With no options: zeros, "
        "random:scale=10 and he on the circles data, layers 2,10,5,1 (ReLU, sigmoid output), "
        "15000 iterations of full-batch gradient descent at lr 0.01 in float64, with the "
        "course's initial weights (seed 3). Lists take commas or spaces: --schemes he,xavier "
        "or --schemes he xavier.",
    )
    add = parser.add_argument
    add(
        "--schemes",
        action=Items,
        item=flags.scheme,
        schemes=True,
        default=list(CLASSIC_SCHEMES),
        metavar="SPEC",
        example=["he", "xavier"],
        help="schemes to compare ('initlab schemes' lists them; default "
        f"{','.join(CLASSIC_SCHEMES)})",
    )
    add(
        "--data",
        action=Value,
        item=flags.dataset,
        default="circles",
        metavar="NAME|FILE",
        example=["moons"],
        help=f"{', '.join(flags.DATASETS)} or a .csv/.npz path (default circles)",
    )
    add(
        "--label",
        action=Value,
        default=None,
        metavar="COLUMN",
        example=["y"],
        help="label column of a CSV file (default: the last), or the labels array of an .npz "
        "(default y)",
    )
    add(
        "--dims",
        action=Items,
        item=integer(1),
        default=None,
        metavar="N",
        example=["2", "1"],
        help="layer sizes n0,n1,...,nL (default "
        f"{','.join(map(str, flags.COURSE_DIMS))} for 2-D binary data)",
    )
    add(
        "--activation",
        action=Items,
        item=flags.activation,
        default=[flags.ACTIVATION],
        metavar="NAME",
        example=["relu", "tanh"],
        help=f"hidden activation, or one per hidden layer (default {flags.ACTIVATION})",
    )
    add(
        "--iterations",
        action=Value,
        item=integer(1),
        default=_DEFAULTS.iterations,
        metavar="N",
        example=["5"],
        help=f"updates per run (default {_DEFAULTS.iterations})",
    )
    add(
        "--lr",
        action=Value,
        item=number(0, strict=True),
        default=_DEFAULTS.lr,
        example=["0.1"],
        help=f"learning rate (default {_DEFAULTS.lr})",
    )
    add(
        "--optimizer",
        default=_DEFAULTS.optimizer,
        choices=OPTIMIZERS,
        help=f"{', '.join(OPTIMIZERS)} (default {_DEFAULTS.optimizer}: full batch)",
    )
    add(
        "--batch-size",
        action=Value,
        item=integer(1),
        default=None,
        metavar="N",
        example=["8"],
        help="mini-batch size (with sgd/momentum/adam; default the full batch)",
    )
    flags.add_seeds(
        parser,
        [flags.COMPARE_SEED],
        f"one run per seed and scheme, each in [0, 2**63) (default "
        f"{flags.COMPARE_SEED}: the course's initial weights)",
    )
    add(
        "--l2",
        action=Value,
        item=number(0),
        default=_DEFAULTS.l2,
        example=["0.1"],
        help="L2 lambda (course convention, default 0)",
    )
    add(
        "--dropout",
        action=Value,
        item=flags.fraction,
        default=_DEFAULTS.dropout,
        example=["0.1"],
        help="dropout probability (default 0)",
    )
    add(
        "--clip-norm",
        action=Value,
        item=number(0, strict=True),
        default=None,
        example=["1"],
        help="clip gradients to this global L2 norm",
    )
    add(
        "--clip-value",
        action=Value,
        item=number(0, strict=True),
        default=None,
        example=["1"],
        help="clip gradient elements to +-value",
    )
    add(
        "--clip-adaptive",
        action=Value,
        item=number(0, strict=True),
        default=None,
        example=["0.5"],
        help="cap each tensor's gradient norm at this fraction of its weight norm",
    )
    add(
        "--init-style",
        default="course",
        choices=("course", "model"),
        help="course: initialize_parameters draws (default); model: init_model",
    )
    add(
        "--dtype",
        default="float64",
        choices=("float32", "float64"),
        help="floating-point type of weights and data (default float64)",
    )
    add(
        "--monitor-every",
        action=Value,
        item=integer(1),
        default=None,
        metavar="K",
        example=["5"],
        help="also record activation rms and gradient norms per layer every K iterations "
        "(monitor.json, monitor.png); runs then train one at a time, about 15x slower",
    )
    flags.add_run_folder(parser, "continue the comparison saved in --out")
    flags.add_progress(parser)
    parser.set_defaults(handler=run)


def options(args: argparse.Namespace) -> RunOptions:
    """The :class:`RunOptions` of the command line (each value checked there)."""
    return RunOptions(optimizer=args.optimizer, lr=args.lr, iterations=args.iterations,
                      batch_size=args.batch_size, l2=args.l2, dropout=args.dropout,
                      clip_norm=args.clip_norm, clip_value=args.clip_value,
                      clip_adaptive=args.clip_adaptive, dtype=args.dtype)  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from initlab._core.files import prepare_out
    from initlab._core.locks import folder_lock
    from initlab.bench.compare import compare
    from initlab.report import write_report

    if args.resume and args.out is None:
        raise ValueError("--resume needs --out DIR (the folder of the comparison to continue)")
    opts = options(args)
    out = out_folder(args.out, "compare")
    prepare_out(out, force=args.force, resume=args.resume, create=False)  # refuse early
    with folder_lock(out):  # held over training and the report
        data: object = args.data
        if args.label is not None:
            from initlab.bench.datasets import load

            label = args.label
            if not args.data.lower().endswith(".npz") and label.lstrip("-").isdigit():
                label = int(label)
            data = load(args.data, label=label)
        activation = args.activation[0] if len(args.activation) == 1 else args.activation
        comparison = compare(
            args.schemes, data, args.dims, activation=activation,
            init_style=args.init_style, seeds=args.seeds, out=out, force=args.force,
            resume=args.resume, progress=not args.no_progress,
            monitor_every=args.monitor_every, options=opts,
        )  # fmt: skip
        print(comparison.table())
        names = ["results.json", "history.csv"]
        names += ["monitor.json"] if comparison.monitors else []
        if not args.no_report:
            names += [os.path.basename(p) for p in write_report(comparison, out)]
    print(f"\nwrote {out}/: {', '.join(names)}")
    return 0
