"""``initlab diagnose``: signal propagation through a built-in MLP or a user model, verdicts,
and with ``--fix`` the re-initialization the doctor recommends, before and after."""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import sys
from pathlib import Path

import torch
from torch import nn

from initlab._core.rng import seeded_global_rng
from initlab._core.validation import unknown_name_error
from initlab.bench.nets import HIDDEN_ACTIVATIONS, mlp
from initlab.doctor.diagnose import diagnose, fix
from initlab.initializers.apply import init_model


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
        "--activation", default="relu", help=f"one of {', '.join(HIDDEN_ACTIVATIONS)}"
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
        help="a Python file and a function in it that "
        "returns an nn.Module (called with no arguments)",
    )
    user.add_argument(
        "--input-shape", metavar="C,H,W", help="shape of one input without the batch, e.g. 3,32,32"
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


def parse_shape(text: str) -> tuple[int, ...]:
    """``"3,32,32"`` -> ``(3, 32, 32)``; every entry a positive integer."""
    try:
        shape = tuple(int(part) for part in text.replace(" ", "").split(","))
    except ValueError:
        raise ValueError(
            f"--input-shape must be positive integers separated by commas (e.g. 3,32,32); "
            f"got {text!r}"
        ) from None
    if not shape or any(d < 1 for d in shape):
        raise ValueError(f"--input-shape entries must be >= 1; got {text!r}")
    return shape


def _split_spec(spec: str) -> tuple[str, str]:
    path_text, sep, name = spec.rpartition(":")
    if not sep or not path_text or not name:
        raise ValueError(f"--model must be path/to/file.py:factory; got {spec!r}")
    return path_text, name


def load_model(spec: str, seed: int = 0) -> nn.Module:
    """Import ``path/to/file.py`` and call its ``factory()``: ``"file.py:factory"``.

    The factory runs with torch's RNG seeded by ``seed`` inside ``fork_rng``: PyTorch's default
    init is then reproducible and the caller's global RNG is left as it was.
    """
    path_text, name = _split_spec(spec)
    path = Path(path_text)
    if not path.is_file():
        raise FileNotFoundError(f"model file {path_text!r} does not exist")
    digest = hashlib.blake2b(str(path.resolve()).encode(), digest_size=6).hexdigest()
    module_spec = importlib.util.spec_from_file_location(f"_initlab_user_{digest}", path)
    if module_spec is None or module_spec.loader is None:
        raise ValueError(f"cannot import {path_text!r}: not a Python file")
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except Exception as error:
        raise ValueError(f"importing {path_text} failed: {type(error).__name__}: {error}") from None
    factory = getattr(module, name, None)
    if not callable(factory):
        choices = [k for k, v in vars(module).items() if callable(v) and not k.startswith("_")]
        raise unknown_name_error(f"factory in {path_text}:", name, choices or ["(none)"])
    try:
        with seeded_global_rng(seed):
            model = factory()
    except Exception as error:
        raise ValueError(
            f"{name}() in {path_text} failed: {type(error).__name__}: {error}"
        ) from None
    if not isinstance(model, nn.Module):
        raise TypeError(f"{name}() in {path_text} returned {type(model).__name__}, not nn.Module")
    return model


def _build(args: argparse.Namespace) -> tuple[nn.Module, tuple[int, ...]]:
    if args.model is None:
        if args.input_shape is not None:
            raise ValueError("--input-shape goes with --model (the built-in MLP takes --width)")
        depth = _positive("--depth", args.depth)
        width = _positive("--width", args.width)
        with torch.random.fork_rng(devices=[]):  # nn.Linear's default init uses the global RNG
            model = mlp([width] * depth + [1], activation=args.activation)
        init_model(model, args.init or "he_normal", seed=args.seed)
        return model, (width,)
    _split_spec(args.model)
    if args.input_shape is None:
        raise ValueError("--model needs --input-shape (one input without the batch, e.g. 3,32,32)")
    shape = parse_shape(args.input_shape)
    model = load_model(args.model, args.seed)
    if args.init is not None:
        init_model(model, args.init, seed=args.seed)
    return model, shape


def run(args: argparse.Namespace) -> int:
    batch = _positive("--batch", args.batch)
    if args.plot is not None and not Path(args.plot).resolve().parent.is_dir():
        raise FileNotFoundError(f"--plot: directory of {args.plot!r} does not exist")
    model, shape = _build(args)
    first = next((p for p in model.parameters() if p.is_floating_point()), None)
    dtype = first.dtype if first is not None else torch.float32
    device = first.device if first is not None else torch.device("cpu")
    generator = torch.Generator().manual_seed(args.seed)
    inputs = torch.randn((batch, *shape), generator=generator, dtype=dtype).to(device)
    if args.fix:
        result = fix(model, inputs, seed=args.seed)
        diagnoses = [result.before, result.after]
        text, data = str(result), result.to_dict()
    else:
        diagnosis = diagnose(model, inputs, seed=args.seed)
        diagnoses = [diagnosis]
        text, data = str(diagnosis), diagnosis.to_dict()
    print(json.dumps(data, indent=2) if args.json else text)
    if args.plot is not None:
        from initlab.report.signal import plot_signal

        path = plot_signal(diagnoses, args.plot)
        print(f"wrote {path}", file=sys.stderr if args.json else sys.stdout)
    return 0
