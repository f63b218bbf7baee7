"""The doctor on real architectures (issue 11 items 6-9, issue 12 doctor items): no unhealthy
verdict on any zoo model at its framework default, the classic failures still named on the same
architectures, dead units counted per feature, one activation discovery for fix and init_model,
and every calling convention a user model has."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

import initlab
from initlab.initializers.activations import following_activations
from zoo import ZOO


@pytest.fixture(autouse=True)
def _flush_denormals():
    torch.set_flush_denormal(True)
    yield
    torch.set_flush_denormal(False)


def _set_weights(model: nn.Module, mode: str) -> None:
    """Every >= 2-D parameter zero, N(0, 1) or N(0, 1e-4) (the classic failures)."""
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() < 2:
                continue
            if mode == "zeros":
                p.zero_()
            else:
                scale = 1.0 if mode == "unit" else 1e-4
                p.copy_(scale * torch.randn(p.shape, generator=generator))


def _mlp() -> tuple[nn.Module, torch.Tensor]:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = nn.Sequential(*[m for _ in range(6) for m in (nn.Linear(64, 64), nn.ReLU())])
        model.append(nn.Linear(64, 10))
    return model, torch.randn(32, 64, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("name", list(ZOO))
def test_no_unhealthy_verdict_at_the_framework_default(name):
    z = ZOO[name](seed=0)
    d = initlab.diagnose(z.model, z.example)
    assert d.healthy, "\n".join(str(v) for v in d.verdicts)


CLASSIC = [
    "resnet_basic",
    "mobilenet_v3",
    "efficientnet",
    "convnext",
    "vit",
    "gpt2",
    "lstm",
    "gru",
    "mlp",
]
EXPECTED = {"zeros": {"symmetric"}, "unit": {"exploding", "saturated"}, "tiny": {"vanishing"}}


@pytest.mark.parametrize("mode", list(EXPECTED))
@pytest.mark.parametrize("name", CLASSIC)
def test_classic_failures_are_still_named(name, mode):
    if name == "mlp":
        model, example = _mlp()
    else:
        z = ZOO[name](seed=0)
        model, example = z.model, z.example
    _set_weights(model, mode)
    d = initlab.diagnose(model, example)
    assert d.primary.kind in EXPECTED[mode], d.kinds
    for v in d.verdicts:  # every unhealthy verdict says what to change
        assert "initlab.fix" in v.message or "init" in v.message.split(":")[-1], str(v)


def test_zero_output_layer_is_not_symmetric_and_the_message_is_consistent():
    z = ZOO["vit"](seed=0)
    d = initlab.diagnose(z.model, z.example)
    assert d.healthy
    assert "heads.head is zero-initialised" in d.primary.message
    assert "x0," not in d.primary.message  # the old self-contradicting "falls ... to 0: x0"


def test_layer_scale_and_growing_residual_stream_are_not_findings():
    # ConvNeXt's gamma = 1e-6 makes its MLP's gradients 1e-6 of the stream's; a BN ResNet's
    # stream grows with depth. Both are by design: each branch is judged on its own input.
    for name in ("convnext", "resnet_bottleneck"):
        z = ZOO[name](seed=0)
        d = initlab.diagnose(z.model, z.example)
        assert d.healthy, (name, d.kinds)
        chains = {r.chain for r in d.weighted}
        assert len(chains) > len(d.weighted) // 2  # norms and residual adds end chains


def test_plain_mlp_is_one_chain_and_depth_still_counts():
    model, x = _mlp()
    initlab.init_model(model, "normal:std=0.02", seed=0)
    d = initlab.diagnose(model, x)
    assert len({r.chain for r in d.weighted}) == 1
    assert "vanishing" in d.kinds  # 0.16 per layer over 7 layers


def test_fix_on_a_healthy_model_changes_nothing():
    z = ZOO["gpt2"](seed=0)
    before = {k: v.clone() for k, v in z.model.state_dict().items()}
    result = initlab.fix(z.model, z.example)
    assert result.init is None and not result.success and result.rules == {}
    assert "nothing to fix" in str(result)
    for k, v in z.model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_fix_success_only_when_what_it_applied_removed_the_finding():
    model, x = _mlp()
    initlab.init_model(model, "normal:std=0.02", seed=0)
    result = initlab.fix(model, x)
    assert result.success and result.after.healthy
    assert [v.kind for v in result.resolved] == [
        v.kind for v in result.before.verdicts if v.kind != "healthy"
    ]
    assert "fixed: vanishing" in str(result)


# ---------------------------------------------------------------------- item 7: dead per feature
class _TokenReLU(nn.Module):
    """(batch, tokens, 32) features after a linear layer, 24 of the 32 features dead."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 32)
        self.act = nn.ReLU()
        self.out = nn.Linear(32, 4)
        with torch.no_grad():
            self.fc.weight.copy_(torch.randn(32, 8, generator=torch.Generator().manual_seed(0)))
            self.fc.bias.zero_()
            self.fc.bias[8:] = -1e3  # features 8..31 never fire

    def forward(self, x):
        return self.out(self.act(self.fc(x)))


def test_dead_units_are_counted_per_feature_for_token_outputs():
    with torch.random.fork_rng(devices=[]):
        model = _TokenReLU()
    x = torch.randn(4, 20, 8, generator=torch.Generator().manual_seed(0))
    d = initlab.diagnose(model, x)
    row = next(r for r in d.layers if r.name == "act")
    assert (row.dead, row.units) == (24, 32)  # not 0 of 20 tokens
    assert "dead" in d.kinds


def test_conv_dead_units_stay_channels():
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Conv1d(3, 16, 3), nn.ReLU(), nn.Flatten(), nn.LazyLinear(2))
        x = torch.randn(4, 3, 40, generator=torch.Generator().manual_seed(0))
        model(x)
        with torch.no_grad():
            model[0].bias[4:] = -1e3
    row = next(r for r in initlab.diagnose(model, x).layers if r.name == "1")
    assert (row.dead, row.units) == (12, 16)  # channels (dim 1), not the 38 positions


def test_small_pooled_relu_bottleneck_is_not_dead_by_chance():
    # EfficientNet's squeeze-excite ReLU has 8 units on a pooled input: 6 of 8 "dead" happens
    # by chance with any symmetric init.
    z = ZOO["efficientnet"](seed=0)
    d = initlab.diagnose(z.model, z.example)
    assert "dead" not in d.kinds


# ---------------------------------------------------------------------- item 8: one discovery
def test_fix_and_init_model_agree_on_the_activation_after_each_layer():
    z = ZOO["resnet_basic"](seed=0)
    _set_weights(z.model, "tiny")  # unhealthy: recommendations follow the traced data flow
    d = initlab.diagnose(z.model, z.example)
    assert not d.healthy
    report = initlab.init_model(copy.deepcopy(z.model), "he_normal", seed=0, example=z.example)
    for rec in d.recommendations:
        assert rec.activation == report[rec.parameter].activation, rec.parameter
    rec = next(r for r in d.recommendations if r.parameter == "layer2.0.conv2.weight")
    assert rec.activation == "relu"  # was lecun (call order) in fix, relu in init_model
    found = following_activations(z.model)  # healthy models: the same function, no example
    assert found["layer2.0.conv2"].activation[0] == "relu"


# ---------------------------------------------------------------------- item 9: conventions
def test_dict_inputs_and_model_outputs():
    z = ZOO["bert"](seed=0)
    d = initlab.diagnose(z.model, z.example)  # model(**batch), a MaskedLMOutput
    assert d.layers and d.loss is not None
    ids = z.example["input_ids"]
    labelled = initlab.diagnose(z.model, {**z.example, "labels": ids})
    assert labelled.loss == pytest.approx(math.log(128), rel=0.1)  # the model's own loss
    with_targets = initlab.diagnose(z.model, z.example, ids)  # (batch, tokens, vocab) logits
    assert with_targets.loss == pytest.approx(labelled.loss, rel=1e-4)


class _Optional(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x, mask=None, scale=1.0):
        out = self.fc(x) * scale
        return {"hidden": out, "logits": out if mask is None else out * mask}


def test_tuple_with_none_and_dict_output():
    x = torch.randn(5, 4, generator=torch.Generator().manual_seed(0))
    with torch.random.fork_rng(devices=[]):
        model = _Optional()
    d = initlab.diagnose(model, (x, None, 2.0))
    assert d.weighted[0].shape == (5, 3)


def test_errors_say_what_was_given():
    with torch.random.fork_rng(devices=[]):
        model = _Optional()
    with pytest.raises(TypeError, match=r"got tuple \(str, int\)"):
        initlab.diagnose(model, ("a", 1))
    with pytest.raises(TypeError, match=r"got set"):
        initlab.diagnose(model, {1, 2})


class _Dropping(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(16, 16)
        self.bn = nn.BatchNorm1d(16)

    def forward(self, x):
        y = torch.nn.functional.dropout(self.bn(self.fc(x)), 0.5, training=True)
        q = y[:, None, None, :]
        return torch.nn.functional.scaled_dot_product_attention(q, q, q, dropout_p=0.5)[:, 0, 0]


def test_every_dropout_is_off_and_batch_norm_stays_in_training_mode():
    with torch.random.fork_rng(devices=[]):
        model = _Dropping()
    x = torch.randn(32, 16, generator=torch.Generator().manual_seed(0))
    a = initlab.diagnose(model, x, seed=0)
    b = initlab.diagnose(model, x, seed=0)
    assert a.loss == b.loss  # deterministic: functional and attention dropout are off
    bn = next(r for r in a.layers if r.name == "bn")
    assert abs(bn.mean) < 1e-6 and bn.std == pytest.approx(1, rel=1e-3)  # batch statistics
    assert model.bn.num_batches_tracked.item() == 0  # buffers restored


# ---------------------------------------------------------------------- issue 12
def test_nan_weights_are_non_finite_not_healthy():
    with torch.random.fork_rng(devices=[]):
        model = nn.Sequential(nn.Linear(4, 3))
    with torch.no_grad():
        model[0].weight[0, 0] = float("nan")
    d = initlab.diagnose(model, torch.randn(8, 4, generator=torch.Generator().manual_seed(0)))
    assert d.primary.kind == "non-finite" and not d.healthy
    assert "layer 1 (0)" in d.primary.message


def test_nan_loss_with_finite_outputs_is_non_finite():
    with torch.random.fork_rng(devices=[]):
        model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 1))
    x = torch.randn(8, 4, generator=torch.Generator().manual_seed(0))
    d = initlab.diagnose(model, x, torch.zeros(8, 1), loss_fn=lambda y, t: (y - t).sum() / 0.0)
    assert d.primary.kind == "non-finite"


def test_nan_input_is_a_clear_error():
    with torch.random.fork_rng(devices=[]):
        model = nn.Sequential(nn.Linear(4, 3))
    x = torch.randn(8, 4, generator=torch.Generator().manual_seed(0))
    x[2, 1] = float("nan")
    with pytest.raises(ValueError, match="1 non-finite values"):
        initlab.diagnose(model, x)


def test_zero_width_layer_has_no_division_by_zero():
    with torch.random.fork_rng(devices=[]), pytest.warns(UserWarning, match="zero-element"):
        model = nn.Sequential(nn.Linear(4, 0))
    d = initlab.diagnose(model, torch.randn(3, 4, generator=torch.Generator().manual_seed(0)))
    assert d.recommendations[0].current_rms is None


@pytest.mark.parametrize("error", [AttributeError, KeyError])
def test_forward_attribute_and_key_errors_are_wrapped(error):
    class Broken(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(2, 2)

        def forward(self, x):
            raise error("inside forward")

    with torch.random.fork_rng(devices=[]):
        model = Broken()
    with pytest.raises(ValueError, match=rf"rejected inputs of shape \(2, 2\): {error.__name__}"):
        initlab.diagnose(model, torch.zeros(2, 2))


class _DropPathResidual(nn.Module):
    def __init__(self, drop: nn.Module) -> None:
        super().__init__()
        self.fc = nn.Linear(16, 16)
        self.drop = drop

    def forward(self, x):
        return x + self.drop(self.fc(x))


@pytest.mark.parametrize("library", ["torchvision", "timm"])
def test_stochastic_depth_is_off_like_dropout(library):
    # torchvision's StochasticDepth (EfficientNet, ConvNeXt, Swin default to p = 0.1 to 0.2)
    # and timm's DropPath drop whole residual branches per sample in training mode: the
    # verdicts changed with the global RNG state.
    if library == "torchvision":
        from torchvision.ops import StochasticDepth

        drop = StochasticDepth(0.5, "row")
    else:
        from timm.layers import DropPath

        drop = DropPath(0.5)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = _DropPathResidual(drop)
    x = torch.randn(64, 16, generator=torch.Generator().manual_seed(0))
    losses = []
    for seed in (0, 1, 2):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            losses.append(initlab.diagnose(model, x).loss)
    plain = copy.deepcopy(model)
    plain.drop = nn.Identity()
    assert losses == [initlab.diagnose(plain, x).loss] * 3
    assert model.drop.training  # switched back
