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
echo "== counter stream on the GPU: its own Philox words, CPU values, speed"
timeout 180 python3 - <<'PY' 2>&1 | tee "$out/counter_stream_cuda.txt"
# Uniform must equal the CPU bit for bit (integer Philox + two correctly rounded float ops);
# normal/truncated may differ by erfinv's round-off on the GPU: print how much (in float32 ulps).
import time, torch
from torch import nn
import initlab
from initlab._core.counter_rng import CounterStream, counter_key
from initlab._core.philox import philox4x64

key = counter_key(0, "w")
counters = torch.arange(0, 1 << 20)
same = torch.equal(philox4x64(counters, *key), philox4x64(counters.cuda(), *key).cpu())
print(f"Philox4x64 words, 1M blocks: CUDA == CPU {same}")
stream = CounterStream(key, (4096, 4096))
fills = {
    "uniform": lambda t: stream.uniform_(t, -1.0, 1.0),
    "normal": lambda t: stream.normal_(t, 0.0, 1.0),
    "truncated": lambda t: stream.truncated_normal_(t, -2.0, 2.0),
    "truncated far tail": lambda t: stream.truncated_normal_(t, 4.0, 6.0),
}
for name, fill in fills.items():
    for dtype in (torch.float32, torch.float64, torch.bfloat16):
        cpu = fill(torch.empty(4096, 4096, dtype=dtype))
        gpu = fill(torch.empty(4096, 4096, dtype=dtype, device="cuda")).cpu()
        differ = (cpu != gpu).sum().item()
        ulp = ((cpu.double() - gpu.double()).abs() / torch.finfo(dtype).eps / cpu.double().abs().clamp_min(1e-30)).max().item()
        print(f"{name:18s} {str(dtype):15s} CUDA == CPU: {differ == 0} ({differ} of {cpu.numel()} differ, max {ulp:.1f} ulp)")
w = torch.empty(8192, 8192, device="cuda")
g = torch.Generator(device="cuda").manual_seed(0)
big = CounterStream(key, (8192, 8192))
for name, fn in (("torch normal_", lambda: w.normal_(0, 1, generator=g)),
                 ("counter normal_", lambda: big.normal_(w, 0.0, 1.0)),
                 ("torch uniform_", lambda: w.uniform_(-1, 1, generator=g)),
                 ("counter uniform_", lambda: big.uniform_(w, -1.0, 1.0))):
    fn(); torch.cuda.synchronize(); t = time.perf_counter()
    for _ in range(5):
        fn()
    torch.cuda.synchronize()
    print(f"{name:18s} 67M float32: {(time.perf_counter() - t) / 5 * 1e3:.2f} ms")
layers = nn.ModuleList(nn.Linear(4, 4) for _ in range(10000)).cuda()
initlab.init_model(layers, "he_normal", seed=0); torch.cuda.synchronize()
t = time.perf_counter(); initlab.init_model(layers, "he_normal", seed=0); torch.cuda.synchronize()
print(f"init_model 10,000 x Linear(4, 4) on cuda (batched): {time.perf_counter() - t:.3f} s")
PY
echo "== doctor overhead on the GPU"
timeout 150 python3 benchmarks/doctor_overhead.py --device cuda 2>&1 | tee "$out/doctor_overhead_cuda.txt"
echo "== tests that exercise CUDA"
timeout 120 python3 -m pytest -q -p no:cacheprovider -p no:benchmark tests/test_build.py tests/test_random.py tests/test_counter_device.py tests/test_orthogonal_threads.py 2>&1 | tail -4 | tee "$out/tests_cuda.txt"
