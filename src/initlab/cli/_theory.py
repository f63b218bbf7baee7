"""Arguments and helpers shared by the theory subcommands (lsuv, critical, coord-check, spp,
spectrum): a user model or the built-in MLP, an N(0, 1) batch, JSON or text, an optional plot.
No torch at import time (the parsers must stay light)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from initlab.bench.choices import HIDDEN_ACTIVATION_NAMES
from initlab.cli.model_file import _split_spec, load_model, parse_shape


def add_model_args(
    parser: argparse.ArgumentParser, *, built_in: bool = True, batch: int = 64
) -> None:
    user = parser.add_argument_group("your model")
    user.add_argument(
        "--model",
        metavar="FILE.py:FACTORY",
        help="a Python file and a function in it that returns an nn.Module",
    )
    user.add_argument(
        "--input-shape", metavar="C,H,W", help="shape of one input without the batch, e.g. 3,32,32"
    )
    if built_in:
        mlp = parser.add_argument_group("built-in MLP ([width] * depth + [1]), without --model")
        mlp.add_argument("--depth", type=int, default=20, help="weight layers (default 20)")
        mlp.add_argument("--width", type=int, default=128, help="units per layer (default 128)")
        mlp.add_argument(
            "--activation",
            default="tanh",
            help=f"one of {', '.join(HIDDEN_ACTIVATION_NAMES)} (default tanh)",
        )
        mlp.add_argument(
            "--init",
            default=None,
            help="scheme to initialize with first, e.g. xavier_normal, orthogonal "
            "(default: the model's own init)",
        )
    parser.add_argument("--batch", type=int, default=batch, help=f"batch size (default {batch})")
    parser.add_argument("--seed", type=int, default=0, help="seed for init and inputs")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.add_argument("--plot", metavar="PATH", help="write the plot (PNG) here")


def positive(name: str, value: int) -> int:
    if value < 1:
        raise ValueError(f"{name} must be >= 1; got {value}")
    return value


def check_plot(args: argparse.Namespace) -> None:
    if args.plot is not None and not Path(args.plot).resolve().parent.is_dir():
        raise FileNotFoundError(f"--plot: directory of {args.plot!r} does not exist")


def build(
    args: argparse.Namespace, *, built_in: bool = True, square: bool = False
) -> tuple[Any, Any]:
    """The model and an N(0, 1) batch ``(batch, *input_shape)`` in the model's dtype/device.

    ``square``: the built-in MLP ends in ``width`` outputs, not 1 (for Jacobian spectra).
    """
    import torch

    from initlab.initializers.apply import init_model

    batch = positive("--batch", args.batch)
    if args.model is None:
        if not built_in:
            raise ValueError("--model FILE.py:FACTORY is required")
        if args.input_shape is not None:
            raise ValueError("--input-shape goes with --model (the built-in MLP takes --width)")
        from initlab.bench.nets import mlp

        depth, width = positive("--depth", args.depth), positive("--width", args.width)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(args.seed)
            model = mlp([width] * depth + [width if square else 1], activation=args.activation)
        shape: tuple[int, ...] = (width,)
    else:
        _split_spec(args.model)
        if args.input_shape is None:
            raise ValueError("--model needs --input-shape (one input without the batch)")
        shape = parse_shape(args.input_shape)
        model = load_model(args.model, args.seed)
    if getattr(args, "init", None) is not None:
        init_model(model, args.init, seed=args.seed)
    first = next((p for p in model.parameters() if p.is_floating_point()), None)
    dtype = first.dtype if first is not None else torch.float32
    device = first.device if first is not None else torch.device("cpu")
    generator = torch.Generator().manual_seed(args.seed)
    x = torch.randn((batch, *shape), generator=generator, dtype=dtype).to(device)
    return model, x


def emit(args: argparse.Namespace, result: Any, plot: Any = None) -> int:
    """Print ``result`` (JSON or its table), then write the plot with ``plot(result, path)``."""
    print(json.dumps(result.to_dict(), indent=2) if args.json else str(result))
    if args.plot is not None and plot is not None:
        path = plot(result, args.plot)
        print(f"wrote {path}", file=sys.stderr if args.json else sys.stdout)
    return 0
