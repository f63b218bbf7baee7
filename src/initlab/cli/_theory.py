"""Arguments and helpers shared by the theory subcommands (lsuv, critical, coord-check, spp,
spectrum): a user model or the built-in MLP, an N(0, 1) batch, JSON or text, an optional plot.
No torch at import time (the parsers must stay light)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from initlab.cli import flags
from initlab.cli.model_file import load_model


def add_model_args(
    parser: argparse.ArgumentParser, *, built_in: bool = True, batch: int = 64
) -> None:
    user = parser.add_argument_group("your model")
    flags.add_model(
        user,
        "a Python file and a function in it that returns an nn.Module "
        "(the file's code runs: only name files you trust)",
    )
    flags.add_input_shape(user, "shape of one input without the batch, e.g. 3,32,32")
    if built_in:
        mlp = parser.add_argument_group(
            "built-in MLP ([width] * (depth + 1) + [1]), without --model"
        )
        flags.add_built_in_mlp(mlp)
        flags.add_init(mlp)
    flags.add_batch(parser, batch)
    flags.add_seed(parser)
    flags.add_json(parser)
    flags.add_plot(parser, "write the plot (PNG) here")


def build(
    args: argparse.Namespace, *, built_in: bool = True, square: bool = False
) -> tuple[Any, Any]:
    """The model and an N(0, 1) batch ``(batch, *input_shape)`` in the model's dtype/device.

    ``square``: the built-in MLP ends in ``width`` outputs, not 1 (for Jacobian spectra).
    """
    import torch

    from initlab.initializers.apply import init_model

    batch = args.batch
    if args.model is None:
        if not built_in:
            raise ValueError("--model FILE.py:FACTORY is required")
        if args.input_shape is not None:
            raise ValueError("--input-shape goes with --model (the built-in MLP takes --width)")
        from initlab.bench.nets import mlp

        depth, width = args.depth, args.width
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(args.seed)
            model = mlp([width] * (depth + 1) + [width if square else 1],
                        activation=args.activation)  # fmt: skip
        init_model(model, args.init or flags.INIT, seed=args.seed)
        shape: tuple[int, ...] = (width,)
    else:
        if args.input_shape is None:
            raise ValueError("--model needs --input-shape (one input without the batch)")
        shape = tuple(args.input_shape)
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
