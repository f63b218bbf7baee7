"""Gradient checks: correct models pass, planted bugs fail and are named, models stay untouched."""

from __future__ import annotations

import copy
import json
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import initlab
from initlab.gradient_check.check import (
    L2Loss,
    gradcheck,
    gradcheck_function,
    plant_bug,
    with_l2,
)
from initlab.gradient_check.runner import FIRST_ROUND


def _data(n: int = 64, features: int = 2, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, features, generator=g)
    y = (x.norm(dim=1, keepdim=True) > 1.1).float()
    return x, y


def _built(factory, *args, **kwargs):
    """Build a module without touching the global RNG (nn.Linear's default init draws)."""
    with torch.random.fork_rng(devices=[]):
        return factory(*args, **kwargs)


def _mlp(
    activation: str = "relu", dims=(2, 8, 6, 1), seed: int = 0, rng: str = "counter", **kw
) -> initlab.MLP:
    net = _built(initlab.mlp, list(dims), activation=activation, **kw)
    scheme = "xavier_normal" if activation != "relu" else "he_normal"
    initlab.init_model(net, scheme, seed=seed, rng=rng)
    return net


def _train(model: nn.Module, loss_fn, x, y, steps: int = 100, lr: float = 0.3) -> None:
    """Plain full-batch gradient descent (no randomness), to check trained models too."""
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()


class SmallCNN(nn.Sequential):
    def __init__(self) -> None:
        super().__init__(
            nn.Conv2d(1, 4, 3, padding=1),
            nn.BatchNorm2d(4),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(4, 4, 3),
            nn.Tanh(),
            nn.Flatten(),
            nn.Linear(16, 3),
        )


def _images(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(6, 1, 8, 8, generator=g), torch.randint(0, 3, (6,), generator=g)


# ----------------------------------------------------------------- correct models pass


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid", "gelu"])
def test_correct_mlps_pass_at_init_and_after_training(activation):
    x, y = _data()
    net = _mlp(activation)
    loss = with_l2("bce", net, 0.7)
    for stage in ("init", "trained"):
        result = gradcheck(net, loss, x, y)
        assert result.verdict == "correct", (stage, str(result))
        assert result.rel < 1e-5  # below 1e-7 or at round-off level (see noise)
        assert all(t.verdict == "correct" for t in result.tensors)
        fast = gradcheck(net, loss, x, y, mode="fast", seed=1)
        assert fast.verdict == "correct", (stage, str(fast))
        _train(net, loss, x, y)


def test_small_cnn_with_batch_norm_and_l2_passes_in_every_mode():
    x, y = _images()
    net = _built(SmallCNN)
    initlab.init_model(net, seed=0)
    loss = with_l2("cross_entropy", net, 0.5)
    for stage in ("init", "trained"):
        for mode in ("full", "sample", "fast"):
            result = gradcheck(net, loss, x, y, mode=mode)
            assert result.verdict == "correct", (stage, mode, str(result))
        _train(net, loss, x, y, steps=20, lr=0.1)
    assert any("batch norm" in n for n in result.notes)


def test_full_mode_numbers_equal_the_definition():
    # Central differences by hand on a tiny net, against the reported relative difference.
    x, y = _data(16)
    net = _mlp("tanh", dims=(2, 3, 1))
    result = gradcheck(net, "bce", x, y, eps=1e-6, worst=100)
    work = copy.deepcopy(net).double()
    x64, y64 = x.double(), y.double()
    num, ana = [], []
    for p in work.parameters():
        flat = p.data.view(-1)
        for i in range(flat.numel()):
            old = flat[i].item()
            flat[i] = old + 1e-6
            up = F.binary_cross_entropy_with_logits(work(x64), y64).item()
            flat[i] = old - 1e-6
            down = F.binary_cross_entropy_with_logits(work(x64), y64).item()
            flat[i] = old
            num.append((up - down) / 2e-6)
    work.zero_grad()
    F.binary_cross_entropy_with_logits(work(x64), y64).backward()
    ana = torch.cat([p.grad.view(-1) for p in work.parameters()])
    num = torch.tensor(num, dtype=torch.float64)
    expected = float((num - ana).norm() / (num.norm() + ana.norm()))
    assert result.rel == pytest.approx(expected, rel=0.2, abs=1e-10)
    assert result.evaluations == 2 * num.numel() + 1 + 8  # + 8 measure the round-off
    assert sum(t.checked for t in result.tensors) == num.numel()
    reported = {(e.tensor, e.index): e.analytic for e in result.worst}
    assert reported[("linear1.weight", (0, 1))] == pytest.approx(ana[1].item(), rel=1e-12)


def test_vmap_and_loop_give_the_same_numbers():
    x, y = _data()
    net = _mlp("relu")
    batched = gradcheck(net, "bce", x, y)
    looped = gradcheck(net, "bce", x, y, vectorize=False)
    assert batched.vectorized and not looped.vectorized
    # same differences up to round-off (the batched matmul sums in another order)
    for a, b in zip(batched.tensors, looped.tensors, strict=True):
        assert a.rel < 1e-7 and b.rel < 1e-7
        assert a.max_diff < 1e-8 and b.max_diff < 1e-8
    assert batched.evaluations == looped.evaluations


# ----------------------------------------------------------------- planted bugs fail


@pytest.mark.parametrize("mode", ["full", "sample", "fast"])
@pytest.mark.parametrize(
    ("parameter", "factor", "expected_rel"),
    [
        ("linear2.bias", -1.0, 1.0),
        ("linear1.weight", 2.0, 1 / 3),
        ("linear3.weight", 1.1, 0.1 / 2.1),
    ],
)
def test_planted_bug_fails_and_is_named(mode, parameter, factor, expected_rel):
    x, y = _data()
    net = _mlp("tanh")
    result = gradcheck(plant_bug(net, parameter, factor), "bce", x, y, mode=mode, samples=64)
    assert result.verdict == "bug"
    assert not result.passed
    assert result.worst_tensor == parameter
    assert result[parameter].rel == pytest.approx(expected_rel, rel=1e-5)
    others = [t for t in result.tensors if t.name != parameter]
    assert all(t.verdict == "correct" for t in others), str(result)
    assert parameter in result.summary
    if mode != "fast":
        assert result.worst[0].tensor == parameter


def test_planted_bug_in_a_cnn_is_named():
    x, y = _images()
    net = _built(SmallCNN)
    initlab.init_model(net, seed=0)
    result = gradcheck(plant_bug(net, "4.weight", 0.5), "cross_entropy", x, y, mode="fast")
    assert result.verdict == "bug" and result.worst_tensor == "4.weight"


class _LinearFn(torch.autograd.Function):
    """y = x W^T + b with a hand-written backward; ``scale`` multiplies dL/dW (1 = correct)."""

    @staticmethod
    def forward(ctx, x, weight, bias, scale):
        ctx.save_for_backward(x, weight)
        ctx.scale = scale
        return x @ weight.t() + bias

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        return grad @ weight, ctx.scale * grad.t() @ x, grad.sum(0), None


class _HandLinear(nn.Linear):
    scale = 1.0

    def forward(self, x):
        return _LinearFn.apply(x, self.weight, self.bias, self.scale)


def _hand_net(scale: float) -> nn.Module:
    net = _built(
        lambda: nn.Sequential(
            nn.Linear(2, 8), nn.Tanh(), _HandLinear(8, 6), nn.ReLU(), nn.Linear(6, 1)
        )
    )
    initlab.init_model(net, seed=3)
    net[2].scale = scale
    return net


@pytest.mark.parametrize("mode", ["full", "fast"])
def test_custom_autograd_function_in_a_model(mode):
    x, y = _data()
    good = gradcheck(_hand_net(1.0), "bce", x, y, mode=mode)
    assert good.verdict == "correct", str(good)
    assert not good.vectorized  # the Function has no vmap rule: the loop fallback ran
    bad = gradcheck(_hand_net(0.5), "bce", x, y, mode=mode)
    assert bad.verdict == "bug" and bad.worst_tensor == "2.weight"
    assert bad["2.weight"].rel == pytest.approx(0.5 / 1.5, rel=1e-5)


def test_fast_mode_catches_a_bug_in_one_small_tensor_of_a_big_net():
    # 20k parameters; the wrong sign is in a 1-element bias, invisible in the joint directions.
    x, y = _data(32)
    net = _mlp("relu", dims=(2, 100, 150, 30, 1))
    result = gradcheck(plant_bug(net, "linear4.bias", -1), "bce", x, y, mode="fast", seed=5)
    assert result.verdict == "bug" and result.worst_tensor == "linear4.bias"
    # cost, whatever P is: 2 * FIRST_ROUND per correct tensor (7 of them, unanimous first
    # round), 2 * 7 for the failing tensor and for the joint directions (+1 determinism
    # check, +8 to measure the round-off of the loss), and those two again at eps / 10 and
    # eps / 100
    assert FIRST_ROUND == 2
    assert result.evaluations == 2 * 2 * 7 + 2 * 7 * 2 + 1 + 8 + 2 * (2 * 7 * 2)
    assert result["linear4.bias"].rel == pytest.approx(1.0)  # the same at every step
    # the first round decides the correct tensors; the failing one gets all 7 directions
    assert result["linear4.bias"].checked == 7
    assert {t.checked for t in result.tensors if t.name != "linear4.bias"} == {FIRST_ROUND}


class _Skip(nn.Module):
    """``out = a(x); out += b(x)`` (rebinding, as torchvision's ResNet) or
    ``out.add_(b(x))`` (result discarded: the in-place update is what counts)."""

    def __init__(self, rebind: bool) -> None:
        super().__init__()
        self.a, self.b, self.head = nn.Linear(2, 5), nn.Linear(2, 5), nn.Linear(5, 1)
        self.rebind = rebind

    def forward(self, x):
        out = self.a(x)
        if self.rebind:
            out += self.b(x)
        else:
            out.add_(self.b(x))
        return self.head(torch.tanh(out))


@pytest.mark.parametrize("rebind", [True, False])
def test_in_place_updates_under_vmap_keep_the_numbers(rebind):
    # Perturbing b.* batches the right side of the in-place add, not its left side: vmap
    # refuses it. `out += b(x)` is then batched out of place (checked against the loop);
    # `out.add_(b(x))` would lose the update out of place, the check sees it: loop.
    # (Full mode: fast mode batches several tensors per call, so `a` is batched too.)
    x, y = _data(16)
    net = _built(_Skip, rebind)
    result = gradcheck(net, "bce", x, y, mode="full")
    looped = gradcheck(net, "bce", x, y, mode="full", vectorize=False)
    assert result.verdict == looped.verdict == "correct", str(result)
    for a, b in zip(result.tensors, looped.tensors, strict=True):  # round-off apart
        assert a.rel < 1e-7 and b.rel < 1e-7 and a.checked == b.checked
    assert gradcheck(net, "bce", x, y, mode="fast").verdict == "correct"
    note = " ".join(result.notes)
    assert "b.weight" in note and "a.weight" not in note
    assert ("out of place" in note) == rebind and ("in a loop" in note) == (not rebind)
    bad = gradcheck(plant_bug(net, "b.weight", 2.0), "bce", x, y, mode="fast")
    assert bad.verdict == "bug" and bad.worst_tensor == "b.weight"
    assert bad["b.weight"].rel == pytest.approx(1 / 3, rel=1e-5)  # |2 - 1| / (2 + 1)


# ----------------------------------------------------------------- the user's model


def test_model_grads_buffers_dtype_and_mode_are_untouched():
    x, y = _images()
    net = _built(SmallCNN)
    initlab.init_model(net, seed=0)
    F.cross_entropy(net(x), y).backward()  # leaves grads and updates running stats
    state = copy.deepcopy(net.state_dict())
    grads = [p.grad.clone() for p in net.parameters()]
    gradcheck(net, with_l2("cross_entropy", net, 0.1), x, y, mode="sample")
    assert all(torch.equal(state[k], v) for k, v in net.state_dict().items())
    assert all(torch.equal(g, p.grad) for g, p in zip(grads, net.parameters(), strict=True))
    assert net.training and net[1].track_running_stats
    assert all(p.dtype == torch.float32 for p in net.parameters())


def test_eval_mode_batch_norm_is_checked_with_running_statistics():
    x, y = _images()
    net = _built(SmallCNN)
    initlab.init_model(net, seed=0)
    with torch.no_grad():
        net[1].running_mean.fill_(0.3)
        net[1].running_var.fill_(2.0)
    net.eval()
    result = gradcheck(net, "cross_entropy", x, y)
    assert result.verdict == "correct" and not result.notes
    # the reported loss is the eval-mode loss (running statistics used)
    assert result.loss == pytest.approx(
        float(F.cross_entropy(net.double()(x.double()), y).detach())
    )


def test_dropout_in_training_mode_is_refused_unless_switched_off():
    x, y = _data()
    net = _mlp(dims=(2, 8, 1), dropout=0.5)
    with pytest.raises(ValueError, match=r"dropout is active .*dropout1.*dropout='off'"):
        gradcheck(net, "bce", x, y)
    result = gradcheck(net, "bce", x, y, dropout="off")
    assert result.verdict == "correct"
    assert "dropout switched off" in result.notes[0]
    assert net.dropout1.training  # the user's model keeps its mode
    net.eval()
    assert gradcheck(net, "bce", x, y).notes == []


def test_a_random_loss_is_refused():
    class Noisy(nn.Module):
        def forward(self, x):
            return F.dropout(x, 0.5, training=True)

    x, _ = _data()
    net = _built(lambda: nn.Sequential(nn.Linear(2, 4), Noisy()))
    # training mode: found by behaviour before anything is measured, and named
    with pytest.raises(ValueError, match=r"in 1 \(output changes between two calls"):
        gradcheck(net, "mse", x, torch.zeros(64, 4))
    # random in eval mode too: the two evaluations at the same point disagree
    with pytest.raises(ValueError, match="not deterministic"):
        gradcheck(net.eval(), "mse", x, torch.zeros(64, 4))


# ----------------------------------------------------------------- L2 and losses


def test_with_l2_is_the_course_convention_on_weights_only():
    net = _mlp("relu")
    x, y = _data()
    loss = with_l2("bce", net, 0.7)
    assert isinstance(loss, L2Loss)
    assert loss.weight_names == ("linear1.weight", "linear2.weight", "linear3.weight")
    penalty = sum(net.get_parameter(n).pow(2).sum() for n in loss.weight_names)
    expected = F.binary_cross_entropy_with_logits(net(x), y) + 0.7 / (2 * 64) * penalty
    assert float(loss(net(x), y).detach()) == pytest.approx(float(expected.detach()), rel=1e-6)
    # the gradient check sees the penalty: its reported loss includes it
    result = gradcheck(net, loss, x, y)
    assert result.loss == pytest.approx(float(expected.detach()), rel=1e-6)


def test_a_penalty_with_a_wrong_backward_is_caught():
    class HalfGrad(torch.autograd.Function):
        @staticmethod
        def forward(ctx, w):
            ctx.save_for_backward(w)
            return w.pow(2).sum()

        @staticmethod
        def backward(ctx, grad):
            (w,) = ctx.saved_tensors
            return grad * w  # should be 2 w

    net = _mlp("tanh")
    x, y = _data()

    def loss(outputs, targets, params):
        return F.binary_cross_entropy_with_logits(outputs, targets) + HalfGrad.apply(
            params["linear2.weight"]
        )

    result = gradcheck(net, loss, x, y, mode="fast")
    assert result.verdict == "bug" and result.worst_tensor == "linear2.weight"


def test_loss_names_and_non_scalar_losses():
    x, y = _data()
    net = _mlp("tanh")
    assert gradcheck(net, "mse", x, y, mode="fast").verdict == "correct"
    with pytest.raises(ValueError, match="did you mean 'bce'"):
        gradcheck(net, "bec", x, y)
    with pytest.raises(ValueError, match="scalar"):
        gradcheck(net, lambda out, t: out, x, y)


# ----------------------------------------------------------------- functions


def test_gradcheck_function_on_plain_functions():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(3, 4, generator=g, requires_grad=True)
    b = torch.randn(4, 5, generator=g, requires_grad=True)
    result = gradcheck_function(lambda u, v: torch.tanh(u @ v), a, b)
    assert result.verdict == "correct"
    assert [t.name for t in result.tensors] == ["input0", "input1"]
    # two outputs, a non-tensor argument, an input that does not require grad
    c = torch.randn(3, 4, generator=g)
    result = gradcheck_function(lambda u, k, w: (u.sin() * k, (u * w).exp().sum()), a, 2.0, c)
    assert [t.name for t in result.tensors] == ["input0"] and result.verdict == "correct"
    assert a.dtype == torch.float32 and a.grad is None


def test_gradcheck_function_on_custom_functions():
    class Cube(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, wrong):
            ctx.save_for_backward(x)
            ctx.wrong = wrong
            return x**3

        @staticmethod
        def backward(ctx, grad):
            (x,) = ctx.saved_tensors
            return grad * (2 if ctx.wrong else 3) * x**2, None

    x = torch.randn(5, 3, generator=torch.Generator().manual_seed(1))
    for mode in ("full", "sample", "fast"):
        assert gradcheck_function(Cube.apply, x, False, mode=mode).verdict == "correct"
        bad = gradcheck_function(Cube.apply, x, True, mode=mode)
        assert bad.verdict == "bug"
        assert bad.rel == pytest.approx(1 / 5, rel=1e-5)
    with pytest.raises(TypeError, match="floating-point tensor"):
        gradcheck_function(Cube.apply, torch.arange(3), False)


# ----------------------------------------------------------------- options and output


def test_sample_mode_is_seeded():
    x, y = _data()
    net = _mlp(dims=(2, 40, 1))
    one = gradcheck(net, "bce", x, y, mode="sample", samples=5, seed=1, worst=100)
    two = gradcheck(net, "bce", x, y, mode="sample", samples=5, seed=1, worst=100)
    other = gradcheck(net, "bce", x, y, mode="sample", samples=5, seed=2, worst=100)
    entries = [sorted(e.index for e in r.worst if e.tensor == "linear1.weight")
               for r in (one, two, other)]  # fmt: skip
    assert entries[0] == entries[1] != entries[2]
    assert one["linear1.weight"].checked == 5 and one["linear2.bias"].checked == 1


def test_thresholds_and_atol_are_configurable():
    x, y = _data()
    net = _mlp("tanh")
    strict = gradcheck(net, "bce", x, y, thresholds=(1e-14, 1e-12), atol=0.0)
    assert strict.verdict == "bug"
    middle = gradcheck(net, "bce", x, y, thresholds=(1e-14, 1e-3), atol=0.0)
    assert middle.verdict == "look closer" and middle.passed
    assert "look closer" in middle.summary


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "fsat"}, "did you mean 'fast'"),
        ({"eps": 0.0}, "eps must be > 0"),
        ({"eps": -1e-7}, "eps must be > 0"),
        ({"samples": 0}, "samples must be >= 1"),
        ({"directions": 2.5}, "directions must be an integer"),
        ({"thresholds": (1e-3, 1e-7)}, "correct <= bug"),
        ({"thresholds": (1e-7,)}, "two numbers"),
        ({"dropout": "of"}, "did you mean 'off'"),
    ],
)
def test_bad_options_are_named(kwargs, message):
    x, y = _data()
    with pytest.raises(ValueError, match=message):
        gradcheck(_mlp(), "bce", x, y, **kwargs)


def test_bad_models_and_inputs():
    x, y = _data()
    with pytest.raises(TypeError, match=r"torch\.nn\.Module"):
        gradcheck(lambda t: t, "bce", x, y)
    frozen = _mlp().requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        gradcheck(frozen, "bce", x, y)
    with pytest.raises(ValueError, match=r"did you mean 'linear2\.bias'"):
        plant_bug(_mlp(), "linear2.bais")


def test_planted_bug_in_any_layer_type_is_named():
    # batch norm's scale and a transposed convolution (no _conv_forward): the generic path
    x, y = _images()
    bn = gradcheck(plant_bug(_built(SmallCNN), "1.weight", 2.0), "cross_entropy", x, y,
                   mode="fast")  # fmt: skip
    assert bn.verdict == "bug" and bn.worst_tensor == "1.weight"
    transposed = _built(lambda: nn.Sequential(nn.ConvTranspose1d(2, 3, 3), nn.Flatten()))
    t = torch.randn(4, 2, 5, generator=torch.Generator().manual_seed(0))
    clean = gradcheck(transposed, "mse", t, torch.zeros(4, 21))
    buggy = gradcheck(plant_bug(transposed, "0.weight"), "mse", t, torch.zeros(4, 21))
    assert clean.verdict == "correct" and buggy.verdict == "bug"
    assert [r.name for r in buggy.tensors if r.verdict == "bug"] == ["0.weight"]


def test_str_and_to_dict():
    x, y = _data()
    result = gradcheck(plant_bug(_mlp("tanh"), "linear2.bias", -1), "bce", x, y)
    text = str(result)
    assert "linear2.bias" in text and "verdict: bug" in text and "worst entries" in text
    data = json.loads(json.dumps(result.to_dict()))
    assert data["verdict"] == "bug" and data["worst_tensor"] == "linear2.bias"
    assert data["tensors"][3]["name"] == "linear2.bias" and data["passed"] is False
    assert data["worst"][0]["tensor"] == "linear2.bias"


def test_public_names():
    import initlab.gradient_check.check as check

    for name in ("gradcheck", "gradcheck_function", "with_l2", "GradCheck", "plant_bug"):
        assert name in initlab.__all__
        # the same object from the package root and from the old module path
        assert getattr(initlab, name) is getattr(check, name)


def test_every_gradient_check_module_is_small():
    import pathlib

    import initlab.gradient_check as package

    for path in pathlib.Path(package.__file__).parent.glob("*.py"):
        assert len(path.read_text().splitlines()) <= 500, path.name


def test_exact_kinks_do_not_fail_a_correct_relu_net():
    # He init, zero biases: some examples are all zeros after layer 1, so linear2's
    # pre-activations are exactly 0 there and its bias sits on ReLU kinks.
    # Full mode compares those entries with the range of the one-sided derivatives; fast
    # mode leaves them out of the directions (linear2.bias has no other entries: one-sided
    # directions on the side the backward pass takes).
    x, y = _data()
    net = _mlp("relu", rng="torch")  # these exact values put examples on the kinks
    for mode in ("full", "fast"):
        result = gradcheck(net, "bce", x, y, mode=mode)
        assert result.verdict == "correct", str(result)
        if mode == "full":
            assert result["linear2.bias"].kinks > 0
        else:
            assert result["linear2.bias"].left_out == 6 and result["linear2.bias"].checked > 0
        assert any("kink" in note for note in result.notes)
        buggy = gradcheck(plant_bug(net, "linear2.bias", -1), "bce", x, y, mode=mode)
        assert buggy.verdict == "bug" and buggy.worst_tensor == "linear2.bias"


def test_a_large_step_shows_truncation_error():
    x, y = _data()
    net = _mlp("tanh")
    assert gradcheck(net, "bce", x, y, eps=1e-7).verdict == "correct"
    # at eps 1e-3 truncation error shows in the difference, and is gone at a 10x smaller step
    # (the rows show the numbers at the step that decided, 1e-4)
    large = gradcheck(net, "bce", x, y, eps=1e-3)
    assert large.rel < 1e-7 and large.overall.step == pytest.approx(1e-4)
    assert large.verdict == "correct" and "measured at a smaller step" in large.summary
    assert any("gone at the smaller step" in n for n in large.notes)
    # at eps 0.2 it shrinks with the step but not below 1e-7: look closer, with the reason
    huge = gradcheck(net, "bce", x, y, eps=0.2)
    assert huge.verdict == "look closer" and "shrinks as the step shrinks" in huge.summary


def test_a_transformer_layer_passes_without_warnings():
    # attention has no vmap batching rule on CPU: vmap's fallback warning is not shown
    enc = _built(nn.TransformerEncoderLayer, 8, 2, 16, dropout=0.0, batch_first=True)
    x = torch.randn(3, 5, 8, generator=torch.Generator().manual_seed(0))
    result = gradcheck(enc, lambda out, _: out.pow(2).mean(), x, None, mode="sample", samples=4)
    assert result.verdict == "correct", str(result)


# ----------------------------------------------------------------- issue 11/12 hardening


def test_a_kink_crossed_near_the_point_is_not_a_bug():
    # relu(w - c) with c just 5e-8 above w: the step h = 1e-7 crosses the kink on the plus
    # side only; the derivative at w is 0 and the central difference at h says 0.25
    w = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    c = w + 5e-8
    check = gradcheck_function(lambda v: torch.relu(v - c).sum(), w)
    assert check.verdict == "correct", str(check)


def test_nan_and_inf_never_pass():
    x, y = _data()
    net = _mlp()
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(1e14)  # diverged: the step 1e-7 vanishes in the weights' rounding
    for mode in ("full", "fast"):
        for model in (net, plant_bug(net, "linear2.bias", -1)):
            check = gradcheck(model, "bce", x, y, mode=mode)
            assert check.verdict == "not finite" and not check.passed, mode
            assert any("lost in the rounding" in n for n in check.notes)
    tiny = gradcheck(_mlp(), "bce", x, y, eps=1e-320)
    assert tiny.verdict == "not finite" and "not finite" in tiny.summary
    with pytest.raises(ValueError, match="the loss is not finite"):
        gradcheck_function(lambda v: (v * float("inf")).sum(), torch.ones(2))
    # a finite loss with an infinite gradient: sqrt at 0
    inf = gradcheck_function(lambda v: v.sqrt().sum(), torch.tensor([0.0, 1.0]))
    assert inf.verdict == "not finite" and not inf.passed


def test_clear_errors_for_missing_targets_empty_layers_and_seeds():
    x = torch.randn(5, 4, generator=torch.Generator().manual_seed(0))
    linear = _built(nn.Linear, 4, 1)
    with pytest.raises(ValueError, match="loss_fn='bce' needs targets; got None"):
        gradcheck(linear, "bce", x, None)
    with pytest.raises(ValueError, match=r"targets of shape \(3,\) do not match"):
        gradcheck(linear, "mse", x, torch.zeros(3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Initializing zero-element tensors is a no-op"
        empty = _built(nn.Linear, 4, 0)
        empty_inside = _built(lambda: nn.Sequential(nn.Linear(4, 0), nn.Linear(0, 1)))
    with pytest.raises(ValueError, match="have size 0"):
        gradcheck(empty, "mse", x, torch.zeros(5, 0))
    check = gradcheck(empty_inside, "mse", x, torch.zeros(5, 1))
    assert check.verdict == "correct" and any("size 0" in n for n in check.notes)
    with pytest.raises(ValueError, match=r"seed must be an integer in \[0, 2\*\*63\)"):
        gradcheck(linear, "mse", x, torch.zeros(5, 1), seed=2**64)


def test_memory_is_estimated_before_anything_large_is_allocated():
    x, y = _data()
    with pytest.raises(ValueError, match=r"with 1,000,000,000,000 directions needs about"):
        gradcheck(_mlp(), "bce", x, y, mode="fast", directions=10**12)
