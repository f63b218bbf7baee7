import math

import pytest
import torch

from initlab.bench import clip


def _grads():
    return [torch.tensor([[3.0, 0.0], [0.0, 0.0]], dtype=torch.float64),
            torch.tensor([4.0, 0.0], dtype=torch.float64)]  # fmt: skip


def test_clip_by_norm_scales_by_threshold_over_norm():
    grads = _grads()
    norm = clip.clip_by_norm_(grads, 2.5)
    assert float(norm) == 5.0
    assert torch.equal(grads[0][0], torch.tensor([1.5, 0.0], dtype=torch.float64))
    assert torch.equal(grads[1], torch.tensor([2.0, 0.0], dtype=torch.float64))
    assert math.isclose(float(clip.global_norm(grads)), 2.5, rel_tol=1e-15)


def test_clip_by_norm_leaves_small_gradients_alone():
    grads = _grads()
    clip.clip_by_norm_(grads, 5.0)
    assert torch.equal(grads[0], _grads()[0]) and torch.equal(grads[1], _grads()[1])


def test_clip_by_norm_batched_members_are_independent():
    big = torch.stack([torch.full((2, 2), 3.0), torch.full((2, 2), 0.1)])
    norms = clip.clip_by_norm_([big], 1.0, batched=True)
    assert torch.allclose(norms, torch.tensor([6.0, 0.2]))
    assert torch.allclose(big[0], torch.full((2, 2), 0.5))
    assert torch.equal(big[1], torch.full((2, 2), 0.1))


def test_clip_by_value():
    g = torch.tensor([-3.0, -0.5, 0.2, 7.0])
    clip.clip_by_value_([g], 1.0)
    assert torch.equal(g, torch.tensor([-1.0, -0.5, 0.2, 1.0]))


def test_clip_adaptive_bounds_the_ratio_per_tensor():
    w = [torch.full((2, 2), 1.0), torch.zeros(2)]
    g = [torch.full((2, 2), 1.0), torch.full((2,), 1.0)]
    clip.clip_adaptive_(w, g, 0.1, eps=1e-3)
    assert math.isclose(float(g[0].norm()), 0.1 * 2.0, rel_tol=1e-6)  # ||w|| = 2
    assert math.isclose(float(g[1].norm()), 0.1 * 1e-3, rel_tol=1e-6)  # eps floor


@pytest.mark.parametrize("value", [0.0, -1.0, float("nan")])
def test_bad_thresholds(value):
    with pytest.raises(ValueError, match="clip_norm"):
        clip.clip_by_norm_(_grads(), value)
