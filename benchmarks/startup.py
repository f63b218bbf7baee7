"""How fast does initlab start? Two ratios against ``import torch``, timed in the same run.

1. ``initlab --help`` (``python -m initlab.cli --help``) against ``python -c "import torch"``.
   The CLI parses without torch, so this is Python start-up plus argparse. Target <= 0.2x.
2. ``python -c "import initlab"`` against ``python -c "import torch"``: the package is lazy
   (PEP 562), so importing it costs almost nothing beyond Python itself; the comparison with
   ``import initlab; initlab.init_model`` (first use pulls torch) is printed for reference.
   Target <= 1.15x.

Each command runs ``--runs`` times in a fresh subprocess, alternating, and the medians are
compared (the machine may be shared).

    python benchmarks/startup.py            # 7 runs each
    python benchmarks/startup.py --runs 3
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

COMMANDS = {
    "import torch": [sys.executable, "-c", "import torch"],
    "initlab --help": [sys.executable, "-m", "initlab.cli", "--help"],
    "import initlab": [sys.executable, "-c", "import initlab"],
    "import initlab + first use": [sys.executable, "-c", "import initlab; initlab.init_model"],
}


def _time(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    for command in COMMANDS.values():  # warm the file cache
        _time(command)
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(args.runs):
        for name, command in COMMANDS.items():
            times[name].append(_time(command))
    median = {name: statistics.median(values) for name, values in times.items()}
    for name, value in median.items():
        print(f"{name:28s} {value:6.3f} s  (median of {args.runs})")
    torch_s = median["import torch"]
    print(f"\ninitlab --help / import torch  = {median['initlab --help'] / torch_s:.2f}"
          "  (target <= 0.2)")  # fmt: skip
    print(f"import initlab / import torch  = {median['import initlab'] / torch_s:.2f}"
          "  (target <= 1.15)")  # fmt: skip


if __name__ == "__main__":
    main()
