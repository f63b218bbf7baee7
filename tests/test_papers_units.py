"""Units of the paper reproductions: the xiao2018 probe's exact Jacobian, its CNN builder, the
skipinit2020 batch-norm net's head input, and the shared training helpers."""

from __future__ import annotations

import math

import torch

from initlab.bench.results import Run
from initlab.papers import xiao2018
from initlab.papers._nets import build as build_residual
from initlab.papers._training import final_loss


def _autograd_jacobian(kind: str, channels: int, size: int, depth: int) -> torch.Tensor:
    layers = xiao2018.layer_params(kind, channels)
    params = [next(layers) for _ in range(depth)]

    def net(x: torch.Tensor) -> torch.Tensor:
        for weight, bias in params:
            x = torch.tanh(xiao2018._circular_conv(x, weight, bias))
        return x

    x0 = xiao2018.probe_input(channels, size)
    n = channels * size * size
    return torch.autograd.functional.jacobian(net, x0).reshape(n, n)


def test_probe_jacobian_matches_autograd():
    # the forward-mode basis tangents give d x_L / d x_0 exactly: same singular values
    for kind in xiao2018.KINDS:
        got = xiao2018.probe(kind, 2, 3, [1, 3])
        for i, depth in enumerate([1, 3]):
            s = torch.linalg.svdvals(_autograd_jacobian(kind, 2, 3, depth))
            assert math.isclose(got["s_max"][i], float(s[0]), rel_tol=1e-10)
            assert math.isclose(got["cond"][i], float(s[0] / s.median()), rel_tol=1e-10)


def test_probe_signal_and_isometry_at_small_q_star():
    # one delta-orthogonal layer at q* = 0.009: the Jacobian is diag(1 - x^2) times an
    # orthogonal map times sqrt(sigma_w^2), so every singular value is within 1 - 2 max x^2
    got = xiao2018.probe("delta-orthogonal", 4, 4, [1, 50])
    sw = math.sqrt(xiao2018._tanh_critical().sigma_w2)
    assert got["s_max"][0] <= sw * (1 + 1e-12)
    assert got["cond"][0] < 1.2
    assert 0.5 < got["norm"][1] < 2


def test_cnn_builder_same_head_same_variance():
    delta = xiao2018.build(4, 3, "delta-orthogonal")
    gauss = xiao2018.build(4, 3, "Gaussian")
    assert torch.equal(delta.head.weight, gauss.head.weight)  # only the kernels differ
    sw2 = xiao2018._tanh_critical().sigma_w2
    for conv in delta.convs:
        w = conv.weight.detach().double()
        # delta-orthogonal: only the centre tap, an orthogonal (out, in) matrix times sqrt(sw2)
        assert float(w[:, :, [0, 0, 2, 2], [0, 2, 0, 2]].abs().max()) == 0.0
        centre = w[:, :, 1, 1]
        eye = torch.eye(centre.shape[1], dtype=torch.float64) * sw2
        torch.testing.assert_close(centre.T @ centre, eye, atol=1e-6, rtol=0)
    x = torch.zeros(2, 64)
    assert delta(x).shape == (2, 10)


def test_batch_norm_residual_head_sees_unit_variance_at_any_depth():
    # the BN residual stream's variance grows like the depth; the net ends in relu(bn(.)),
    # so its logits (train mode) stay O(1) instead of growing like sqrt(depth)
    x = torch.randn(256, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    stds = []
    for depth in (2, 64):
        model = build_residual(16, 16, depth, 10, norm=True)
        with torch.no_grad():
            stds.append(float(model(x).std()))
    assert stds[1] < 2 * stds[0]


def test_final_loss_of_a_diverged_run_is_infinite():
    finished = Run("s", 0, "finished", 10, 0.25, 1.0, 1.0, 0.1, None, None, None, {})
    diverged = Run("s", 0, "diverged", 10, None, None, None, 0.1, None, 3, "fc", {})
    assert final_loss(finished) == 0.25
    assert final_loss(diverged) == math.inf
