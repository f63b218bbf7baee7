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

(a) and (b) end as a sweep does: with each member's final training loss and accuracy and its
test loss and accuracy read back to Python (one forward of each split), so that all ways
deliver the same table; nothing else of the sweep's bookkeeping (initial and best loss,
divergence masks) is asked of them.
- (c) ``initlab.sweep`` locally (engine ``auto``; for the built-in MLPs also each engine);
- (d) ``initlab.sweep(backend="ray")`` on a local Ray with this machine's cores (Ray's start-up
  is timed apart and not counted; the numbers are compared with (c));
- (e) the machine's limit: the sweep's FLOPs (``torch.utils.flop_counter`` on one member's
  forward + backward, times members and iterations) at the measured throughput of a 2048^3
  float32 matmul.

Targets: (c) >= 1.0x (b) everywhere; (c) >= 20x (a) on the course MLP; (c) within 1.5x of (e)
where the work is compute-bound (digits, CNN); (d) within 1.3x of (c) with the same numbers.
Every time includes building and initializing the members (``initlab.sweep`` does it inside
its run, so the baselines do too). The ways run interleaved (a, b, c, ..., a, b, c, ...) and
times are medians over ``--repeats`` rounds, so that a shared machine's load falls on all of
them alike; read the ratios, not the seconds. ``torch.set_flush_denormal(True)`` is set.
(e) also prints the throughput of the sweep's own largest product at its exact shape: how far
below the 2048^3 matmul these small products run on this CPU.

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
    """(a): returns seconds (building and initializing the members included, as in (c))."""
    start = time.perf_counter()
    models, data, output = _members(spec)
    x = data.x_train.float()
    t = targets(output, data.y_train, 1 if output == "sigmoid" else 10, torch.float32)
    loss_fn = F.binary_cross_entropy_with_logits if output == "sigmoid" else F.cross_entropy
    lr = float(spec.configs()[0]["lr"])
    # Tiny nets run fastest on one thread (per-op overhead; idle threads spin): give the
    # baseline the same thread rule as the sweep.
    size = x.shape[0] * sum(p.numel() for p in models[0].parameters())
    with few_threads(1 if size < 1_000_000 else None):
        for model in models:
            opt = torch.optim.SGD(model.parameters(), lr=lr)
            for _ in range(spec.iterations):
                opt.zero_grad()
                loss_fn(model(x), t).backward()
                opt.step()
            with torch.no_grad():
                _final_metrics(model, data, output, loss_fn)
    return time.perf_counter() - start


def _final_metrics(
    forward: Callable[..., torch.Tensor],
    data: Any,
    output: str,
    loss_fn: Callable[..., torch.Tensor],
    *args: Any,
) -> list[float]:
    """Final training and test loss and accuracy of a model or (vmapped) ensemble, read back
    as Python floats, as a sweep's result rows hold them."""
    values = []
    for x_split, y_split in ((data.x_train, data.y_train), (data.x_test, data.y_test)):
        if x_split.shape[0] == 0:
            continue
        z = forward(*args, x_split.float())
        t = targets(output, y_split, z.shape[-1], torch.float32)
        loss = loss_fn(z, t)
        predicted = (z[..., 0] > 0).long() if z.shape[-1] == 1 else z.argmax(-1)
        accuracy = (predicted == y_split).float().mean(-1)
        values += loss.reshape(-1).tolist() + accuracy.reshape(-1).tolist()
    return values


def func_ensemble(spec: SweepSpec) -> float:
    """(b): the torch.func ensembling recipe; returns seconds (building and initializing the
    members included, as in (c))."""
    from torch.func import functional_call, grad, stack_module_state, vmap

    start = time.perf_counter()
    models, data, output = _members(spec)
    x = data.x_train.float()
    t = targets(output, data.y_train, 1 if output == "sigmoid" else 10, torch.float32)
    base = models[0]
    lr = float(spec.configs()[0]["lr"])
    params, buffers = stack_module_state(models)
    params = {k: v.detach() for k, v in params.items()}

    def loss(p: dict, b: dict, xb: torch.Tensor, tb: torch.Tensor) -> torch.Tensor:
        return loss_of(functional_call(base, (p, b), (xb,)), tb)

    def loss_of(z: torch.Tensor, tb: torch.Tensor) -> torch.Tensor:
        if output == "softmax":
            return F.cross_entropy(z, tb)
        return (F.softplus(z) - tb * z).mean()  # BCE from logits: vmap has no rule for F.bce

    step = vmap(grad(loss), in_dims=(0, 0, None, None))
    size = len(models) * x.shape[0] * sum(p.numel() for p in models[0].parameters())
    with few_threads(1 if size < 20_000_000 else None):  # the sweep's thread rule
        for _ in range(spec.iterations):
            g = step(params, buffers, x, t)
            params = {k: p - lr * g[k] for k, p in params.items()}
        forward = vmap(lambda p, b, xb: functional_call(base, (p, b), (xb,)),
                       in_dims=(0, 0, None))  # fmt: skip
        member_loss = vmap(lambda z, tb: loss_of(z, tb), in_dims=(0, None))
        with torch.no_grad():
            _final_metrics(forward, data, output, member_loss, params, buffers)
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


def interleaved(ways: dict[str, Callable[[], Any]], repeats: int) -> dict[str, tuple[float, Any]]:
    """Run every way once per round, ``repeats`` rounds (a, b, c, ..., a, b, c, ...), so that
    the load of a shared machine falls on all of them alike; median seconds and the last
    value of each."""
    times: dict[str, list[float]] = {k: [] for k in ways}
    values: dict[str, Any] = {}
    for _ in range(repeats):
        for key, fn in ways.items():
            start = time.perf_counter()
            values[key] = fn()
            times[key].append(time.perf_counter() - start)
    return {k: (statistics.median(v), values[k]) for k, v in times.items()}


def kernel_throughput(
    name: str, spec: SweepSpec, engine: str, repeats: int = 5
) -> tuple[str, float]:
    """FLOP/s of the sweep's own largest product at its exact shape and thread rule: the
    digits MLP's hidden layer (a (B, N, 128) x (B, 128, 128) batched matmul) or the CNN's
    second convolution: with the ``loop`` engine one member's plain 8 -> 16 channel 3x3 conv on
    N 8x8 images, one thread per member and one member per core (the rate reported is one
    thread's times the cores); with ``vmap``, grouped over B members. ``None`` for the course
    MLP (overhead-bound)."""
    members, n = len(spec.configs()), 1348
    if name == "cnn" and engine == "loop":
        x, w = torch.randn(n, 8, 8, 8), torch.randn(16, 8, 3, 3)
        flops = 2 * n * 64 * 16 * 8 * 9
        cores = torch.get_num_threads()
        label = f"plain conv 8 -> 16, 3x3 on ({n}, 8, 8), 1 thread x {cores} members at once"
        with few_threads(1):
            F.conv2d(x, w, padding=1)
            seconds = statistics.median(
                timed_once(lambda: F.conv2d(x, w, padding=1)) for _ in range(repeats)
            )
        return label, cores * flops / seconds
    if name == "digits":
        a, b = torch.randn(members, n, 128), torch.randn(members, 128, 128)
        flops, label = 2 * members * n * 128 * 128, f"bmm ({members}, {n}, 128) x (128, 128)"

        def op() -> Any:
            return torch.bmm(a, b)
    elif name == "cnn":
        x, w = torch.randn(n, members * 8, 8, 8), torch.randn(members * 16, 8, 3, 3)
        flops = 2 * n * 64 * members * 16 * 8 * 9
        label = f"grouped conv {members} x (8 -> 16, 3x3) on ({n}, 8, 8)"

        def op() -> Any:
            return F.conv2d(x, w, padding=1, groups=members)
    else:
        return "", float("nan")
    with few_threads(None):
        op()
        seconds = statistics.median(timed_once(op) for _ in range(repeats))
    return label, flops / seconds


def timed_once(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


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
        # warm-up: vmap's first call builds its batching rules; on Ray, the workers import
        # torch and initlab (start-up, not counted)
        warm = SweepSpec(**{**vars(spec), "iterations": 2})
        sweep(warm, progress=False)
        if ray is not None:
            sweep(warm, backend="ray", progress=False)
        ways: dict[str, Callable[[], Any]] = {
            "a": lambda spec=spec: per_run(spec),
            "b": lambda spec=spec: func_ensemble(spec),
            "c": lambda spec=spec: sweep(spec, progress=False),
        }
        for engine in ("stacked", "vmap") if spec.model is None else ("vmap", "loop"):
            other = SweepSpec(**{**vars(spec), "engine": engine})
            ways[engine] = lambda o=other: sweep(o, progress=False)
        if ray is not None:
            ways["d"] = lambda spec=spec: sweep(spec, backend="ray", progress=False)
        got = interleaved(ways, args.repeats)
        (a, _), (b, _), (c, local) = got["a"], got["b"], got["c"]
        engines = {k: got[k][0] for k in ("stacked", "vmap", "loop") if k in got}
        e = flops_limit(spec, throughput)
        label, kernel = kernel_throughput(name, spec, local.rows[0]["engine"])
        d = same = None
        if "d" in got:
            d, remote = got["d"]
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
        if label:
            print(f"      its own largest product, {label}: {kernel / 1e9:.1f} GFLOP/s "
                  f"({kernel / throughput:.2f}x the 2048^3 matmul; the same FLOPs at this "
                  f"rate: {e * throughput / kernel:.3f} s)")  # fmt: skip
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
