"""``initlab sweep``: train many configs (scheme x scale x depth x ...) batched, store a row each.

Axes come from a spec file (``--spec sweep.yaml``) and/or list flags (flags win):
``initlab sweep --schemes lecun_normal --scale 0.5,1,2,4 --depth 2,8,32 --activation tanh
--seeds 0,1,2 --data circles --iterations 500``. Writes ``results.csv`` (and
``results.parquet`` with pyarrow), ``sweep.json``, plots and ``report.html`` to ``--out``.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from initlab.cli import flags
from initlab.cli.flags import Items, Value, integer, number
from initlab.cli.out_folder import out_folder

_D = flags.SWEEP
# (flag, spec axis, item converter, example items, help): every axis takes a list of values.
_AXES = (
    ("--schemes", "scheme", flags.scheme, ["he", "xavier"],
     f"scheme specs ('initlab schemes' lists them; default {_D['scheme']})"),
    ("--scale", "scale", number(0), ["0.5", "2"],
     f"variance multipliers: weights x sqrt(scale) (default {_D['scale']:g})"),
    ("--depth", "depth", integer(0), ["1", "2"],
     f"hidden layers of the built-in MLP, or the factory's depth (default {_D['depth']})"),
    ("--width", "width", integer(1), ["4", "8"],
     f"units per hidden layer (default {_D['width']})"),
    ("--activation", "activation", flags.activation, ["relu", "tanh"],
     f"hidden activations (default {_D['activation']})"),
    ("--lr", "lr", number(0, strict=True), ["0.01", "0.1"],
     f"learning rates (default {_D['lr']})"),
    ("--optimizer", "optimizer", flags.choice(("gd", "momentum", "adam"), "optimizer"),
     ["gd", "adam"], f"gd, momentum or adam, full batch (default {_D['optimizer']})"),
    ("--seeds", "seed", flags.seed, ["0", "1"],
     f"replicate seeds, one run each (default {_D['seed']}); --seed is the same flag"),
    ("--data", "data", flags.dataset, ["circles", "moons"],
     f"{', '.join(flags.DATASETS)} or .csv/.npz paths (default {_D['data']})"),
)  # fmt: skip


_METAVARS = {"scheme": "SPEC", "scale": "X", "depth": "N", "width": "N", "activation": "NAME",
             "lr": "X", "optimizer": "NAME", "seed": "N", "data": "NAME"}  # fmt: skip


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "sweep",
        help="train many configs (scheme x scale x depth x ...) batched; phase diagrams",
        description="Grid or random search over scheme, scale (variance multiplier), "
        "activation, depth, width, lr, optimizer, data and seed. Configs that share an "
        "architecture train together as one batched ensemble, locally or as Ray tasks; each "
        "finished chunk is appended to OUT/results.csv (and results.parquet), so --resume "
        "continues an interrupted sweep. Then plots and report.html. Each axis flag takes "
        "one or more values, comma- or space-separated (--depth 2,8,32 or --depth 2 8 32); "
        "flags override the --spec file.",
    )
    add = parser.add_argument
    add(
        "--spec",
        action=Value,
        default=None,
        metavar="FILE",
        example=["sweep.yaml"],
        help="a .yaml/.yml or .json sweep spec (axes and options); flags override it",
    )
    for flag, axis, item, example, text in _AXES:
        names = (flag, "--seed") if axis == "seed" else (flag,)
        add(
            *names,
            action=Items,
            item=item,
            dest=axis,
            default=None,
            metavar=_METAVARS[axis],
            example=example,
            schemes=axis == "scheme",
            help=text,
        )
    add(
        "--model",
        action=Value,
        item=flags.model_spec,
        default=None,
        metavar="FILE.py:FACTORY",
        example=["net.py:build"],
        help="model factory called with the swept depth/width/activation (and in_features/"
        "out_features if it takes them) as keyword arguments; default the built-in MLP "
        "(only name files you trust: they run)",
    )
    add(
        "--dims",
        action=Items,
        item=integer(1),
        default=None,
        metavar="N",
        example=["2", "1"],
        help="fixed layer sizes n0,n1,...,nL of the built-in MLP instead of --depth/--width, "
        "e.g. 2,10,5,1",
    )
    add(
        "--iterations",
        action=Value,
        item=integer(1),
        default=None,
        metavar="N",
        example=["5"],
        help=f"full-batch updates per run (default {flags.SWEEP_ITERATIONS})",
    )
    add(
        "--search",
        choices=("grid", "random"),
        default=None,
        help="grid: every combination (default); random: --samples configs drawn from the axes",
    )
    add(
        "--samples",
        action=Value,
        item=integer(1),
        default=None,
        metavar="N",
        example=["4"],
        help="configs drawn by --search random",
    )
    add(
        "--sweep-seed",
        action=Value,
        item=flags.seed,
        default=None,
        metavar="N",
        example=["1"],
        help="seed every run's initial weights and the random search derive from (default "
        "0); --seeds adds replicates",
    )
    add(
        "--dtype",
        choices=("float32", "float64"),
        default=None,
        help="floating-point type of weights and data (default float32)",
    )
    add(
        "--clip-norm",
        action=Value,
        item=number(0, strict=True),
        default=None,
        example=["1"],
        help="clip each run's gradient global norm",
    )
    add(
        "--engine",
        choices=("auto", "vmap", "loop", "stacked"),
        default=None,
        help="engine (default auto: fused stacked MLP where it applies, loop for models with "
        "convolutions, else vmap)",
    )
    add(
        "--backend",
        choices=("local", "ray"),
        default="local",
        help="local (this process; default) or ray (chunks as Ray tasks; pip install initlab[ray])",
    )
    add(
        "--address",
        action=Value,
        default=None,
        example=["auto"],
        help="Ray cluster address (default: start a local Ray)",
    )
    add(
        "--num-cpus",
        action=Value,
        item=integer(1),
        default=None,
        metavar="N",
        example=["2"],
        help="CPUs of the local Ray (default all)",
    )
    add(
        "--chunk",
        action=Value,
        item=integer(1),
        default=None,
        metavar="N",
        example=["8"],
        help="most configs per batched ensemble (default 64)",
    )
    add(
        "--heatmap",
        action=Items,
        item=flags.choice(tuple(_D), "sweep axis"),
        count=2,
        default=None,
        metavar="AXIS",
        example=["scale", "depth"],
        help="the two axes X Y of the phase diagram (default: the first two swept)",
    )
    flags.add_run_folder(parser, "run only the configs missing from --out")
    flags.add_progress(parser)
    parser.set_defaults(handler=run)


def build_spec(args: argparse.Namespace) -> Any:
    """The :class:`~initlab.bench.sweep.spec.SweepSpec` of the file and flags."""
    from initlab.bench.sweep.spec import SweepSpec

    data: dict[str, Any] = {}
    if args.spec is not None:
        data = SweepSpec.from_file(args.spec).to_dict()
    axes = dict(data.pop("axes", {}))
    for _, axis, *_ in _AXES:
        values = getattr(args, axis)
        if values is not None:
            axes[axis] = values
    options = {"iterations": args.iterations, "search": args.search, "samples": args.samples,
               "sweep_seed": args.sweep_seed, "dtype": args.dtype, "clip_norm": args.clip_norm,
               "engine": args.engine, "model": args.model, "layer_dims": args.dims}  # fmt: skip
    if args.dims is not None:
        if len(args.dims) < 2:
            raise ValueError(f"--dims needs at least an input and an output size; got {args.dims}")
        clash = [f for f, v in (("--depth", args.depth), ("--width", args.width),
                                ("--model", args.model)) if v is not None]  # fmt: skip
        if clash:
            raise ValueError(f"--dims fixes the built-in MLP's sizes; it cannot go with {clash[0]}")
    data.update({k: v for k, v in options.items() if v is not None})
    if isinstance(data.get("model"), str):
        from initlab.cli.model_file import load_factory

        flag = "--model" if args.model is not None else f"model in {args.spec}"
        data["model"] = load_factory(data["model"], what="model factory", flag=flag)
    return SweepSpec.from_dict({"axes": axes, **data})


def run(args: argparse.Namespace) -> int:
    from initlab._core.files import prepare_out
    from initlab._core.locks import folder_lock
    from initlab.bench.sweep.run import sweep

    if args.resume and args.out is None:
        raise ValueError("--resume needs --out DIR (the folder of the sweep to continue)")
    if args.address is not None and args.backend != "ray":
        raise ValueError("--address is for --backend ray")
    spec = build_spec(args)
    heatmap = args.heatmap
    out = out_folder(args.out, "sweep")
    prepare_out(out, force=args.force, resume=args.resume, create=False)  # refuse early
    with folder_lock(out):  # held over the sweep and the report
        result = sweep(spec, out=out, resume=args.resume, force=args.force,
                       backend=args.backend, address=args.address, chunk=args.chunk,
                       num_cpus=args.num_cpus, progress=not args.no_progress)  # fmt: skip
        print(result.table())
        names = list(result.files)
        if not args.no_report:
            from initlab.report.sweep import write_sweep_report

            paths = write_sweep_report(result, out, heatmap=heatmap)
            names += [os.path.basename(p) for p in paths]
    print(f"\nwrote {out}/: {', '.join(names)}")
    return 0
