"""init_model and build on real architectures (tests/zoo.py): issue 11 items 1-5 and 8."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from initlab import build, init_model
from initlab.initializers.activations import discover
from zoo import ZOO, call, logits


def _zoo(name, **kwargs):
    return ZOO[name](seed=0, **kwargs)


def _make(factory):
    # constructors draw PyTorch's default init from the global RNG (and warn on empty tensors)
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return factory()


def _forward(model, example):
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        return logits(call(model, example))


@pytest.mark.parametrize("name", sorted(ZOO))
def test_every_zoo_model_initializes_with_its_data_flow(name):
    zoo = _zoo(name)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no guessing with an example
        report = init_model(zoo.model, seed=0, example=zoo.example)
    assert report.activations_found_by in ("trace", "sequential")
    weights = [r for r in report.rows if r.action == "weight"]
    assert weights and all(r.target_std is not None and r.target_std > 0 for r in weights)
    assert all(r.activation_source != "order" for r in weights)
    out = _forward(zoo.model.eval(), zoo.example)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize(
    ("name", "layer", "activation", "source"),
    [
        ("efficientnet", "2.conv_dw.weight", "silu", "trace"),  # Identity before SiLU
        ("efficientnet", "2.conv_pw.weight", "linear", "none"),
        ("t5", "encoder.block.0.layer.1.DenseReluDense.wi.weight", "relu", "trace"),
        ("t5", "encoder.block.0.layer.1.DenseReluDense.wo.weight", "linear", "none"),
        ("llama", "model.layers.0.mlp.gate_proj.weight", "silu", "matched"),
        ("llama", "model.layers.0.mlp.up_proj.weight", "linear", "none"),
        ("llama", "model.layers.0.mlp.down_proj.weight", "linear", "none"),
        ("gpt2", "transformer.h.0.mlp.c_fc.weight", "gelu", "matched"),
        ("bert", "bert.encoder.layer.0.intermediate.dense.weight", "gelu", "matched"),
        ("resnet_bottleneck", "layer2.0.conv2.weight", "relu", "trace"),
        ("mobilenet_v3", "1.block.6.fc2.weight", "sigmoid", "trace"),
    ],
)  # fmt: skip
def test_activation_after_each_layer_on_real_models(name, layer, activation, source):
    zoo = _zoo(name)
    row = init_model(zoo.model, seed=0, example=zoo.example)[layer]
    assert (row.activation, row.activation_source) == (activation, source)


def test_measured_hugging_face_activation_gain():
    zoo = _zoo("gpt2")
    row = init_model(zoo.model, seed=0, example=zoo.example)["transformer.h.0.mlp.c_fc.weight"]
    # NewGELUActivation is GELU's tanh approximation: 1 / sqrt(E[gelu(z)^2]) = 1.534
    assert row.gain == pytest.approx(1.534, abs=2e-3)


@pytest.mark.parametrize("name", ["llama", "gpt2", "t5", "bert"])
def test_without_an_example_hugging_face_models_are_traced_on_an_input_made_from_the_config(
    name,
):
    zoo = _zoo(name)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing is guessed, so nothing warns
        report = init_model(zoo.model, seed=0)
    assert (report.activations_found_by, report.example_source) == (
        "trace",
        "hugging face config",
    )
    given = init_model(zoo.model, seed=0, example=zoo.example)
    assert [(r.parameter, r.activation, r.target_std) for r in report.rows] == [
        (r.parameter, r.activation, r.target_std) for r in given.rows
    ]


def test_doctor_and_init_model_share_one_discovery():
    zoo = _zoo("resnet_basic", batch=2, size=16)
    found = discover(zoo.model, zoo.example)
    report = init_model(zoo.model, seed=0, example=zoo.example)
    for name, answer in found.activations.items():
        assert report[f"{name}.weight"].activation == answer.name
    assert "layer1.0.conv2" in found.residual()


# ------------------------------------------------------------------ Conv1D (in, out)
def test_gpt2_conv1d_fans_follow_how_the_layer_uses_its_weight():
    zoo = _zoo("gpt2")
    report = init_model(zoo.model, "lecun_normal", seed=0, example=zoo.example)
    row = report["transformer.h.0.attn.c_attn.weight"]
    assert (row.fan_in, row.fan_out) == (64, 192)  # n_embd in, 3 n_embd out
    assert row.shape == (64, 192) and "stores (in, out)" in row.note
    # LeCun keeps a unit-variance input at unit variance through c_attn
    c_attn = zoo.model.transformer.h[0].attn.c_attn
    x = torch.randn(4096, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y = c_attn(x)
    assert y.std().item() == pytest.approx(1.0, rel=0.05)


class MyLinear(nn.Module):
    """A user layer storing its weight as (in, out)."""

    def __init__(self, n_in, n_out):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_in, n_out))

    def forward(self, x):
        return x @ self.weight


class TwoMine(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = MyLinear(16, 64), MyLinear(64, 64)

    def forward(self, x):
        return self.b(F.relu(self.a(x)))


def test_layout_of_an_unknown_layer_from_its_forward_or_declared():
    x = torch.randn(8, 16, generator=torch.Generator().manual_seed(0))
    report = init_model(_make(TwoMine), seed=0, example=x)
    assert (report["a.weight"].fan_in, report["a.weight"].fan_out) == (16, 64)
    assert report["a.weight"].target_std == pytest.approx(math.sqrt(2 / 16))
    # square: the forward cannot tell, the user can
    assert report["b.weight"].fan_in == 64
    report = init_model(_make(TwoMine), seed=0, layouts={"MyLinear": "in_out"})
    assert (report["a.weight"].fan_in, report["a.weight"].fan_out) == (16, 64)
    with pytest.raises(ValueError, match="in_out"):
        init_model(_make(TwoMine), seed=0, layouts={"MyLinear": "in-out"})


# ------------------------------------------------------------------ tied embeddings
def test_tied_gpt2_embedding_keeps_logits_and_first_loss_sane():
    zoo = _zoo("gpt2")
    report = init_model(zoo.model, "he_normal", seed=0, example=zoo.example)
    row = report["transformer.wte.weight"]
    assert "output use lm_head.weight" in row.note
    assert report["lm_head.weight"].action == "tied"
    assert row.target_std == pytest.approx(1 / math.sqrt(64))  # not N(0, 1) nor sqrt(2)
    ids = zoo.example["input_ids"]
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        out = zoo.model.eval()(input_ids=ids, labels=ids)
    vocab = zoo.model.config.vocab_size
    assert out.logits.std().item() < 2.0
    assert abs(out.loss.item() - math.log(vocab)) < 1.0  # ln(128) = 4.85


# ------------------------------------------------------------------ conventions kept
def test_padding_rows_stay_zero():
    zoo = _zoo("bert")  # pad_token_id=0
    report = init_model(zoo.model, seed=0, example=zoo.example)
    table = zoo.model.bert.embeddings.word_embeddings.weight
    assert torch.equal(table[0], torch.zeros(64)) and table[1:].abs().sum() > 0
    assert "padding row 0 kept at zero" in report["bert.embeddings.word_embeddings.weight"].note


def test_parameters_without_a_layer_role_keep_their_values():
    vit = _zoo("vit")
    before = {n: p.detach().clone() for n, p in vit.model.named_parameters()}
    report = init_model(vit.model, seed=0, example=vit.example)
    for name in ("class_token", "pos_embedding"):
        assert torch.equal(dict(vit.model.named_parameters())[name], before[name])
        assert name in report.kept() and "no known layer role" in report.kept()[name]
    convnext = _zoo("convnext")
    report = init_model(convnext.model, seed=0, example=convnext.example)
    assert torch.equal(convnext.model[2].gamma, torch.full((32,), 1e-6))
    assert "2.gamma" in report.kept()
    t5 = _zoo("t5")
    report = init_model(t5.model, seed=0, example=t5.example)
    assert (
        "attention bias"
        in report.kept()["encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"]
    )


def test_rules_still_name_kept_parameters():
    vit = _zoo("vit")
    init_model(vit.model, seed=0, rules={"pos_embedding": "normal:std=0.5"})
    assert vit.model.pos_embedding.std().item() == pytest.approx(0.5, rel=0.2)


# ------------------------------------------------------------------ norms and build
class ZeroCentredRMSNorm(nn.Module):
    """Gemma's RMSNorm: the scale is used as (1 + w), so w = 0 is neutral."""

    def __init__(self, dim):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))  # deliberately not neutral

    def forward(self, x):
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)
        return x * (1.0 + self.weight)


class PlainRMSNorm(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(dim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * self.weight


def test_norms_known_by_name_start_neutral_zero_centred_by_behaviour():
    # PlainRMSNorm's zeros are not a residual branch's zero-init scale (nothing skips it)
    model = _make(lambda: nn.Sequential(nn.Linear(8, 8), ZeroCentredRMSNorm(8), PlainRMSNorm(8)))
    report = init_model(model, seed=0)
    assert torch.equal(model[1].weight, torch.zeros(8)) and "1 + w" in report["1.weight"].note
    assert torch.equal(model[2].weight, torch.ones(8)) and report["2.weight"].action == "norm"


@pytest.mark.parametrize("name", ["llama", "t5", "convnext"])
def test_build_works_on_real_models_and_keeps_constructor_constants(name):
    zoo = _zoo(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # without an example HF models warn that they guess
        model, report = build(lambda: ZOO[name](seed=0).model, seed=0)
    out = _forward(model.eval(), zoo.example)
    assert torch.isfinite(out).all() and out.std() > 0.01  # not all zero
    norms = [r for r in report.rows if r.action == "norm" and r.parameter.endswith("weight")]
    assert norms and all(r.scheme == "ones" for r in norms)
    if name == "convnext":
        assert torch.equal(model[2].gamma, torch.full((32,), 1e-6))


# ------------------------------------------------------------------ issue 12
def test_integer_parameters_are_kept_with_the_reason():
    model = _make(lambda: nn.Linear(4, 4))
    model.table = nn.Parameter(torch.arange(6), requires_grad=False)
    report = init_model(model, seed=0)
    assert torch.equal(model.table, torch.arange(6))
    assert report["table"].action == "keep" and "not floating point" in report["table"].note


@pytest.mark.parametrize("scheme", ["he_normal", "xavier_uniform", "orthogonal", "lecun_normal",
                                    "he_normal:mode=fan_out"])  # fmt: skip
def test_zero_size_parameters(scheme):
    model = _make(lambda: nn.Sequential(nn.Linear(4, 0), nn.Linear(0, 3)))
    report = init_model(model, scheme, seed=0)
    assert report["0.weight"].note == "empty: nothing to draw"
    assert model[1].weight.shape == (3, 0)


class _TiedLM(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(50, 16, padding_idx=3)
        self.norm = nn.LayerNorm(16)
        self.head = nn.Linear(16, 50, bias=False)
        self.head.weight = self.emb.weight

    def forward(self, x):
        return self.head(self.norm(self.emb(x)))


def test_a_rule_naming_any_use_of_a_tied_tensor_applies_to_it():
    model = _make(_TiedLM)
    report = init_model(model, seed=0, rules={nn.Embedding: "normal:std=0.02"})
    assert report["emb.weight"].action == "rule"
    assert model.emb.weight[4:].std().item() == pytest.approx(0.02, rel=0.1)
    assert torch.equal(model.emb.weight[3], torch.zeros(16))  # padding row, even by a rule
    report = init_model(model, "lecun_normal", seed=0)
    assert report["emb.weight"].target_std == pytest.approx(1 / 4)  # the head's fan_in 16
    assert "output use head.weight" in report["emb.weight"].note
