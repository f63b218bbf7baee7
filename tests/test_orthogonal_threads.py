"""Same seed, same orthogonal matrix, whatever the number of threads (issue 12 #12)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

_SCRIPT = """
import hashlib, sys, torch
from torch import nn
torch.set_num_threads(int(sys.argv[1]))
import initlab
w = torch.empty(512, 512)
initlab.get("orthogonal")(w, 0)
with torch.random.fork_rng():
    model = nn.Sequential(nn.Linear(300, 200), nn.Tanh(), nn.Linear(200, 10))
initlab.init_model(model, "orthogonal:gain=auto", seed=0)
digest = hashlib.sha256(w.numpy().tobytes())
for p in model.parameters():
    digest.update(p.detach().numpy().tobytes())
print(digest.hexdigest())
"""


def _digest(threads: int) -> str:
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = os.environ | {"PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(threads)],
        capture_output=True, text=True, env=env, check=True, timeout=300,
    )  # fmt: skip
    return out.stdout.strip()


def test_orthogonal_and_init_model_do_not_depend_on_the_thread_count():
    assert _digest(1) == _digest(2)
