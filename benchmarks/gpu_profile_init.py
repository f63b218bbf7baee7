"""Where does ``init_model`` spend its time on a GPU? Times a warm call on a 1B-parameter stack
against the bare fills, and prints the top of a cProfile of one call.

    python benchmarks/gpu_profile_init.py [--device cuda] [--size 1e9]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import time

import torch
from torch import nn

import initlab


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--size", type=float, default=1e9)
    args = parser.parse_args()
    pairs = max(1, round(args.size / (2 * 2048 * 8192)))
    with torch.device("meta"):
        layers = []
        for _ in range(pairs):
            layers += [nn.Linear(2048, 8192), nn.ReLU(), nn.Linear(8192, 2048), nn.ReLU()]
        model = nn.Sequential(*layers)
    model = model.to_empty(device=args.device)
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    params = list(model.parameters())
    gen = torch.Generator(device=args.device).manual_seed(0)

    def bare() -> None:
        for p in params:
            p.data.normal_(0.0, 0.01, generator=gen)

    def ours() -> None:
        initlab.init_model(model, "he_normal", seed=0)

    for name, fn in (("bare normal_ fills", bare), ("init_model", ours)):
        fn()
        sync()
        times = []
        for _ in range(5):
            start = time.perf_counter()
            fn()
            sync()
            times.append(time.perf_counter() - start)
        gb = sum(p.numel() * p.element_size() for p in params) / 1e9
        print(f"{name:20s} best {min(times) * 1e3:8.2f} ms  ({gb / min(times):8.1f} GB/s)")
    profile = cProfile.Profile()
    profile.enable()
    ours()
    sync()
    profile.disable()
    text = io.StringIO()
    pstats.Stats(profile, stream=text).sort_stats("tottime").print_stats(15)
    print(text.getvalue())


if __name__ == "__main__":
    main()
