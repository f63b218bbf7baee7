"""``initlab sweep``: train many configs (scheme x scale x depth x ...) batched, store a row each.

Axes come from a spec file (``--spec sweep.yaml``) and/or comma-separated flags (flags win):
``initlab sweep --schemes lecun_normal --scale 0.5,1,2,4 --depth 2,8,32 --activation tanh
--seeds 0,1,2 --data circles --iterations 500``. Writes ``results.csv`` (and
``results.parquet`` with pyarrow), ``sweep.json``, plots and ``report.html`` to ``--out``.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from initlab.bench.choices import HIDDEN_ACTIVATION_NAMES
from initlab.cli.out_folder import out_folder

_AXIS_FLAGS = (
    ("schemes", "scheme", "he,xavier,lecun_normal (scheme specs; default he)"),
    ("scale", "scale", "variance multipliers, e.g. 0.5,1,2 (weights x sqrt(scale); default 1)"),
    ("depth", "depth", "hidden layers of the built-in MLP, e.g. 2,8,32 (default 2)"),
    ("width", "width", "hidden units per layer, e.g. 16,64 (default 16)"),
    ("activation", "activation",
     f"hidden activations: {','.join(HIDDEN_ACTIVATION_NAMES)} (default relu)"),
    ("lr", "lr", "learning rates, e.g. 0.01,0.1 (default 0.01)"),
    ("optimizer", "optimizer", "gd,momentum,adam (full batch; default gd)"),
    ("seeds", "seed", "replicate seeds, e.g. 0,1,2 (default 0)"),
    ("data", "data", "datasets: circles, moons, spiral, blobs, digits or .csv/.npz paths"),
)  # fmt: skip


def split_schemes(text: str) -> list[str]:
    """``"he,variance_scaling:scale=2,mode=fan_out,xavier"`` -> three specs: a part with ``=``
    and no ``:`` continues the previous scheme's parameters."""
    out: list[str] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        if out and "=" in part and ":" not in part:
            out[-1] += "," + part
        else:
            out.append(part)
    return out


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "sweep",
        help="train many configs (scheme x scale x depth x ...) batched; phase diagrams",
        description="Grid or random search over scheme, scale (variance multiplier), "
        "activation, depth, width, lr, optimizer, data and seed. Configs that share an "
        "architecture train together as one batched ensemble, locally or as Ray tasks; each "
        "finished chunk is appended to OUT/results.csv (and results.parquet), so --resume "
        "continues an interrupted sweep. Then plots and report.html.",
    )
    add = parser.add_argument
    add("--spec", default=None, metavar="FILE",
        help="a .yaml/.yml or .json sweep spec (axes and options); flags override it")  # fmt: skip
    for flag, _, text in _AXIS_FLAGS:
        add(f"--{flag}", default=None, help=text)
    add("--model", default=None, metavar="FILE.py:FACTORY",
        help="model factory called with the swept depth/width/activation (and in_features/"
        "out_features if it takes them) as keyword arguments; default the built-in MLP "
        "(only name files you trust: they run)")  # fmt: skip
    add(
        "--layer-dims",
        default=None,
        metavar="N0,N1,...",
        help="fixed sizes of the built-in MLP instead of --depth/--width, e.g. 2,10,5,1",
    )
    add("--iterations", type=int, default=None, help="full-batch updates per run (default 1000)")
    add("--search", choices=("grid", "random"), default=None, help="default grid")
    add("--samples", type=int, default=None, help="configs drawn by --search random")
    add("--sweep-seed", type=int, default=None, help="seed of every run's init (default 0)")
    add("--dtype", choices=("float32", "float64"), default=None, help="default float32")
    add("--clip-norm", type=float, default=None, help="clip each run's gradient global norm")
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
        help="local (this process) or ray (chunks as Ray tasks; pip install initlab[ray])",
    )
    add("--address", default=None, help="Ray cluster address (default: start a local Ray)")
    add("--num-cpus", type=int, default=None, help="CPUs of the local Ray (default all)")
    add("--chunk", type=int, default=None, help="most configs per batched ensemble (default 64)")
    add(
        "--heatmap",
        default=None,
        metavar="X,Y",
        help="the two axes of the phase diagram (default: the first two swept)",
    )
    add("--out", default=None, help="output folder (default: a new folder under runs/)")
    add("--force", action="store_true", help="overwrite a non-empty --out folder")
    add("--resume", action="store_true", help="run only the configs missing from --out")
    add("--no-report", action="store_true", help="skip the plots and report.html")
    add("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(handler=run)


def build_spec(args: argparse.Namespace) -> Any:
    """The :class:`~initlab.bench.sweep.spec.SweepSpec` of the file and flags."""
    from initlab.bench.sweep.spec import SweepSpec

    data: dict[str, Any] = {}
    if args.spec is not None:
        data = SweepSpec.from_file(args.spec).to_dict()
    axes = dict(data.pop("axes", {}))
    for flag, axis, _ in _AXIS_FLAGS:
        text = getattr(args, flag)
        if text is None:
            continue
        if axis == "scheme":
            axes[axis] = split_schemes(text)
        elif axis in ("activation", "optimizer", "data"):
            axes[axis] = [p for p in text.replace(" ", "").split(",") if p]
        else:
            axes[axis] = text  # numbers: parsed and checked by the spec
    options = {"iterations": args.iterations, "search": args.search, "samples": args.samples,
               "sweep_seed": args.sweep_seed, "dtype": args.dtype, "clip_norm": args.clip_norm,
               "engine": args.engine, "model": args.model}  # fmt: skip
    data.update({k: v for k, v in options.items() if v is not None})
    if args.layer_dims is not None:
        try:
            data["layer_dims"] = [int(v) for v in args.layer_dims.split(",") if v.strip()]
        except ValueError:
            raise ValueError(
                f"--layer-dims must be integers separated by commas; got {args.layer_dims!r}"
            ) from None
    if isinstance(data.get("model"), str):
        from initlab.cli.model_file import load_factory

        data["model"] = load_factory(data["model"], what="model factory")
    return SweepSpec.from_dict({"axes": axes, **data})


def run(args: argparse.Namespace) -> int:
    from initlab.bench.sweep.run import sweep

    if args.resume and args.out is None:
        raise ValueError("--resume needs --out DIR (the folder of the sweep to continue)")
    if args.address is not None and args.backend != "ray":
        raise ValueError("--address is for --backend ray")
    spec = build_spec(args)
    heatmap = None
    if args.heatmap is not None:
        heatmap = [p.strip() for p in args.heatmap.split(",") if p.strip()]
        if len(heatmap) != 2:
            raise ValueError(f"--heatmap takes two axes X,Y; got {args.heatmap!r}")
    out = out_folder(args.out, "sweep")
    result = sweep(spec, out=out, resume=args.resume, force=args.force, backend=args.backend,
                   address=args.address, chunk=args.chunk, num_cpus=args.num_cpus,
                   progress=not args.no_progress)  # fmt: skip
    print(result.table())
    names = list(result.files)
    if not args.no_report:
        from initlab.report.sweep import write_sweep_report

        names += [os.path.basename(p) for p in write_sweep_report(result, out, heatmap=heatmap)]
    print(f"\nwrote {out}/: {', '.join(names)}")
    return 0
