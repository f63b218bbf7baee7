"""The test zoo itself: every model builds, runs forward and backward, and is seeded."""

from __future__ import annotations

import pytest
import torch

from zoo import ZOO, call, logits


@pytest.mark.parametrize("name", sorted(ZOO))
def test_zoo_model_runs_forward_and_backward(name):
    entry = ZOO[name](seed=0)
    with torch.random.fork_rng(devices=[]):  # dropout in train mode draws from the global RNG
        out = logits(call(entry.model, entry.example))
    assert torch.isfinite(out).all()
    out.float().sum().backward()  # not a square: ViT's zero head would give zero gradients
    grads = [p.grad for p in entry.model.parameters() if p.requires_grad]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("name", ["resnet_basic", "vit", "gpt2"])
def test_zoo_is_seeded_and_leaves_the_global_rng_alone(name):
    state = torch.random.get_rng_state()
    a, b = ZOO[name](seed=3), ZOO[name](seed=3)
    assert torch.equal(torch.random.get_rng_state(), state)
    for (na, pa), (nb, pb) in zip(
        a.model.named_parameters(), b.model.named_parameters(), strict=True
    ):
        assert na == nb and torch.equal(pa, pb)
