import pytest
import torch


@pytest.fixture(autouse=True)
def _guard_global_rng():
    """No test may change the global torch RNG: initlab never touches it."""
    state = torch.random.get_rng_state()
    yield
    assert torch.equal(state, torch.random.get_rng_state()), "the global torch RNG was used"
