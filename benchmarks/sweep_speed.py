"""How fast is ``initlab sweep``? One run, three sweeps, five ways each.

Sweeps (float32, full-batch gradient descent, every config its own init from the same seeds):

- ``course``: 64 configs of the course MLP 2-10-5-1 (ReLU, sigmoid output) on circles
  (2 schemes x 4 variance multipliers x 8 seeds);
- ``digits``: 32 configs of a 64-128-128-10 ReLU MLP on digits (2 schemes x 4 scales x 4 seeds);
- ``cnn``: 16 configs of a small CNN on digits as 8x8 images (conv 1->8->16, 3x3, pool, linear;
  4 scales x 4 seeds).

Ways:

- (a) a plain per-run PyTorch loop: one model at a time, autograd, ``torch.optim.SGD``;
- (b) a hand-written ``torch.func`` ensemble: ``stack_module_state`` + ``vmap(grad(loss))``,
  ``p - lr * g`` (the PyTorch ensembling tutorial's recipe, no divergence checks);
- (c) ``initlab.sweep`` locally (engine ``auto``; for the built-in MLPs also each engine);
- (d) ``initlab.sweep(backend="ray")`` on a local Ray with this machine's cores (Ray's start-up
  is timed apart and not counted; the numbers are compared with (c));
- (e) the machine's limit: the sweep's FLOPs (``torch.utils.flop_counter`` on one member's
  forward + backward, times members and iterations) at the measured throughput of a 2048^3
  float32 matmul.

Targets: (c) >= 1.0x (b) everywhere; (c) >= 20x (a) on the course MLP; (c) within 1.5x of (e)
where the work is compute-bound (digits, CNN); (d) within 1.3x of (c) with the same numbers.
Times are medians over ``--repeats``. ``torch.set_flush_denormal(True)`` is set.

    python benchmarks/sweep_speed.py            # full sizes (a few minutes on 2 cores)
    python benchmarks/sweep_speed.py --quick    # fewer iterations (smoke test)
    python benchmarks/sweep_speed.py --no-ray   # skip (d)
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from initlab import SweepSpec, sweep
from initlab.bench.sweep.engine import build_member, member_loss
from initlab.bench.sweep.store import METRICS
from initlab.bench.train import as_dataset, few_threads, targets


class SmallCNN(nn.Module):
    """Digits as 1x8x8 images: conv 1->8, ReLU, conv 8->16, ReLU, 2x2 average pool, linear."""

    def __init__(self, width: int = 8) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Unflatten(1, (1, 8, 8)), nn.Conv2d(1, width, 3, padding=1), nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(),
            nn.Linear(2 * width * 16, 10),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def cases(quick: bool) -> dict[str, SweepSpec]:
    it = {"course": 300 if quick else 3000, "digits": 20 if quick else 150,
          "cnn": 5 if quick else 30}  # fmt: skip
    common = {"dtype": "float32", "optimizer": "gd"}
    return {
        "course": SweepSpec.from_dict({"scheme": ["he", "xavier"], "scale": [0.5, 1, 2, 4],
                                       "seed": list(range(8)), "layer_dims": [2, 10, 5, 1],
                                       "data": "circles", "lr": 0.05,
                                       "iterations": it["course"], **common}),
        "digits": SweepSpec.from_dict({"scheme": ["he", "xavier"], "scale": [0.5, 1, 2, 4],
                                       "seed": list(range(4)), "layer_dims": [64, 128, 128, 10],
                                       "data": "digits", "lr": 0.05,
                                       "iterations": it["digits"], **common}),
        "cnn": SweepSpec.from_dict({"scheme": "he", "scale": [0.5, 1, 2, 4],
                                    "seed": list(range(4)), "data": "digits", "lr": 0.05,
                                    "iterations": it["cnn"], **common}
                                   | {"model": SmallCNN}),
    }  # fmt: skip


def _members(spec: SweepSpec) -> tuple[list[nn.Module], Any, str]:
    configs = spec.configs()
    data = as_dataset(configs[0]["data"])
    models = [build_member(spec, c, data) for c in configs]
    with torch.no_grad():
        n_out = int(models[0](data.x_train[:1].float()).shape[-1])
    return models, data, "sigmoid" if n_out == 1 else "softmax"


def per_run(spec: SweepSpec) -> float:
    """(a): returns seconds."""
    models, data, output = _members(spec)
    x = data.x_train.float()
    t = targets(output, data.y_train, 1 if output == "sigmoid" else 10, torch.float32)
    loss_fn = F.binary_cross_entropy_with_logits if output == "sigmoid" else F.cross_entropy
    lr = float(spec.configs()[0]["lr"])
    # Tiny nets run fastest on one thread (per-op overhead; idle threads spin): give the
    # baseline the same thread rule as the sweep.
    size = x.shape[0] * sum(p.numel() for p in models[0].parameters())
    start = time.perf_counter()
    with few_threads(1 if size < 1_000_000 else None):
        for model in models:
            opt = torch.optim.SGD(model.parameters(), lr=lr)
            for _ in range(spec.iterations):
                opt.zero_grad()
                loss_fn(model(x), t).backward()
                opt.step()
    return time.perf_counter() - start


def func_ensemble(spec: SweepSpec) -> float:
    """(b): the torch.func ensembling recipe; returns seconds."""
    from torch.func import functional_call, grad, stack_module_state, vmap

    models, data, output = _members(spec)
    x = data.x_train.float()
    t = targets(output, data.y_train, 1 if output == "sigmoid" else 10, torch.float32)
    base = models[0]
    lr = float(spec.configs()[0]["lr"])
    start = time.perf_counter()
    params, buffers = stack_module_state(models)
    params = {k: v.detach() for k, v in params.items()}

    def loss(p: dict, b: dict, xb: torch.Tensor, tb: torch.Tensor) -> torch.Tensor:
        z = functional_call(base, (p, b), (xb,))
        if output == "softmax":
            return F.cross_entropy(z, tb)
        return (F.softplus(z) - tb * z).mean()  # BCE from logits: vmap has no rule for F.bce

    step = vmap(grad(loss), in_dims=(0, 0, None, None))
    size = len(models) * x.shape[0] * sum(p.numel() for p in models[0].parameters())
    with few_threads(1 if size < 20_000_000 else None):  # the sweep's thread rule
        for _ in range(spec.iterations):
            g = step(params, buffers, x, t)
            params = {k: p - lr * g[k] for k, p in params.items()}
    return time.perf_counter() - start


def flops_limit(spec: SweepSpec, throughput: float) -> float:
    """(e): seconds the sweep's FLOPs take at ``throughput`` FLOP/s."""
    from torch.utils.flop_counter import FlopCounterMode

    models, data, output = _members(spec)
    x = data.x_train.float()
    t = targets(output, data.y_train, 1 if output == "sigmoid" else 10, torch.float32)
    counter = FlopCounterMode(display=False)
    with counter:
        member_loss(output, models[0](x), t).backward()
    return counter.get_total_flops() * len(models) * spec.iterations / throughput


def matmul_throughput(n: int = 2048, repeats: int = 5) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        times.append(time.perf_counter() - start)
    return 2 * n**3 / statistics.median(times)


def timed(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    times, value = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations")
    parser.add_argument("--repeats", type=int, default=1, help="median over this many runs")
    parser.add_argument("--no-ray", action="store_true", help="skip (d)")
    parser.add_argument("--cases", default="course,digits,cnn", help="which sweeps")
    args = parser.parse_args()
    torch.set_flush_denormal(True)
    threads = torch.get_num_threads()
    throughput = matmul_throughput()
    print(f"torch {torch.__version__}, {threads} threads; float32 matmul 2048^3: "
          f"{throughput / 1e9:.1f} GFLOP/s; denormals flushed")  # fmt: skip
    ray = None
    if not args.no_ray:
        try:
            import ray
        except ImportError:
            print("ray not installed: (d) skipped")
        else:
            start = time.perf_counter()
            ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
            print(f"local Ray started in {time.perf_counter() - start:.1f} s (not counted)")
    chosen = [c.strip() for c in args.cases.split(",")]
    rows = []
    for name, spec in cases(args.quick).items():
        if name not in chosen:
            continue
        n = len(spec.configs())
        # warm-up: vmap's first call builds its batching rules
        warm = SweepSpec(**{**vars(spec), "iterations": 2})
        sweep(warm, progress=False)
        a, _ = timed(lambda spec=spec: per_run(spec), args.repeats)
        b, _ = timed(lambda spec=spec: func_ensemble(spec), args.repeats)
        c, local = timed(lambda spec=spec: sweep(spec, progress=False), args.repeats)
        engines = {}
        if spec.model is None:
            for engine in ("stacked", "vmap"):
                other = SweepSpec(**{**vars(spec), "engine": engine})
                engines[engine], _ = timed(lambda o=other: sweep(o, progress=False), args.repeats)
        e = flops_limit(spec, throughput)
        d = same = None
        if ray is not None:
            d, remote = timed(lambda spec=spec: sweep(spec, backend="ray", progress=False),
                              args.repeats)  # fmt: skip
            key = ("config_id", *METRICS)
            same = [{k: r[k] for k in key} for r in local.rows] == [
                {k: r[k] for k in key} for r in remote.rows
            ]
        print(f"\n{name}: {n} configs x {spec.iterations} iterations")
        print(f"  (a) per-run loop        {a:8.2f} s")
        print(f"  (b) torch.func ensemble {b:8.2f} s")
        print(f"  (c) initlab sweep       {c:8.2f} s   engine {local.rows[0]['engine']}")
        for engine, seconds in engines.items():
            print(f"      engine={engine:8s}       {seconds:8.2f} s")
        if d is not None:
            print(f"  (d) sweep on Ray        {d:8.2f} s   same numbers as (c): {same}")
        print(f"  (e) FLOP limit          {e:8.3f} s")
        ratio = f"  (a)/(c) {a / c:6.1f}x   (b)/(c) {b / c:5.2f}x   (c)/(e) {c / e:7.1f}x"
        if d is not None:
            ratio += f"   (d)/(c) {d / c:5.2f}x"
        print(ratio)
        rows.append((name, a / c, b / c, c / e, None if d is None else d / c, same))
    print("\nsummary: case, (a)/(c), (b)/(c), (c)/(e), (d)/(c), same numbers")
    for row in rows:
        print("  " + ", ".join(f"{v:.2f}" if isinstance(v, float) else str(v) for v in row))
    if ray is not None:
        ray.shutdown()


if __name__ == "__main__":
    main()
