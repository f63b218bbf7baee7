"""How fast is ``initlab.compare``? Two ratios, each against a baseline timed in the same run.

1. The classic comparison (zeros, random:scale=10, he; 2-10-5-1 ReLU/sigmoid on circles,
   15000 full-batch GD steps, float64) against a plain NumPy implementation of the same net and
   loop, written here course-style (X of shape (features, m)). Target: ratio <= 0.5.
2. 30 runs (10 schemes x 3 seeds) against a plain per-run PyTorch loop (autograd +
   ``torch.optim.SGD``, one model at a time, torch's default threads). Target: >= 10x faster.
3. Report writing (``initlab.report.write_report``: the PNGs and report.html of the default
   ``initlab compare``) against the training time of the same run, median of --repeat.
   Target: report <= 0.5x training. ``--report-only`` runs just this part.

Both sides train the same number of steps from the same data; accuracies are printed so a
fast-but-wrong result shows. torch.set_flush_denormal(True) is set for the torch sides.

    python benchmarks/compare_speed.py            # full sizes
    python benchmarks/compare_speed.py --quick    # fewer iterations (smoke test)
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import numpy as np
import torch
from torch import nn

import initlab

DIMS = [2, 10, 5, 1]
THIRTY = ["he", "he_uniform", "xavier", "xavier_uniform", "lecun", "lecun_uniform",
          "orthogonal", "he_truncated", "random:scale=0.5", "zeros"]  # fmt: skip


def numpy_course(x: np.ndarray, y: np.ndarray, params: dict, iterations: int, lr: float) -> float:
    """The course's model(): forward, backward, update, full batch; returns train accuracy."""
    p = {k: v.copy() for k, v in params.items()}
    m = x.shape[1]
    for _ in range(iterations):
        z1 = p["W1"] @ x + p["b1"]
        a1 = np.maximum(0, z1)
        z2 = p["W2"] @ a1 + p["b2"]
        a2 = np.maximum(0, z2)
        z3 = p["W3"] @ a2 + p["b3"]
        a3 = 1 / (1 + np.exp(-z3))
        dz3 = (a3 - y) / m
        dw3, db3 = dz3 @ a2.T, dz3.sum(1, keepdims=True)
        dz2 = (p["W3"].T @ dz3) * (a2 > 0)
        dw2, db2 = dz2 @ a1.T, dz2.sum(1, keepdims=True)
        dz1 = (p["W2"].T @ dz2) * (a1 > 0)
        dw1, db1 = dz1 @ x.T, dz1.sum(1, keepdims=True)
        for key, grad in (("W1", dw1), ("b1", db1), ("W2", dw2), ("b2", db2), ("W3", dw3),
                          ("b3", db3)):  # fmt: skip
            p[key] = p[key] - lr * grad
    a1 = np.maximum(0, p["W1"] @ x + p["b1"])
    a2 = np.maximum(0, p["W2"] @ a1 + p["b2"])
    return float(((p["W3"] @ a2 + p["b3"] > 0) == y).mean())


def torch_per_run(data, scheme: str, seed: int, iterations: int, lr: float) -> float:
    """A plain PyTorch loop: one model (the same Linear/ReLU stack, same initial weights as
    initlab's member), autograd, ``torch.optim.SGD``."""
    model = initlab.mlp(DIMS).double()
    initlab.init_model(model, scheme, seed=seed)
    x, y = data.x_train, data.y_train.double().unsqueeze(1)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    loss_fn = nn.BCEWithLogitsLoss()
    for _ in range(iterations):
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
    with torch.no_grad():
        return float(((model(x) > 0).double() == y).double().mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=15000)
    parser.add_argument("--iterations30", type=int, default=3000,
                        help="steps per run in the 30-run comparison (0: skip it)")  # fmt: skip
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeat", type=int, default=3, help="best of this many (part 1)")
    parser.add_argument("--default-threads", action="store_true",
                        help="also time the per-run loop with torch's default threads")  # fmt: skip
    parser.add_argument("--report-only", action="store_true", help="only part 3")
    args = parser.parse_args()
    if args.quick:
        args.iterations, args.iterations30 = 1500, 300
    torch.set_flush_denormal(True)
    if args.report_only:
        report_vs_training(args.repeat)
        return
    data = initlab.datasets.load("circles")
    x, y = data.x_train.numpy().T.copy(), data.y_train.numpy()[None, :].astype(float)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; flush denormals on")

    # 1. classic comparison vs NumPy: alternate the two, best of --repeat each (the machine
    #    may be shared; the minimum is the least disturbed measurement of each side)
    numpy_times, initlab_times = [], []
    for _ in range(args.repeat):
        start = time.perf_counter()
        numpy_acc = [
            numpy_course(
                x, y, initlab.initialize_parameters(DIMS, s, seed=3), args.iterations, 0.01
            )
            for s in initlab.bench.compare.CLASSIC_SCHEMES
        ]
        numpy_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        result = initlab.compare(iterations=args.iterations, progress=False)
        initlab_times.append(time.perf_counter() - start)
    numpy_s, initlab_s = min(numpy_times), min(initlab_times)
    ours = [r.train_accuracy for r in result.runs]
    print(f"\n1. classic comparison, 3 schemes x {args.iterations} GD steps "
          f"(best of {args.repeat})")  # fmt: skip
    print(f"   numpy loop   {numpy_s:7.2f} s   train acc {numpy_acc}")
    print(f"   initlab      {initlab_s:7.2f} s   train acc {ours}")
    print(f"   ratio initlab/numpy = {initlab_s / numpy_s:.2f}  (target <= 0.5)")

    if args.iterations30 <= 0:
        return
    # 2. 30 runs vs a plain per-run PyTorch loop on 1 thread (faster than torch's default
    #    threads for ops this small, so the conservative baseline; --default-threads also
    #    times the default, which is far slower on a busy machine)
    seeds = [0, 1, 2]
    timings = {}
    for threads in [torch.get_num_threads(), 1] if args.default_threads else [1]:
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        start = time.perf_counter()
        base_acc = [torch_per_run(data, s, seed, args.iterations30, 0.05) for s in THIRTY
                    for seed in seeds]  # fmt: skip
        timings[threads] = time.perf_counter() - start
        torch.set_num_threads(previous)
    base_s = min(timings.values())
    start = time.perf_counter()
    result = initlab.compare(THIRTY, seeds=seeds, init_style="model", lr=0.05,
                             iterations=args.iterations30, progress=False)  # fmt: skip
    ours_s = time.perf_counter() - start
    ours30 = [r.train_accuracy for r in result.runs]
    diff = max(abs(a - b) for a, b in zip(base_acc, ours30, strict=True))
    print(f"\n2. 30 runs (10 schemes x 3 seeds) x {args.iterations30} GD steps")
    for threads, seconds in timings.items():
        print(f"   per-run torch loop {seconds:7.2f} s   ({threads} threads)")
    print(f"   initlab compare    {ours_s:7.2f} s   (max train-acc difference {diff:.3f})")
    print(f"   speedup vs the faster baseline = {base_s / ours_s:.1f}x  (target >= 10x)")
    report_vs_training(args.repeat)


def report_vs_training(repeat: int) -> None:
    """Part 3: the default comparison's training time against writing its report."""
    from initlab.report import write_report

    train_s, report_s = [], []
    for _ in range(max(1, repeat)):
        start = time.perf_counter()
        result = initlab.compare(progress=False)
        train_s.append(time.perf_counter() - start)
        with tempfile.TemporaryDirectory() as out:
            start = time.perf_counter()
            write_report(result, out)
            report_s.append(time.perf_counter() - start)
    t, r = statistics.median(train_s), statistics.median(report_s)
    print(f"\n3. default compare: report writing vs training (median of {len(train_s)})")
    print(f"   training {t:6.2f} s   report {r:6.2f} s   (each: {[round(v, 2) for v in report_s]})")
    print(f"   ratio report/training = {r / t:.2f}  (target <= 0.5)")


if __name__ == "__main__":
    main()
