#!/usr/bin/env bash
# The GPU checks in one run, for a machine with CUDA and PyTorch already installed:
#   bash benchmarks/gpu_checks.sh [OUT_DIR]
# Uses the package from src/ without installing it. Writes each check's output to OUT_DIR.
set -u
cd "$(dirname "$0")/.."
out=${1:-${OUT:-gpu-results}}
mkdir -p "$out"
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())" | tee -a "$out/gpu.txt"
echo "== init_model: the counter stream gives the CPU's values on the GPU"
timeout 120 python3 - <<'PY' 2>&1 | tee "$out/counter_cuda.txt"
import time, torch
from torch import nn
import initlab

def model():
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        layer = nn.TransformerEncoderLayer(256, 8, 1024, batch_first=True)
        return nn.Sequential(nn.Embedding(1000, 256), nn.TransformerEncoder(layer, 4, enable_nested_tensor=False), nn.Linear(256, 1000))

for scheme in ("he_normal", "xavier_uniform", "lecun_truncated", "orthogonal", "trunc_normal_:std=0.02"):
    cpu, gpu = model(), model().cuda()
    initlab.init_model(cpu, scheme, seed=7)
    initlab.init_model(gpu, scheme, seed=7)
    same = all(torch.equal(a, b.cpu()) for a, b in zip(cpu.parameters(), gpu.parameters()))
    worst = max(float((a - b.cpu()).abs().max()) for a, b in zip(cpu.parameters(), gpu.parameters()))
    print(f"{scheme:24s} CPU == GPU bit for bit: {same} (largest difference {worst:.1e})")
big = nn.Linear(8192, 8192, device="cuda")
for rng in ("counter", "torch"):
    initlab.init_model(big, "he_normal", seed=0, rng=rng); torch.cuda.synchronize()
    t = time.perf_counter(); initlab.init_model(big, "he_normal", seed=0, rng=rng); torch.cuda.synchronize()
    print(f"init_model 67M params on cuda, rng={rng}: {time.perf_counter() - t:.3f} s")
PY
echo "== doctor overhead on the GPU"
timeout 150 python3 benchmarks/doctor_overhead.py --device cuda 2>&1 | tee "$out/doctor_overhead_cuda.txt"
echo "== tests that exercise CUDA"
timeout 120 python3 -m pytest -q -p no:cacheprovider -p no:benchmark tests/test_build.py tests/test_random.py 2>&1 | tail -4 | tee "$out/tests_cuda.txt"
