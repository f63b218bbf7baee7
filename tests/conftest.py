import os
import sys
import types

import pytest
import torch

# The registry's torchvision wheel is a CUDA build whose fake-op registrations fail beside the
# CPU torch ("operator torchvision::nms does not exist"); the model definitions that the tests
# build (torchvision, timm, and transformers, which imports torchvision) use no custom ops.
sys.modules.setdefault(
    "torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations")
)

# Under pytest-xdist every worker is a process with torch's default of one intra-op thread per
# core: on the 2-core CI machine 2 workers ran 4 busy threads, and OpenMP threads spinning for a
# core made small ops 10x slower (a 1.2 s test took 16 s). Split the cores between the workers.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1:
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // _WORKERS))


@pytest.fixture(autouse=True)
def _guard_global_rng():
    """No test may change the global torch RNG: initlab never touches it."""
    state = torch.random.get_rng_state()
    yield
    assert torch.equal(state, torch.random.get_rng_state()), "the global torch RNG was used"
