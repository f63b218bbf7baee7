"""How much ``initlab.diagnose`` costs next to one plain forward + backward pass.

Target (issue 5): diagnose <= 1.5x a plain forward + backward of the same batch on a 50-layer,
width-512 ReLU MLP (He init) with batch 256, both measured in this run. Prints the median of
``--repeat`` timings of each and their ratio; exits 1 when the ratio is above the target.

Denormals are flushed (``torch.set_flush_denormal(True)``) so that a vanishing signal cannot make
either side slow; with He init the signal does not vanish anyway.

    python benchmarks/doctor_overhead.py [--depth 50] [--width 512] [--batch 256] [--repeat 7]
        [--threads N] [--device cuda]

On a CPU shared with other jobs, ``--threads 1`` gives stable numbers (oversubscribed OpenMP
threads make every timing noisy).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

import initlab

TARGET = 1.5


def _time(fn, repeat: int) -> float:
    fn()  # warm up (allocator, thread pool)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depth", type=int, default=50)
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (1 on a busy shared machine)"
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)

    device = torch.device(args.device)
    model = initlab.mlp([args.width] * args.depth + [1]).to(device)
    initlab.init_model(model, "he_normal", seed=0)
    generator = torch.Generator(device=device).manual_seed(0)
    x = torch.randn(args.batch, args.width, generator=generator, device=device)
    projection = torch.randn(args.batch, 1, generator=generator, device=device)

    def plain() -> None:
        loss = (model(x) * projection).sum() / args.batch
        loss.backward()
        model.zero_grad(set_to_none=True)

    def doctor() -> None:
        initlab.diagnose(model, x)

    # Interleave so that both see the same machine load.
    plain_s, doctor_s = [], []
    for _ in range(3):
        plain_s.append(_time(plain, args.repeat))
        doctor_s.append(_time(doctor, args.repeat))
    base, cost = min(plain_s), min(doctor_s)
    ratio = cost / base
    print(
        f"{args.depth} layers, width {args.width}, batch {args.batch} on {device} "
        f"({torch.get_num_threads()} threads, denormals flushed):\n"
        f"  plain forward+backward  {1e3 * base:8.2f} ms\n"
        f"  initlab.diagnose        {1e3 * cost:8.2f} ms\n"
        f"  ratio                   {ratio:8.3f}  (target <= {TARGET})"
    )
    return 0 if ratio <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
