#!/usr/bin/env bash
# The GPU checks in one run, for a machine with CUDA and PyTorch already installed:
#   bash benchmarks/gpu_checks.sh [OUT_DIR]
# Uses the package from src/ without installing it. Writes each benchmark's output to OUT_DIR.
set -u
cd "$(dirname "$0")/.."
out=${1:-${OUT:-gpu-results}}
mkdir -p "$out"
export PYTHONPATH=src PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())" | tee -a "$out/gpu.txt"
echo "== tests that exercise CUDA"
timeout 120 python3 -m pytest -q -p no:cacheprovider tests/test_build.py tests/test_random.py 2>&1 | tail -4 | tee "$out/tests_cuda.txt"
echo "== init speed"
timeout 240 python3 benchmarks/init_speed.py --device cuda --size 1e9 2>&1 | tee "$out/init_speed_cuda.txt"
echo "== doctor overhead"
timeout 60 python3 benchmarks/doctor_overhead.py --device cuda 2>&1 | tee "$out/doctor_overhead_cuda.txt"
echo "== doctor: CPU and GPU agree"
timeout 60 python3 - <<'PY' 2>&1 | tee "$out/doctor_agree.txt"
import torch, initlab
x = torch.randn(256, 256, generator=torch.Generator().manual_seed(1))
with torch.random.fork_rng(devices=[]):
    m = initlab.mlp([256] * 50 + [1])
initlab.init_model(m, "xavier_normal", seed=0)
cpu = initlab.diagnose(m, x)
gpu = initlab.diagnose(m.cuda(), x.cuda())
print("verdicts cpu", cpu.kinds, "gpu", gpu.kinds)
worst = max(abs(a.rms - b.rms) / max(a.rms, 1e-30) for a, b in zip(cpu.layers, gpu.layers) if a.rms)
print(f"largest relative rms difference cpu vs gpu: {worst:.2e}")
PY
echo "== gradcheck"
timeout 120 python3 benchmarks/gradcheck_speed.py --device cuda --quick --seeds 4 2>&1 | tee "$out/gradcheck_cuda.txt"
