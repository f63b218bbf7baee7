"""Load case: ``initlab compare`` with 200 runs, with and without the report.

Runs ``initlab compare`` (4 schemes x 50 seeds = 200 runs of the classic 2-10-5-1 net on the
circles data) twice in fresh subprocesses, once with ``--no-report`` (the baseline) and once
with the report, and prints the wall time, the peak memory (max RSS) of each, the report's
extra time as a ratio of the baseline, and the size of ``report.html``. The report
summarises many runs (per-scheme table and loss bands, the best and worst runs in detail), so
it should stay small and add little.

    python benchmarks/report_many.py                   # 15000 iterations per run
    python benchmarks/report_many.py --iterations 2000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

SCHEMES = ["he", "xavier", "lecun", "random:scale=10"]

CHILD = """
import json, resource, sys, time, torch
torch.set_flush_denormal(True)
from initlab.cli import main
start = time.perf_counter()
code = main(sys.argv[1:])
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"code": code, "seconds": seconds, "peak": peak}), file=sys.stderr)
"""


def _run(args: list[str]) -> dict:
    proc = subprocess.run([sys.executable, "-c", CHILD, *args], capture_output=True, text=True)
    last = proc.stderr.strip().splitlines()[-1]
    result = json.loads(last)
    if result["code"] != 0:
        raise SystemExit(proc.stderr)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=15000)
    parser.add_argument("--seeds", type=int, default=50)
    args = parser.parse_args()
    seeds = [str(s) for s in range(args.seeds)]
    with tempfile.TemporaryDirectory() as tmp:
        common = ["compare", "--schemes", *SCHEMES, "--seed", *seeds, "--init-style", "model",
                  "--iterations", str(args.iterations), "--no-progress"]  # fmt: skip
        plain = _run([*common, "--no-report", "--out", os.path.join(tmp, "plain")])
        full = _run([*common, "--out", os.path.join(tmp, "full")])
        html = os.path.getsize(os.path.join(tmp, "full", "report.html"))
        names = os.listdir(os.path.join(tmp, "full"))
        pngs = sum(os.path.getsize(os.path.join(tmp, "full", n)) for n in names if n[-4:] == ".png")
    runs = len(SCHEMES) * args.seeds
    mb = 1 << 20
    print(f"{runs} runs x {args.iterations} iterations")
    print(f"  without report  {plain['seconds']:7.2f} s   peak {plain['peak'] / mb:6.0f} MB")
    print(f"  with report     {full['seconds']:7.2f} s   peak {full['peak'] / mb:6.0f} MB")
    extra = full["seconds"] - plain["seconds"]
    print(f"  report adds {extra:.2f} s = {extra / plain['seconds']:.2f}x the run without it")
    print(f"  report.html {html / mb:.2f} MB, PNGs {pngs / mb:.2f} MB")


if __name__ == "__main__":
    main()
