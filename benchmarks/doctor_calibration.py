"""The doctor's calibration on real models (issue 25): no finding at the framework default
init, in training and in evaluation mode, and the four broken inits named right, on every model
of ``tests/_doctor_real_models.py`` (timm, torchvision, Hugging Face, recurrent LMs).

For each model: ``diagnose`` at its default init with the model in ``train()`` and in
``eval()`` mode (a finding is a false alarm), then with every >= 2-D weight zero, N(0, 1),
N(0, 1e-4) and ten times its default (the first verdict must be one of
``_doctor_real_models.EXPECTED``; anything else is a miss). Prints one row per model and the
totals; ``--json PATH`` writes the verdicts; exits 1 on any false alarm or miss.

    python benchmarks/doctor_calibration.py [--only SUBSTRING] [--threads 1] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import initlab
from _doctor_real_models import BROKEN, EXPECTED, MODELS, break_weights


def _kinds(model, example) -> list[str]:
    return initlab.diagnose(model, example).kinds


def calibrate(name: str) -> dict[str, list[str]]:
    """Verdict kinds of model ``name`` at its default (train and eval) and each broken init."""
    model, example = MODELS[name]()
    result = {"train": _kinds(model.train(), example), "eval": _kinds(model.eval(), example)}
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()
    for mode in BROKEN:
        model.load_state_dict(saved)
        break_weights(model, mode)
        result[mode] = _kinds(model, example)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="models whose name contains this")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    results: dict[str, dict[str, list[str]]] = {}
    alarms = misses = 0
    print(f"{'model':24} {'train':18} {'eval':18} " + " ".join(f"{m:12}" for m in BROKEN))
    for name in [n for n in MODELS if args.only in n]:
        start = time.perf_counter()
        r = results[name] = calibrate(name)
        bad_default = [m for m in ("train", "eval") if r[m] != ["healthy"]]
        bad_broken = [m for m in BROKEN if r[m][0] not in EXPECTED[m]]
        alarms += len(bad_default)
        misses += len(bad_broken)
        cells = [",".join(r[m]) + ("!" if m in bad_default else "") for m in ("train", "eval")]
        cells += [r[m][0] + ("!" if m in bad_broken else "") for m in BROKEN]
        print(
            f"{name:24} {cells[0]:18} {cells[1]:18} "
            + " ".join(f"{c:12}" for c in cells[2:])
            + f" {time.perf_counter() - start:5.1f}s",
            flush=True,
        )
    print(
        f"false alarms: {alarms} of {2 * len(results)}; misses: {misses} of "
        f"{len(BROKEN) * len(results)}  (! marks each)"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 1 if alarms or misses else 0


if __name__ == "__main__":
    sys.exit(main())
