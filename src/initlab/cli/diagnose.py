"""``initlab diagnose``: signal propagation through a built-in MLP or a user model, verdicts,
and with ``--fix`` the re-initialization the doctor recommends, before and after."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from initlab.bench.choices import HIDDEN_ACTIVATION_NAMES
from initlab.cli.model_file import _split_spec, load_model, parse_shape

if TYPE_CHECKING:
    from torch import nn

__all__ = ["load_model", "parse_shape", "register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "diagnose",
        help="measure signal propagation and name what is wrong with a model's init",
        description="Run one forward and backward pass on a random batch with hooks on every "
        "module; print per-layer statistics (mean, std, zeros, saturated and dead units, "
        "gradient norms, identical units) and verdicts (vanishing, exploding, saturated, "
        "dead, symmetric or healthy). Built-in MLP by default, or --model FILE.py:FACTORY.",
    )
    built_in = parser.add_argument_group("built-in MLP ([width] * depth + [1])")
    built_in.add_argument("--depth", type=int, default=20, help="weight layers (default 20)")
    built_in.add_argument("--width", type=int, default=256, help="units per layer (default 256)")
    built_in.add_argument(
        "--activation", default="relu", help=f"one of {', '.join(HIDDEN_ACTIVATION_NAMES)}"
    )
    parser.add_argument(
        "--init",
        default=None,
        help="scheme to initialize with first, e.g. he_normal, xavier_normal, "
        "'normal:std=0.01', zeros (default: he_normal for the built-in MLP, the model's own "
        "init for --model)",
    )
    user = parser.add_argument_group("your model")
    user.add_argument(
        "--model",
        metavar="FILE.py:FACTORY",
        help="a Python file and a function in it that returns an nn.Module (called with no "
        "arguments). The file's code runs (it is imported): only name files you trust, as "
        "with torch.load(weights_only=False)",
    )
    user.add_argument(
        "--input-shape", metavar="C,H,W", help="shape of one input without the batch, e.g. 3,32,32"
    )
    user.add_argument(
        "--vocab-size",
        type=int,
        default=None,
        metavar="N",
        help="feed integer token ids in [0, N) of shape (batch, *input-shape) instead of "
        "N(0, 1) floats (language models: --input-shape 16 --vocab-size 128)",
    )
    user.add_argument(
        "--input-dtype",
        choices=("float", "long"),
        default=None,
        help="float (default) or long (token ids; needs --vocab-size)",
    )
    parser.add_argument("--batch", type=int, default=256, help="batch size (default 256)")
    parser.add_argument("--seed", type=int, default=0, help="seed for init, inputs and loss")
    parser.add_argument(
        "--fix",
        action="store_true",
        help="re-initialize as recommended and show the diagnosis before and after",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.add_argument("--plot", metavar="PATH", help="write the signal-propagation PNG here")
    parser.set_defaults(handler=run)


def _positive(name: str, value: int) -> int:
    if value < 1:
        raise ValueError(f"{name} must be >= 1; got {value}")
    return value


def _nonempty(name: str, value: str | None) -> None:
    if value is not None and not value.strip():
        raise ValueError(f"{name} must not be empty; got {value!r}")


def _memory_bytes() -> int | None:
    import os

    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        return None


def _check_memory(what: str, estimate: float) -> None:
    """Refuse sizes whose estimated memory is above the machine's RAM, with the estimate."""
    total = _memory_bytes()
    if total is not None and estimate > total:
        raise ValueError(
            f"{what} needs about {estimate / 2**30:,.1f} GiB, more than this machine's "
            f"{total / 2**30:,.1f} GiB of memory; use smaller sizes"
        )


def _build(args: argparse.Namespace) -> tuple[nn.Module, tuple[int, ...]]:
    import torch

    from initlab.bench.nets import mlp
    from initlab.initializers.apply import init_model

    if args.model is None:
        if args.input_shape is not None:
            raise ValueError("--input-shape goes with --model (the built-in MLP takes --width)")
        depth = _positive("--depth", args.depth)
        width = _positive("--width", args.width)
        # float32 weights, their gradients and the recorded forward (about 4 tensors of
        # (batch, width) per layer: output, activation, their gradients).
        _check_memory(
            f"the built-in MLP with --depth {depth} --width {width} --batch {args.batch}",
            4.0 * depth * (2 * width * width + 4 * args.batch * width),
        )
        with torch.random.fork_rng(devices=[]):  # nn.Linear's default init uses the global RNG
            model = mlp([width] * depth + [1], activation=args.activation)
        init_model(model, args.init or "he_normal", seed=args.seed)
        return model, (width,)
    _split_spec(args.model)
    if args.input_shape is None:
        raise ValueError("--model needs --input-shape (one input without the batch, e.g. 3,32,32)")
    shape = parse_shape(args.input_shape)
    _check_memory(
        f"an input batch of {args.batch} x {args.input_shape}",
        8.0 * args.batch * math.prod(shape),
    )
    model = load_model(args.model, args.seed)
    if args.init is not None:
        init_model(model, args.init, seed=args.seed)
    return model, shape


def run(args: argparse.Namespace) -> int:
    import torch

    from initlab.doctor.diagnose import diagnose, fix

    batch = _positive("--batch", args.batch)
    _nonempty("--plot", args.plot)
    _nonempty("--init", args.init)
    _nonempty("--model", args.model)
    if args.plot is not None:
        target = Path(args.plot)
        if target.is_dir() or args.plot.endswith(("/", "\\")):
            raise IsADirectoryError(f"--plot must name a file, not a directory; got {args.plot!r}")
        if not target.resolve().parent.is_dir():
            raise FileNotFoundError(f"--plot: directory of {args.plot!r} does not exist")
    tokens = args.input_dtype == "long" or args.vocab_size is not None
    if tokens and args.vocab_size is None:
        raise ValueError("--input-dtype long needs --vocab-size N (token ids are drawn in [0, N))")
    if args.vocab_size is not None:
        _positive("--vocab-size", args.vocab_size)
        if args.input_dtype == "float":
            raise ValueError(
                "--vocab-size gives integer token ids; it cannot go with --input-dtype float"
            )
        if args.model is None:
            raise ValueError("--vocab-size goes with --model (the built-in MLP takes floats)")
    model, shape = _build(args)
    first = next((p for p in model.parameters() if p.is_floating_point()), None)
    dtype = first.dtype if first is not None else torch.float32
    device = first.device if first is not None else torch.device("cpu")
    generator = torch.Generator().manual_seed(args.seed)
    if tokens:
        inputs = torch.randint(0, args.vocab_size, (batch, *shape), generator=generator)
        inputs = inputs.to(device)
    else:
        inputs = torch.randn((batch, *shape), generator=generator, dtype=dtype).to(device)
    try:
        if args.fix:
            result = fix(model, inputs, seed=args.seed)
            diagnoses = [result.before, result.after]
            text, data = str(result), result.to_dict()
        else:
            diagnosis = diagnose(model, inputs, seed=args.seed)
            diagnoses = [diagnosis]
            text, data = str(diagnosis), diagnosis.to_dict()
    except MemoryError as error:
        raise ValueError(str(error) or "out of memory; use a smaller --batch or input") from None
    from initlab.doctor.criticality import criticality_section

    section = criticality_section(model)  # mean-field reading of MLP stacks
    if section is not None:
        data["criticality"] = section.to_dict()
        text += "\n\nmean-field criticality (MLP stack):\n" + str(section)
    print(json.dumps(data, indent=2) if args.json else text)
    if args.plot is not None:
        from initlab.report.signal import plot_signal

        path = plot_signal(diagnoses, args.plot)
        print(f"wrote {path}", file=sys.stderr if args.json else sys.stdout)
    return 0
