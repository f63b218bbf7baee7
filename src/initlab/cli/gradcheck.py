"""``initlab gradcheck``: check back-propagation on a built-in MLP against finite differences,
or (``--numpy FILE.py``) a learner's hand-written NumPy backward pass the course's way."""

from __future__ import annotations

import argparse
import itertools
import json
from typing import Any

from initlab.cli import flags
from initlab.cli.flags import Items, Value, integer, number


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "gradcheck",
        help="compare back-propagated gradients of an MLP with finite differences",
        description="Build an MLP on a dataset (circles by default), optionally train it, and "
        "compare every back-propagated gradient with central differences in float64: per-tensor "
        "relative differences ||g_num - g|| / (||g_num|| + ||g||) and a verdict (< 1e-7 "
        "correct, > 1e-3 a bug, in between look closer). Exit status 1 when the check finds a "
        "bug or something not finite (or, with --strict, anything but 'correct'), 2 on bad "
        "input. With --numpy FILE.py: the course's NumPy gradient check of the cost, "
        "parameters and gradients that FILE.py defines (the file's code runs: only name files "
        "you trust); exit status 1 when the difference is not below --threshold.",
    )
    _numpy_options(parser)
    _model_options(parser)
    _check_options(parser)
    parser.set_defaults(handler=run)


def _numpy_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--numpy",
        action=Value,
        item=flags.text,
        example=["net.py"],
        default=None,
        metavar="FILE.py",
        help="check a hand-written NumPy backward pass: FILE.py defines cost(parameters), "
        "parameters (a dict of arrays, or a function returning one) and gradients (a dict "
        "with dW1, db1, ..., or a function of the parameters returning one); runs the file",
    )
    parser.add_argument(
        "--threshold",
        action=Value,
        item=number(0, strict=True),
        example=["1e-6"],
        default=1e-7,
        help="--numpy: the difference below which the backward pass is correct (default 1e-7)",
    )


def _model_options(parser: argparse.ArgumentParser) -> None:
    """The built-in MLP, its data and its training before the check."""
    parser.add_argument(
        "--dims",
        action=Items,
        item=integer(1),
        default=list(flags.COURSE_DIMS),
        metavar="N",
        example=["2", "1"],
        help="layer sizes n0,n1,...,nL (default 2,10,5,1)",
    )
    parser.add_argument(
        "--activation",
        action=Value,
        item=flags.activation,
        default=flags.ACTIVATION,
        metavar="NAME",
        example=["tanh"],
        help=f"hidden activation (default {flags.ACTIVATION})",
    )
    flags.add_init(parser, f"init scheme ('initlab schemes' lists them; default {flags.INIT})")
    parser.set_defaults(init=flags.INIT)
    parser.add_argument(
        "--l2",
        action=Value,
        item=number(0),
        default=0.0,
        metavar="LAMBDA",
        example=["0.7"],
        help="L2 strength lambda: the loss gains lambda/(2m) sum ||W||^2",
    )
    parser.add_argument(
        "--dropout",
        action=Value,
        item=flags.fraction,
        default=0.0,
        metavar="P",
        example=["0.1"],
        help="dropout probability (used in training; off during the check)",
    )
    parser.add_argument(
        "--data",
        action=Value,
        item=flags.dataset,
        default="circles",
        metavar="NAME|FILE",
        example=["moons"],
        help="dataset name or .csv/.npz path (default circles)",
    )
    parser.add_argument(
        "--examples",
        action=Value,
        item=integer(1),
        default=None,
        metavar="N",
        example=["16"],
        help="check on the first N training examples (default all)",
    )
    parser.add_argument(
        "--after",
        action=Value,
        item=integer(0),
        default=0,
        metavar="N",
        example=["5"],
        help="train N iterations of gradient descent first, then check",
    )
    parser.add_argument(
        "--lr",
        action=Value,
        item=number(0, strict=True),
        default=0.1,
        example=["0.05"],
        help="learning rate for --after (default 0.1)",
    )
    parser.add_argument(
        "--plant-bug",
        default=None,
        metavar="PARAM[:FACTOR]",
        help="demo: make the backward pass of one parameter wrong by FACTOR "
        "(default -1, a wrong sign), e.g. linear2.bias or linear1.weight:2",
    )


def _check_options(parser: argparse.ArgumentParser) -> None:
    """How the check runs and what it prints."""
    parser.add_argument(
        "--mode",
        default="full",
        choices=("full", "sample", "fast"),
        help="every entry, SAMPLES entries per tensor, or DIRECTIONS random "
        "directional derivatives per tensor (default full)",
    )
    parser.add_argument(
        "--eps",
        action=Value,
        item=number(0, strict=True),
        default=1e-7,
        example=["1e-6"],
        help="finite-difference step (default 1e-7)",
    )
    parser.add_argument(
        "--samples",
        action=Value,
        item=integer(1),
        default=10,
        metavar="N",
        example=["3"],
        help="entries per tensor with --mode sample (default 10)",
    )
    parser.add_argument(
        "--directions",
        action=Value,
        item=integer(1),
        default=7,
        metavar="N",
        example=["3"],
        help="directions per tensor with --mode fast (default 7; the first two "
        "decide where they agree)",
    )
    flags.add_seed(parser, "init, training and sampling")
    parser.add_argument(
        "--strict", action="store_true", help="exit 1 unless the verdict is correct"
    )
    flags.add_json(parser)


def _dims(dims: list[int]) -> list[int]:
    if len(dims) < 2:
        raise ValueError(f"--dims needs at least an input and an output size; got {dims}")
    return dims


def _refuse_oversized(dims: list[int], examples: int, mode: str, directions: int) -> None:
    """Refuse, with the estimate, an MLP check that cannot fit in memory (before building)."""
    from initlab.gradient_check.memory import check_bytes, refuse_if_too_big

    sizes = [a * b + b for a, b in itertools.pairwise(dims)]
    activations = 8 * examples * (4 * sum(dims) + 256 * dims[-1])
    refuse_if_too_big(
        check_bytes(sum(sizes), mode, directions, activations, largest=max(sizes)),
        f"gradcheck of an MLP {dims} ({sum(sizes):,} parameters) on {examples:,} examples"
        + (f" with {directions:,} directions" if mode == "fast" else ""),
        "use smaller --dims, fewer --examples or fewer --directions",
    )


def _bug(text: str) -> tuple[str, float]:
    name, _, factor = text.partition(":")
    if not factor:
        return name, -1.0
    try:
        return name, float(factor)
    except ValueError:
        raise ValueError(f"--plant-bug: FACTOR must be a number; got {factor!r}") from None


def run(args: argparse.Namespace) -> int:
    if args.numpy is not None:
        return _run_numpy(args)
    return _run_mlp(args)


def _run_mlp(args: argparse.Namespace) -> int:
    from initlab.gradient_check.check import gradcheck, with_l2

    dims, l2, data, examples = _checked(args)
    model, lines = _model(args, dims, data, l2)
    x, y = data.x_train[:examples], data.y_train[:examples].double().unsqueeze(1)
    loss = with_l2("bce", model, l2) if l2 > 0 else "bce"
    lines.append(
        f"loss: binary cross-entropy on {x.shape[0]} examples"
        + (f" + {l2:g}/(2m) sum ||W||^2" if l2 > 0 else "")
    )
    check = gradcheck(model, loss, x, y, eps=args.eps, mode=args.mode, samples=args.samples,
                      directions=args.directions, seed=args.seed,
                      dropout="off" if args.dropout > 0 else "refuse")  # fmt: skip
    if args.json:
        print(json.dumps({"setup": lines, **check.to_dict()}, indent=2))
    else:
        print("\n".join(lines))
        print(check)
    failed = not check.passed or (args.strict and check.verdict != "correct")
    return 1 if failed else 0


def _checked(args: argparse.Namespace) -> tuple[list[int], float, Any, int]:
    """The validated options: layer sizes, L2 strength, the dataset and how many of its
    training examples the check uses (refused before anything is built if it cannot fit)."""
    from initlab.bench.datasets import load

    dims = _dims(args.dims)
    l2 = args.l2
    data = load(args.data)
    examples = data.x_train.shape[0]
    if args.examples is not None:
        examples = min(examples, args.examples)
    _refuse_oversized(dims, examples, args.mode, args.directions)
    if dims[0] != data.n_features:
        raise ValueError(
            f"--dims: the first size must be the number of input features of {args.data} "
            f"({data.n_features}); got {dims[0]}"
        )
    if dims[-1] != 1 or data.n_classes > 2:
        raise ValueError(
            f"--dims: the built-in MLP has one sigmoid output for two classes ({args.data} has "
            f"{data.n_classes}); got output size {dims[-1]}"
        )
    return dims, l2, data, examples


def _model(args: argparse.Namespace, dims: list[int], data: Any, l2: float) -> tuple[Any, list]:
    """The MLP to check (initialised, trained ``--after`` iterations, with the planted bug),
    and the setup lines that describe it."""
    from initlab.bench.nets import mlp
    from initlab.bench.train import train
    from initlab.gradient_check.check import plant_bug
    from initlab.initializers.apply import init_model

    model = mlp(dims, args.activation, "sigmoid", dropout=args.dropout)
    init_model(model, args.init, seed=args.seed)
    lines = [f"model: mlp {dims}, {args.activation}, init {args.init}, seed {args.seed}"]
    if args.after:
        result = train(model, data, init=None, iterations=args.after, lr=args.lr, l2=l2,
                       seed=args.seed, progress=False)  # fmt: skip
        if result.status == "diverged":
            raise ValueError(
                f"--after: training diverged at iteration {result.diverged_at}; lower --lr"
            )
        lines.append(
            f"trained {args.after} iterations of gd (lr {args.lr:g}): loss "
            f"{result.final_loss:.4g}, train accuracy {result.train_accuracy:.3g}"
        )
    if args.plant_bug:
        parameter, factor = _bug(args.plant_bug)
        model = plant_bug(model, parameter, factor)
        lines.append(f"planted bug: the gradient of {parameter} is multiplied by {factor:g}")
    return model, lines


def _run_numpy(args: argparse.Namespace) -> int:
    from initlab.cli.numpy_file import load_course_check

    cost, parameters, gradients = load_course_check(args.numpy)
    from initlab.gradient_check.course import gradient_check

    check = gradient_check(cost, parameters, gradients, epsilon=args.eps,
                           threshold=args.threshold)  # fmt: skip
    if args.json:
        print(json.dumps({"file": args.numpy, **check.to_dict()}, indent=2))
    else:
        print(check)
    return 0 if check.correct else 1
