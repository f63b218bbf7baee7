"""``initlab compare``: train one net per scheme on the same data and compare them.

With no arguments: the classic course experiment (zeros, random x10 and He on the circles
data, a 2-10-5-1 ReLU net, 15000 iterations of full-batch gradient descent).
"""

from __future__ import annotations

import argparse
import os

from initlab._core.validation import check_number, check_seed
from initlab.bench.choices import CLASSIC_SCHEMES, OPTIMIZERS
from initlab.bench.options import RunOptions
from initlab.cli.out_folder import out_folder

_DEFAULTS = RunOptions()


def _ints(text: str) -> list[int]:
    """``2,10,5,1`` -> ``[2, 10, 5, 1]``; an empty entry (``2,,1``) is an error, not skipped."""
    parts = text.replace(" ", "").split(",")
    try:
        if not text.strip() or any(p == "" for p in parts):
            raise ValueError
        return [int(v) for v in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers like 2,10,5,1; got {text!r}"
        ) from None


def _activations(text: str) -> str | list[str]:
    parts = text.replace(" ", "").split(",")
    if not text.strip() or any(p == "" for p in parts):
        raise argparse.ArgumentTypeError(
            f"expected an activation or a comma-separated list like relu,tanh; got {text!r}"
        )
    return parts[0] if len(parts) == 1 else parts


def _seed(text: str) -> int:
    try:
        return check_seed(int(text), "--seed")
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error).replace("--seed ", "")) from None


def _text(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "compare",
        help="train one net per scheme on the same data and compare (the classic experiment)",
        description="Train one fully connected net per initialization scheme (and seed) on the "
        "same data, all together as one batched model, then print a table and write "
        "results.json, history.csv, PNG plots and report.html. With no options: zeros, "
        "random:scale=10 and he on the circles data, layers 2,10,5,1 (ReLU, sigmoid output), "
        "15000 iterations of full-batch gradient descent at lr 0.01 in float64, with the "
        "course's initial weights (seed 3).",
    )
    add = parser.add_argument
    add("--schemes", nargs="+", type=_text, default=list(CLASSIC_SCHEMES), metavar="SPEC",
        help="scheme specs, space-separated (default: zeros random:scale=10 he)")  # fmt: skip
    add("--data", default="circles", type=_text,
        help="circles, moons, spiral, blobs, digits or a .csv/.npz path")  # fmt: skip
    add("--label", default=None, type=_text,
        help="label column of a CSV file (default: the last), or the labels array of an .npz "
        "(default y)")  # fmt: skip
    add("--dims", type=_ints, default=None, metavar="N0,N1,...",
        help="layer sizes (default 2,10,5,1 for 2-D binary data)")  # fmt: skip
    add("--activation", type=_activations, default="relu",
        help="hidden activation, or one per hidden layer: a,b,c (default relu)")  # fmt: skip
    add("--iterations", type=int, default=_DEFAULTS.iterations,
        help=f"updates per run (default {_DEFAULTS.iterations})")  # fmt: skip
    add("--lr", type=float, default=_DEFAULTS.lr, help=f"learning rate (default {_DEFAULTS.lr})")
    add("--optimizer", default=_DEFAULTS.optimizer, choices=OPTIMIZERS,
        help="default gd (full batch)")  # fmt: skip
    add("--batch-size", type=int, default=None, help="mini-batch size (with sgd/momentum/adam)")
    add("--seed", type=_seed, nargs="+", default=[3],
        help="one or more seeds in [0, 2**63) (default 3)")  # fmt: skip
    add("--l2", type=float, default=_DEFAULTS.l2, help="L2 lambda (course convention, default 0)")
    add("--dropout", type=float, default=_DEFAULTS.dropout,
        help="dropout probability (default 0)")  # fmt: skip
    add("--clip-norm", type=float, default=None, help="clip gradients to this global L2 norm")
    add("--clip-value", type=float, default=None, help="clip gradient elements to +-value")
    add("--clip-adaptive", type=float, default=None,
        help="cap each tensor's gradient norm at this fraction of its weight norm")  # fmt: skip
    add("--init-style", default="course", choices=("course", "model"),
        help="course: initialize_parameters draws (default); model: init_model")  # fmt: skip
    add("--dtype", default="float64", choices=("float32", "float64"))
    add("--monitor-every", type=int, default=None, metavar="K",
        help="also record activation rms and gradient norms per layer every K iterations "
        "(monitor.json, monitor.png); runs then train one at a time, about 15x slower")  # fmt: skip
    add("--out", default=None, type=_text,
        help="output folder (default: a new folder under runs/); locked while initlab "
        "writes it")  # fmt: skip
    add("--force", action="store_true",
        help="replace the initlab files of a non-empty --out folder (other files are "
        "kept)")  # fmt: skip
    add("--resume", action="store_true", help="continue the comparison saved in --out")
    add("--no-report", action="store_true", help="skip the plots and report.html")
    add("--no-progress", action="store_true", help="no progress bar")
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
    if args.monitor_every is not None:
        check_number("--monitor-every", args.monitor_every, minimum=1, integer=True)
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
        comparison = compare(
            args.schemes, data, args.dims, activation=args.activation,
            init_style=args.init_style, seeds=args.seed, out=out, force=args.force,
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
