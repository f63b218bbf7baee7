"""``initlab diagnose``: signal propagation through a built-in MLP or a user model, verdicts,
and with ``--fix`` the re-initialization the doctor recommends, before and after."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from initlab.cli import flags
from initlab.cli.flags import Items, Value, integer
from initlab.cli.model_file import (
    call_factory,
    load_factory,
    load_model,
)

if TYPE_CHECKING:
    from torch import nn

__all__ = ["load_model", "register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "diagnose",
        help="measure signal propagation and name what is wrong with a model's init",
        description="Run one forward and backward pass on a random batch with hooks on every "
        "module; print per-layer statistics (mean, std, zeros, saturated and dead units, "
        "gradient norms, identical units) and verdicts (vanishing, exploding, saturated, "
        "dead, symmetric or healthy). Built-in MLP by default, or --model FILE.py:FACTORY.",
    )
    flags.add_built_in_mlp(
        parser.add_argument_group("built-in MLP ([width] * (depth + 1) + [1]), without --model")
    )
    flags.add_init(parser)
    user = parser.add_argument_group("your model")
    flags.add_model(
        user,
        "a Python file and a function in it that returns an nn.Module (called with no "
        "arguments). The file's code runs (it is imported): only name files you trust, as "
        "with torch.load(weights_only=False)",
    )
    flags.add_input_shape(user, "shape of one input without the batch, e.g. 3,32,32")
    user.add_argument(
        "--vocab-size",
        action=Value,
        item=integer(1),
        default=None,
        metavar="N",
        example=["8"],
        help="feed integer token ids in [0, N) of shape (batch, *input-shape) instead of "
        "N(0, 1) floats (language models: --input-shape 16 --vocab-size 128)",
    )
    user.add_argument(
        "--input-dtype",
        choices=("float", "long"),
        default=None,
        help="float (default) or long (token ids; needs --vocab-size)",
    )
    flags.add_batch(parser, 256)
    flags.add_seed(parser, "init, inputs and loss")
    parser.add_argument(
        "--fix",
        action="store_true",
        help="re-initialize as recommended and show the diagnosis before and after",
    )
    flags.add_json(parser)
    flags.add_plot(
        parser,
        "write the signal-propagation PNG here (and each section's figure next to it, "
        "PATH-stem-SECTION.png)",
    )
    parser.add_argument(
        "--html",
        action=Value,
        item=flags.output_file,
        metavar="PATH",
        example=["r.html"],
        help="write a self-contained HTML report (figures embedded)",
    )
    _register_sections(parser)
    parser.set_defaults(handler=run)


_SECTIONS = ("spp", "jacobian", "coord", "all")


def _register_sections(parser: argparse.ArgumentParser) -> None:
    """--sections, --deep and --widths: the report's opt-in deeper checks."""
    deeper = parser.add_argument_group(
        "deeper checks as sections of the report (opt-in: each costs more passes)"
    )
    deeper.add_argument(
        "--sections",
        action=Items,
        item=flags.choice(_SECTIONS, "section"),
        default=None,
        metavar="NAME",
        example=["spp", "jacobian"],
        help="spp (residual networks: one more forward), jacobian (Jacobian "
        "spectrum: ~240 backward passes), coord (coordinate check: needs a --model factory "
        "with a width argument), or all",
    )
    deeper.add_argument(
        "--deep",
        action="store_true",
        help="spp and jacobian, and coord when the --model factory takes a width",
    )
    deeper.add_argument(
        "--widths",
        action=Items,
        item=integer(1),
        default=[32, 64, 128, 256],
        metavar="N",
        example=["8", "16"],
        help="widths for the coord section (default 32,64,128,256)",
    )


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
        depth, width = args.depth, args.width
        # float32 weights, their gradients and the recorded forward (about 4 tensors of
        # (batch, width) per layer: output, activation, their gradients).
        _check_memory(
            f"the built-in MLP with --depth {depth} --width {width} --batch {args.batch}",
            4.0 * (depth + 1) * (2 * width * width + 4 * args.batch * width),
        )
        with torch.random.fork_rng(devices=[]):  # nn.Linear's default init uses the global RNG
            model = mlp([width] * (depth + 1) + [1], activation=args.activation)
        init_model(model, args.init or flags.INIT, seed=args.seed)
        return model, (width,)
    if args.input_shape is None:
        raise ValueError("--model needs --input-shape (one input without the batch, e.g. 3,32,32)")
    shape = tuple(args.input_shape)
    _check_memory(
        f"an input batch of {args.batch} x {','.join(map(str, shape))}",
        8.0 * args.batch * math.prod(shape),
    )
    model = _load_user_model(args)
    if args.init is not None:
        init_model(model, args.init, seed=args.seed)
    return model, shape


def _width_factory(spec: str) -> Any:
    """The ``--model`` factory as ``f(width)`` when it has a ``width`` parameter, else None."""
    import inspect

    factory = load_factory(spec)
    try:
        parameters = inspect.signature(factory).parameters
    except (TypeError, ValueError):  # builtins without a signature
        return None
    if "width" not in parameters:
        return None
    return lambda width: factory(width=width)


def _load_user_model(args: argparse.Namespace) -> nn.Module:
    """``FACTORY()``, or ``FACTORY(width=first of --widths)`` when its width has no default."""
    import inspect

    factory = load_factory(args.model)
    try:
        width = inspect.signature(factory).parameters.get("width")
    except (TypeError, ValueError):
        width = None
    if width is None or width.default is not inspect.Parameter.empty:
        return call_factory(args.model, factory, args.seed)
    return call_factory(args.model, factory, args.seed, width=args.widths[0])


def _widths(widths: list[int]) -> list[int]:
    if len(set(widths)) < 2:
        raise ValueError(f"--widths needs at least two different widths; got {widths}")
    return widths


def _sections(args: argparse.Namespace) -> tuple[list[str], Any]:
    """The sections asked for (``--sections``, ``--deep``) and the width factory they need."""
    from initlab.doctor.sections import check_sections

    names = check_sections(args.sections)  # "all" -> every section
    factory = _width_factory(args.model) if args.model is not None else None
    if args.deep:
        names += [n for n in ("spp", "jacobian") if n not in names]
        if factory is not None and "coord" not in names:
            names.append("coord")
    if "coord" in names and factory is None:
        raise ValueError(
            "--sections coord needs --model FILE.py:FACTORY whose factory takes a width "
            "argument (def FACTORY(width=64): ...)"
        )
    return names, factory


def run(args: argparse.Namespace) -> int:
    import torch

    from initlab.doctor.diagnose import diagnose, fix

    batch = args.batch
    names, width_factory = _sections(args)
    widths = _widths(args.widths)
    tokens = args.input_dtype == "long" or args.vocab_size is not None
    if tokens and args.vocab_size is None:
        raise ValueError("--input-dtype long needs --vocab-size N (token ids are drawn in [0, N))")
    if args.vocab_size is not None:
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
    options = {"sections": names, "factory": width_factory, "widths": widths}
    try:
        if args.fix:
            result = fix(model, inputs, seed=args.seed)
            if names:
                from initlab.doctor.sections import run_sections

                result.after.sections = run_sections(model, inputs, names, seed=args.seed,
                                                     factory=width_factory,
                                                     widths=widths)  # fmt: skip
            diagnoses = [result.before, result.after]
            text, data = str(result), result.to_dict()
        else:
            diagnosis = diagnose(model, inputs, seed=args.seed, **options)  # type: ignore[arg-type]
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
    notes = sys.stderr if args.json else sys.stdout
    if args.plot is not None or args.html is not None:
        from initlab._core.files import atomic_write
        from initlab.report.signal import plot_sections, report_pngs, write_diagnosis_html

        pngs = report_pngs(diagnoses)  # each figure rendered once for --plot and --html
        written = []
        if args.plot is not None:
            atomic_write(args.plot, pngs["signal"])
            written += [Path(args.plot), *plot_sections(diagnoses[-1], args.plot, pngs)]
        if args.html is not None:
            written.append(write_diagnosis_html(diagnoses, args.html, pngs))
        for path in written:
            print(f"wrote {path}", file=notes)
    return 0
