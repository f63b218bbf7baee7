import pytest
import torch

import initlab
from initlab.bench.nets import StackedMLP, StackedWorkspace, _stacked_loss


def _stacked(activation, output, dims=(3, 6, 4, 2), members=3, dropout=0.0):
    models = []
    for seed in range(members):
        m = initlab.mlp(dims, activation, output, dropout).double()
        initlab.init_model(m, "xavier_normal", bias="normal", seed=seed)
        models.append(m)
    return StackedMLP.from_models(models), models


def _target(output, n, n_out, generator):
    if output == "softmax":
        labels = torch.randint(0, n_out, (n,), generator=generator)
        return torch.nn.functional.one_hot(labels, n_out).double()
    return torch.rand(n, n_out, generator=generator, dtype=torch.float64).round()


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "tanh", "sigmoid", "linear"])
@pytest.mark.parametrize("output", ["sigmoid", "softmax", "linear"])
def test_hand_written_backward_matches_autograd(activation, output):
    g = torch.Generator().manual_seed(0)
    stacked, _ = _stacked(activation, output)
    x = torch.randn(17, 3, generator=g, dtype=torch.float64)
    target = _target(output, 17, 2, g)
    # autograd on the differentiable forward
    logits = stacked(x)
    loss = _stacked_loss(output, logits.transpose(1, 2), target.T.unsqueeze(0))
    auto = torch.autograd.grad(loss.sum(), list(stacked.weights))
    space = StackedWorkspace(stacked, 17)
    space.set_inputs(x)
    with torch.no_grad():
        space.forward()
        grads = [torch.zeros_like(w) for w in stacked.weights]
        hand_loss = space.backward(target.T.unsqueeze(0), grads, with_loss=True)
    assert torch.allclose(hand_loss, loss.detach(), rtol=1e-12, atol=1e-14)
    for a, h in zip(auto, grads, strict=True):
        assert torch.allclose(a, h, rtol=1e-10, atol=1e-13)


def test_members_equal_their_standalone_mlps():
    stacked, models = _stacked("relu", "sigmoid")
    x = torch.randn(9, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    out = stacked(x)
    for b, m in enumerate(models):
        assert torch.allclose(out[b], m(x), rtol=0, atol=1e-14)
        back = stacked.member(b)
        assert torch.equal(back.linear2.weight, m.linear2.weight)
        assert torch.equal(back.linear3.bias, m.linear3.bias)


def test_dropout_backward_uses_the_mask_exactly():
    stacked, _ = _stacked("tanh", "sigmoid", members=2, dropout=0.5)
    g = torch.Generator().manual_seed(3)
    x = torch.randn(11, 3, generator=g, dtype=torch.float64)
    target = _target("sigmoid", 11, 2, g)
    space = StackedWorkspace(stacked, 11)
    space.set_inputs(x)
    gens = [torch.Generator().manual_seed(s) for s in (5, 6)]
    with torch.no_grad():
        space.forward(gens)
        grads = [torch.zeros_like(w) for w in stacked.weights]
        space.backward(target.T.unsqueeze(0), grads)
    masks = [space.masks[1].clone(), space.masks[2].clone()]
    assert set(masks[0].unique().tolist()) <= {0.0, 2.0}  # inverted dropout: 0 or 1/keep
    # autograd with the same masks applied by hand
    a = x.T.unsqueeze(0).expand(2, 3, 11)
    for i, w in enumerate(stacked.weights):
        z = torch.baddbmm(w[:, :, -1:], w[:, :, :-1], a)
        a = z if i == 2 else torch.tanh(z) * masks[i]
    loss = _stacked_loss("sigmoid", a, target.T.unsqueeze(0))
    auto = torch.autograd.grad(loss.sum(), list(stacked.weights))
    for au, h in zip(auto, grads, strict=True):
        assert torch.allclose(au, h, rtol=1e-10, atol=1e-13)


def test_from_models_rejects_mismatched_models():
    with pytest.raises(ValueError, match=r"differs.*got \(\(2, 4, 1\).*has \(\(2, 3, 1\)"):
        StackedMLP.from_models([initlab.mlp([2, 3, 1]), initlab.mlp([2, 4, 1])])
    with pytest.raises(ValueError, match=r"one entry per member \(2\); got 1 labels and 2 seeds"):
        initlab.train_stacked(StackedMLP([2, 3, 1], 2), "circles", labels=["a"], seeds=[0, 1])
    with pytest.raises(ValueError, match="at least one"):
        StackedMLP.from_models([])
    assert not StackedMLP([2, 3, 1], 2, "gelu").fast


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "tanh", "sigmoid", "linear"])
@pytest.mark.parametrize("output", ["sigmoid", "softmax", "linear"])
@pytest.mark.parametrize("dims", [(3, 6, 4, 2), (3, 2)])
def test_fused_plan_equals_forward_backward_step(activation, output, dims):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(17, 3, generator=g, dtype=torch.float64)
    target = _target(output, 17, 2, g).T.unsqueeze(0)
    stepped = []
    for shared in (None, False, True):  # None: forward() + backward(); else the fused plan
        stacked, _ = _stacked(activation, output, dims=dims)
        space = StackedWorkspace(stacked, 17)
        space.set_inputs(x)
        with torch.no_grad():
            for _ in range(3):
                if shared is None:
                    space.forward()
                    space.backward(target, None, 0.1)
                else:
                    for call in space.fused_gd_plan(target, 0.1, shared_input=shared):
                        call()
        stepped.append([w.detach().clone() for w in stacked.weights])
    for variant in stepped[1:]:
        for a, b in zip(stepped[0], variant, strict=True):
            assert torch.allclose(a, b, rtol=1e-12, atol=1e-14)
