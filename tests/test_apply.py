"""init_model: plans, activation gains, rules, biases, seeding, report; default_init_std."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import stats
from torch import nn

import initlab
from _stats import check_sample
from initlab import default_init_std, init_model


def _build(factory):
    # module constructors draw PyTorch's default init from the global RNG: keep it untouched
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return factory()


def _mlp():
    return nn.Sequential(
        nn.Linear(256, 512), nn.ReLU(), nn.Linear(512, 256), nn.Tanh(), nn.Linear(256, 10)
    )


def test_activation_aware_he_targets_and_realized_std():
    model = _build(_mlp)
    report = init_model(model, seed=0)
    # He: gain of what follows, fan_in; std sqrt(2/256) before ReLU, 5/3/sqrt(512) before tanh
    expected = {"0.weight": math.sqrt(2 / 256), "2.weight": 5 / 3 / math.sqrt(512),
                "4.weight": 1 / math.sqrt(256)}  # fmt: skip
    for name, std in expected.items():
        row = report[name]
        assert row.target_std == pytest.approx(std, rel=1e-12)
        values = dict(model.named_parameters())[name].detach().numpy()
        check_sample(values, stats.norm(0, std))
        assert row.realized_std == pytest.approx(values.std(ddof=1), rel=1e-5)
    assert [report[n].activation for n in expected] == ["relu", "tanh", "linear"]
    assert report["0.weight"].activation_source == "sequential"
    assert (report["0.weight"].fan_in, report["0.weight"].fan_out) == (256, 512)
    assert report["0.weight"].gain == pytest.approx(math.sqrt(2))


def test_fixed_schemes_ignore_activations():
    model = _build(_mlp)
    report = init_model(model, "xavier_uniform", seed=0)
    assert report["0.weight"].target_std == pytest.approx(math.sqrt(2 / 768))
    report = init_model(model, "kaiming_normal_", seed=0)  # PyTorch's: ReLU gain everywhere
    assert report["2.weight"].target_std == pytest.approx(math.sqrt(2 / 512))
    report = init_model(model, "xavier_normal:gain=auto", seed=0)
    assert report["2.weight"].target_std == pytest.approx(5 / 3 * math.sqrt(2 / 768))


class Custom(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2, self.fc3 = nn.Linear(64, 64), nn.Linear(64, 64), nn.Linear(64, 4)

    def forward(self, x):
        h = F.relu(self.fc1(x))
        h = torch.tanh(h + self.fc2(h))
        return self.fc3(h)


class DataDependent(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(64, 64), nn.SELU(), nn.Linear(64, 2)

    def forward(self, x, threshold):
        h = self.fc1(x)
        return self.fc2(self.act(h) if h.mean() > threshold else h)


def test_activation_detection_in_custom_modules():
    report = init_model(_build(Custom), seed=1)
    found = [(report[f"fc{i}.weight"].activation, report[f"fc{i}.weight"].activation_source)
             for i in (1, 2, 3)]  # fmt: skip
    assert found == [("relu", "trace"), ("tanh", "trace"), ("linear", "none")]
    assert report.example_source == "first layer"  # traced on an input made from fc1
    # two inputs: no input made from the model runs it, and fx cannot trace the branch
    with pytest.warns(UserWarning, match="guessed from the order in which modules are"):
        report = init_model(_build(DataDependent), seed=1)
    assert (report.activations_found_by, report.example_source) == ("order", None)
    assert (report["fc1.weight"].activation, report["fc1.weight"].activation_source) == (
        "selu", "order"
    )  # fmt: skip
    assert report["fc1.weight"].target_std == pytest.approx(0.75 / 8)  # PyTorch's selu gain 3/4


def test_rules_by_glob_and_type_first_match_wins():
    model = _build(
        lambda: nn.Sequential(nn.Embedding(100, 32), nn.Linear(32, 32), nn.Linear(32, 4))
    )
    rules = {
        "2.*": "zeros",
        nn.Embedding: "normal:std=0.02",
        "*.weight": "orthogonal",
        "1.bias": "keep",
    }
    before = model[1].bias.detach().clone()
    report = init_model(model, rules=rules, seed=0)
    assert torch.equal(model[2].weight, torch.zeros(4, 32)) and report["2.weight"].action == "rule"
    assert report["0.weight"].scheme == "normal:std=0.02"
    assert model[0].weight.std().item() == pytest.approx(0.02, rel=0.05)
    w = model[1].weight.detach()
    torch.testing.assert_close(w @ w.T, torch.eye(32), atol=1e-5, rtol=0)
    assert torch.equal(model[1].bias, before) and report["1.bias"].action == "keep"


def test_bad_rules():
    model = _build(lambda: nn.Linear(2, 2))
    with pytest.raises(TypeError, match="rule keys are parameter-name globs"):
        init_model(model, rules={3: "zeros"})
    with pytest.raises(ValueError, match="unknown scheme 'zeroes'"):
        init_model(model, rules={"*": "zeroes"})
    with pytest.raises(ValueError, match=r"bias has shape \(2,\): he_normal needs fans"):
        init_model(model, rules={"bias": "he_normal"})
    with pytest.raises(TypeError, match=r"init_model needs a torch\.nn\.Module"):
        init_model("model")


def test_bias_policies():
    model = _build(lambda: nn.Sequential(nn.Linear(400, 300), nn.ReLU(), nn.Linear(300, 1)))
    init_model(model, seed=0)
    assert model[0].bias.abs().sum() == 0  # zeros by default
    before = _build(lambda: nn.Linear(400, 300)).bias.detach().clone()
    model[0].bias.data.copy_(before)
    init_model(model, bias="keep", seed=0)
    assert torch.equal(model[0].bias, before)
    init_model(model, bias="constant:value=0.1", seed=0)
    assert torch.equal(model[0].bias, torch.full((300,), 0.1))
    report = init_model(model, bias="default", seed=0)
    bound = 1 / math.sqrt(400)
    assert model[0].bias.abs().max() <= bound
    assert report["0.bias"].target_std == pytest.approx(bound / math.sqrt(3))
    with pytest.raises(ValueError, match="unknown scheme"):
        init_model(model, bias="zero_s")


def test_default_bias_is_pytorchs_for_recurrent_layers():
    lstm = _build(lambda: nn.LSTM(8, 400))
    init_model(lstm, bias="default", seed=0)
    bias = lstm.bias_ih_l0.detach().numpy()
    bound = 1 / math.sqrt(400)  # PyTorch: U(-1/sqrt(hidden), 1/sqrt(hidden))
    check_sample(bias, stats.uniform(-bound, 2 * bound))


def test_norm_layers_start_as_identity():
    model = _build(lambda: nn.Sequential(
        nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.GroupNorm(2, 8), nn.LayerNorm(8)
    ))  # fmt: skip
    for m in model[1:]:
        m.weight.data.fill_(3.0)
        m.bias.data.fill_(3.0)
    report = init_model(model, seed=0)
    for i in (1, 2, 3):
        assert torch.equal(model[i].weight, torch.ones(8)) and model[i].bias.abs().sum() == 0
        assert report[f"{i}.weight"].action == "norm"


def test_tied_weights_initialized_once():
    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(50, 16)
            self.head = nn.Linear(16, 50, bias=False)
            self.head.weight = self.emb.weight

        def forward(self, x):
            return self.head(self.emb(x))

    model = _build(Tied)
    report = init_model(model, "normal:std=0.02", seed=0)
    assert model.head.weight is model.emb.weight
    assert report["emb.weight"].action == "weight"
    assert (report["head.weight"].action, report["head.weight"].scheme) == (
        "tied",
        "tied to emb.weight",
    )
    assert model.emb.weight.std().item() == pytest.approx(0.02, rel=0.05)


def test_per_parameter_seeding():
    a = _build(lambda: nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2)))
    b = _build(lambda: nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2), nn.Linear(2, 2)))
    init_model(a, seed=5)
    init_model(b, seed=5)
    assert torch.equal(a[0].weight, b[0].weight) and torch.equal(a[2].weight, b[2].weight)
    c = _build(lambda: nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2)))
    init_model(c, seed=6)
    assert not torch.equal(a[0].weight, c[0].weight)
    report = init_model(c)  # no seed: a fresh one, recorded so the run can be repeated
    init_model(a, seed=report.seed)
    assert torch.equal(a[0].weight, c[0].weight)


def test_global_numpy_rng_untouched():
    np.random.seed(1)
    before = np.random.get_state()[1].copy()
    init_model(_build(_mlp), seed=0)
    assert np.array_equal(before, np.random.get_state()[1])


def test_lstm_gates_use_their_own_activation_gains():
    lstm = _build(lambda: nn.LSTM(128, 256))
    report = init_model(lstm, seed=0)
    w = lstm.weight_ih_l0.detach()
    gates = [("input gate", "sigmoid", 1.0), ("forget gate", "sigmoid", 1.0),
             ("cell", "tanh", 5 / 3), ("output gate", "sigmoid", 1.0)]  # fmt: skip
    for i, (gate, act, g) in enumerate(gates):
        row = report[f"weight_ih_l0[{gate}]"]
        assert (row.activation, row.activation_source, row.fan_in) == (act, "layer", 128)
        assert row.target_std == pytest.approx(g / math.sqrt(128))
        check_sample(w[256 * i : 256 * (i + 1)].numpy(), stats.norm(0, g / math.sqrt(128)))


def test_orthogonal_per_gate_blocks():
    gru = _build(lambda: nn.GRU(16, 16))
    init_model(gru, "orthogonal", seed=0)
    w = gru.weight_hh_l0.detach()
    for i in range(3):
        block = w[16 * i : 16 * (i + 1)]
        torch.testing.assert_close(block @ block.T, torch.eye(16), atol=1e-5, rtol=0)


def test_attention_projections_are_linear():
    mha = _build(lambda: nn.MultiheadAttention(64, 4))
    report = init_model(mha, seed=0)
    for role in ("query", "key", "value"):
        row = report[f"in_proj_weight[{role}]"]
        assert (row.fan_in, row.fan_out, row.activation) == (64, 64, "linear")
        assert row.target_std == pytest.approx(1 / 8)


def test_conv_transpose_and_grouped_conv_fans_in_report():
    model = _build(lambda: nn.Sequential(nn.ConvTranspose2d(4, 8, 3), nn.Conv2d(8, 8, 3, groups=4)))
    report = init_model(model, seed=0)
    assert (report["0.weight"].fan_in, report["0.weight"].fan_out) == (36, 72)
    assert (report["1.weight"].fan_in, report["1.weight"].fan_out) == (18, 18)


def test_report_str_and_to_dict():
    report = init_model(_build(_mlp), seed=3)
    text = str(report)
    lines = text.splitlines()
    assert lines[0].split() == [
        "parameter", "shape", "scheme", "fan_in", "fan_out", "activation", "found", "by",
        "gain", "target", "std", "realized", "std", "note",
    ]  # fmt: skip
    assert "0.weight" in text and "he_normal" in text and "(512, 256)" in text
    data = report.to_dict()
    json.dumps(data)
    assert data["seed"] == 3 and data["rows"][0]["shape"] == [512, 256]
    assert {r["parameter"] for r in data["rows"]} == {n for n, _ in _build(_mlp).named_parameters()}
    with pytest.raises(KeyError, match="no row for 'nope'"):
        report["nope"]


# --------------------------------------------------------------------- default_init_std
def _realized(model) -> dict[str, float]:
    return {n: p.detach().double().std().item() for n, p in model.named_parameters()}


@pytest.mark.parametrize(
    "factory",
    [
        lambda: nn.Linear(256, 512),
        lambda: nn.Conv2d(32, 64, 3),
        lambda: nn.Conv1d(16, 32, 5, groups=4),
        lambda: nn.ConvTranspose2d(32, 16, 3),
        lambda: nn.Embedding(1000, 64),
        lambda: nn.LSTM(64, 128),
        lambda: nn.GRU(32, 64),
        lambda: nn.MultiheadAttention(128, 4),
        lambda: nn.MultiheadAttention(256, 4, kdim=64, vdim=32, add_bias_kv=True),
        lambda: nn.Bilinear(32, 16, 64),
    ],
)
def test_default_init_std_matches_pytorch(factory):
    model = _build(factory)
    expected = default_init_std(model)
    realized = _realized(model)
    assert set(expected) == set(realized)  # every parameter is covered
    for name, std in expected.items():
        n = dict(model.named_parameters())[name].numel()
        if std == 0:
            assert realized[name] == 0, name
        else:
            assert abs(realized[name] / std - 1) < 5 / math.sqrt(2 * n) + 0.01, (
                name,
                realized[name],
                std,
            )


def test_pytorch_default_is_not_he():
    std = default_init_std(_build(lambda: nn.Linear(300, 10)))["weight"]
    assert std == pytest.approx(1 / math.sqrt(3 * 300))
    he = initlab.get("he_normal").target_std((10, 300))
    assert (he / std) ** 2 == pytest.approx(6)  # a sixth of He's variance 2 / fan_in


def test_report_table_right_aligns_numbers_with_missing_values():
    from initlab._core.table import format_table

    text = format_table(
        ["name", "std", "flag"], [("a", 1.5, True), ("bb", None, None), ("c", 10, False)]
    )
    assert text.splitlines() == [
        "name  std  flag",
        "----  ---  ----",
        "a     1.5  yes",
        "bb      -  -",
        "c      10  no",
    ]


@pytest.mark.parametrize("factory", [lambda: nn.Linear(256, 64), lambda: nn.Conv2d(16, 8, 3)])
def test_lone_layer_uses_the_standalone_default(factory):
    # nothing inside a lone layer follows it: He keeps PyTorch's default (ReLU) gain
    layer = _build(factory)
    report = init_model(layer, "he_normal", seed=0)
    assert report["weight"].target_std == initlab.get("he_normal").target_std(layer.weight.shape)
    assert report["weight"].activation is None


def test_meta_model_gets_a_plan_without_values():
    with torch.device("meta"):
        model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1))
    report = init_model(model, "he_normal", seed=0)
    assert report["0.weight"].target_std == pytest.approx(math.sqrt(2 / 8))
    assert report["0.weight"].realized_std is None


def test_reused_generator_gives_the_same_values_as_a_fresh_one():
    from initlab._core.rng import make_generator, reseeded_generator

    first = torch.empty(1000).normal_(generator=reseeded_generator(7))
    torch.empty(50).normal_(generator=reseeded_generator(8))  # advance the cached one
    again = torch.empty(1000).normal_(generator=reseeded_generator(7))
    fresh = torch.empty(1000).normal_(generator=make_generator(7))
    assert torch.equal(first, again) and torch.equal(first, fresh)
