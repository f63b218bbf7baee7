"""initlab.diagnose / initlab.fix: verdicts on the classic failure modes, exact statistics,
state restoration, identical-unit detection, recommendations, plots."""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import initlab
from initlab.doctor.diagnose import recommend
from initlab.doctor.probe import _identical_rows

DEPTH, WIDTH, BATCH = 50, 256, 256


@pytest.fixture(autouse=True)
def _flush_denormals():
    """Vanishing signals produce subnormal floats, 10-100x slower on CPUs: flush them (as the
    benchmarks do) so that these tests stay fast; torch's default is off."""
    torch.set_flush_denormal(True)
    yield
    torch.set_flush_denormal(False)


@pytest.fixture(scope="module")
def x() -> torch.Tensor:
    return torch.randn(BATCH, WIDTH, generator=torch.Generator().manual_seed(1))


CASES = {
    "tanh_small": ("tanh", "normal:std=0.01", None),
    "tanh_unit": ("tanh", "random", None),
    "relu_glorot": ("relu", "xavier_normal", None),
    "relu_zeros": ("relu", "zeros", None),
    "relu_random": ("relu", "random:scale=1", None),
    "relu_dead": ("relu", "he_normal", -10.0),
}


@pytest.fixture(scope="module")
def fixed(x):
    """``initlab.fix`` of each unhealthy case, computed once: ``.before`` is its diagnosis."""
    torch.set_flush_denormal(True)
    try:
        return {name: initlab.fix(deep(*case), x, seed=0) for name, case in CASES.items()}
    finally:
        torch.set_flush_denormal(False)


def built(factory):
    """Build a module without touching the global RNG (PyTorch's default init draws from it)."""
    with torch.random.fork_rng(devices=[]):
        return factory()


def deep(activation: str, scheme: str, bias: float | None = None) -> initlab.MLP:
    model = built(lambda: initlab.mlp([WIDTH] * DEPTH + [1], activation=activation))
    initlab.init_model(model, scheme, seed=0)
    if bias is not None:
        with torch.no_grad():
            for layer in model.linears:
                layer.bias.fill_(bias)
    return model


def verdict(diagnosis: initlab.Diagnosis, kind: str, signal: str | None = None):
    found = [
        v for v in diagnosis.verdicts if v.kind == kind and (signal is None or v.signal == signal)
    ]
    assert found, f"no {kind} verdict in {diagnosis.kinds}"
    return found[0]


# ---------------------------------------------------------------------- must show (issue 5)
def test_tanh_small_weights_vanish(fixed):
    d = fixed["tanh_small"].before
    assert d.primary.kind == "vanishing"
    v = verdict(d, "vanishing", "activations")
    # tanh(z) ~ z: the rms shrinks by std * sqrt(width) = 0.16 per layer.
    assert v.numbers["per_layer"] == pytest.approx(0.01 * math.sqrt(WIDTH), rel=0.05)
    assert v.numbers["ratio"] < 1e-30 and v.numbers["layer"] >= DEPTH - 3
    assert "falls from" in v.message and "at layer 1 (linear1)" in v.message
    assert "vanishing" in [v.kind for v in d.verdicts if v.signal == "gradients"]


def test_tanh_unit_weights_saturate(fixed):
    d = fixed["tanh_unit"].before
    assert d.primary.kind == "saturated"
    v = verdict(d, "saturated")
    # pre-activations ~ N(0, 256): P(|tanh z| > 0.99) = P(|N(0,1)| > atanh(0.99) / 16) = 0.869
    assert v.numbers["mean_fraction"] == pytest.approx(0.869, abs=0.02)
    assert v.numbers["layers"] == DEPTH - 1


def test_relu_glorot_vanishes_by_half_variance_per_layer(fixed):
    d = fixed["relu_glorot"].before
    assert d.kinds[0] == "vanishing"
    v = verdict(d, "vanishing", "activations")
    # Var(w) = 1/width with ReLU halves the variance each layer: rms x 1/sqrt(2).
    assert v.numbers["per_layer"] == pytest.approx(1 / math.sqrt(2), abs=0.03)
    assert v.numbers["ratio"] < 1e-6


def test_relu_he_is_healthy(x):
    d = initlab.diagnose(deep("relu", "he_normal"), x)
    assert d.kinds == ["healthy"] and d.healthy
    assert 0.1 < d.primary.numbers["min_ratio"] <= 1 <= d.primary.numbers["max_ratio"] < 10


def test_zeros_are_symmetric(fixed):
    d = fixed["relu_zeros"].before
    assert d.primary.kind == "symmetric"
    hidden = [r for r in d.weighted if r.weight_rows > 1]
    assert all(r.identical == r.weight_rows == WIDTH for r in hidden)
    assert "dead" not in d.kinds  # dead units of symmetric layers are left to that verdict


def test_relu_unit_random_weights_explode_to_inf(fixed):
    d = fixed["relu_random"].before
    v = verdict(d, "exploding", "activations")
    # rms x sqrt(width / 2) = 11.3 per layer from 16 at layer 1: float32 overflows near layer 36
    assert 30 <= v.numbers["first_nonfinite_layer"] <= 40
    assert "non-finite" in v.message
    json.dumps(d.to_dict(), allow_nan=False)  # inf/nan written as strings


def test_relu_moderate_random_weights_explode_finitely(x):
    model = built(lambda: initlab.mlp([WIDTH] * 20 + [1]))
    initlab.init_model(model, "random:scale=0.15", seed=0)
    d = initlab.diagnose(model, x)
    v = verdict(d, "exploding", "activations")
    # Var factor width * 0.15^2 / 2 = 2.88 per layer: rms x 1.70
    assert v.numbers["per_layer"] == pytest.approx(math.sqrt(2.88), rel=0.05)
    assert "exploding" in [v.kind for v in d.verdicts if v.signal == "gradients"]


def test_large_negative_biases_kill_relu_units(fixed):
    d = fixed["relu_dead"].before
    assert d.primary.kind == "dead"
    v = verdict(d, "dead")
    assert v.numbers["mean_fraction"] == 1.0 and v.numbers["layers"] == DEPTH - 1


@pytest.mark.parametrize("name", list(CASES))
def test_fix_makes_every_case_healthy(fixed, name):
    activation = CASES[name][0]
    result = fixed[name]
    assert not result.before.healthy
    assert result.after.healthy, result.after.kinds
    expected = "he_normal" if activation == "relu" else "xavier_normal"
    assert result.rules["linear1.weight"] == expected
    assert result.rules["linear50.weight"] == "lecun_normal"
    assert result.rules["linear1.bias"] == "zeros"
    assert "before:" in str(result) and "after:" in str(result)
    json.dumps(result.to_dict(), allow_nan=False)


# ---------------------------------------------------------------------- exact statistics
class Small(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(6, 5)
        self.act1 = nn.ReLU()
        self.fc2 = nn.Linear(5, 4)
        self.act2 = nn.Tanh()
        self.fc3 = nn.Linear(4, 3)
        self.act3 = nn.Sigmoid()

    def forward(self, x):
        return self.act3(self.fc3(self.act2(self.fc2(self.act1(self.fc1(x))))))


def test_statistics_match_a_direct_computation():
    model = built(lambda: Small())
    initlab.init_model(model, "normal:std=1.5", seed=3)
    with torch.no_grad():
        model.fc1.bias.fill_(-1.0)
    x = torch.randn(32, 6, generator=torch.Generator().manual_seed(2), dtype=torch.float32)
    d = initlab.diagnose(model, x, seed=7, samples=0)

    # The same loss by hand: sum(P * y) / batch with P ~ N(0, 1) from the seed.
    outputs = {}
    h = x
    for name in ("fc1", "act1", "fc2", "act2", "fc3", "act3"):
        h = getattr(model, name)(h)
        h.retain_grad()
        outputs[name] = h
    projection = torch.randn(h.shape, generator=torch.Generator().manual_seed(7))
    loss = (h * projection).sum() / 32
    loss.backward()
    assert d.loss == pytest.approx(loss.item(), rel=1e-5)
    rows = {r.name: r for r in d.layers}
    assert [r.name for r in d.layers] == list(outputs)
    for name, out in outputs.items():
        row, y = rows[name], out.detach()
        assert row.mean == pytest.approx(y.mean().item(), rel=1e-4, abs=1e-6)
        assert row.std == pytest.approx(y.std(correction=0).item(), rel=1e-4)
        assert row.zeros == pytest.approx((y == 0).double().mean().item(), abs=1e-12)
        assert row.grad_output == pytest.approx(out.grad.norm().item(), rel=1e-5)
        assert row.shape == tuple(y.shape)
    assert (
        rows["act1"].dead == int((outputs["act1"].amax(0) <= 0).sum()) and rows["act1"].units == 5
    )
    assert rows["act2"].saturated == pytest.approx(
        (outputs["act2"].abs() > 0.99).double().mean().item()
    )
    s = outputs["act3"]
    assert rows["act3"].saturated == pytest.approx(((s < 0.01) | (s > 0.99)).double().mean().item())
    for name in ("fc1", "fc2", "fc3"):
        layer = getattr(model, name)
        assert rows[name].weight_norm == pytest.approx(layer.weight.norm().item(), rel=1e-6)
        assert rows[name].grad_weight == pytest.approx(layer.weight.grad.norm().item(), rel=1e-5)
        assert rows[name].grad_ratio == pytest.approx(
            layer.weight.grad.norm().item() / layer.weight.norm().item(), rel=1e-5
        )
    assert [r.layer for r in d.layers] == [1, 1, 2, 2, 3, 3]


def test_constant_outputs_have_exactly_zero_std():
    model = built(lambda: nn.Sequential(nn.Linear(8, 8), nn.ReLU()))
    with torch.no_grad():
        model[0].weight.zero_()
        model[0].bias.fill_(-10.0)
    d = initlab.diagnose(model, torch.randn(16, 8, generator=torch.Generator().manual_seed(0)))
    assert d.layers[0].mean == -10.0 and d.layers[0].std == 0.0
    assert d.layers[1].zeros == 1.0 and d.layers[1].dead == 8


def test_conv_units_are_channels():
    model = built(
        lambda: nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 36, 2)
        )
    )
    initlab.init_model(model, seed=0)
    with torch.no_grad():
        model[0].bias[:3] = -100.0  # three channels always negative
    x = torch.randn(4, 3, 6, 6, generator=torch.Generator().manual_seed(0))
    d = initlab.diagnose(model, x)
    relu = d.layers[1]
    assert relu.units == 8 and relu.dead == 3
    assert d.recommendations[0].scheme == "he_normal"
    assert d.recommendations[0].expected_std == pytest.approx(math.sqrt(2 / 27))


# ---------------------------------------------------------------------- state and hooks
def test_state_is_restored():
    model = built(
        lambda: nn.Sequential(
            nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 1)
        )
    )
    model.eval()
    model[1].train()  # mixed flags must come back as they were
    model[0].weight.grad = torch.ones_like(model[0].weight)
    before = copy.deepcopy(model.state_dict())
    x = torch.randn(16, 4, generator=torch.Generator().manual_seed(0))
    initlab.diagnose(model, x)
    assert [m.training for m in model.modules()] == [False, False, True, False, False, False]
    assert torch.equal(model[0].weight.grad, torch.ones_like(model[0].weight))
    assert model[4].weight.grad is None and model[0].bias.grad is None
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # BatchNorm statistics too
    for m in model.modules():
        assert not m._forward_hooks and not m._backward_hooks


def test_hooks_are_removed_when_the_model_fails():
    model = built(lambda: nn.Sequential(nn.Linear(4, 8), nn.ReLU()))
    with pytest.raises(ValueError, match=r"rejected inputs of shape \(3, 5\)"):
        initlab.diagnose(model, torch.zeros(3, 5))
    assert all(not m._forward_hooks for m in model.modules())
    assert model.training


def test_input_validation():
    model = built(lambda: nn.Linear(2, 2))
    with pytest.raises(TypeError, match="inputs must be a tensor"):
        initlab.diagnose(model, [[1.0, 2.0]])
    with pytest.raises(TypeError, match=r"nn\.Module"):
        initlab.diagnose("model", torch.zeros(1, 2))
    with pytest.raises(ValueError, match="samples must be >= 0"):
        initlab.diagnose(model, torch.zeros(1, 2), samples=-1)
    with pytest.raises(ValueError, match=r"seed must be an integer; got 1\.5"):
        initlab.diagnose(model, torch.zeros(1, 2), seed=1.5)  # was silently seed 1


def test_targets_and_loss_function():
    model = built(lambda: initlab.mlp([4, 8, 3], output="softmax"))
    initlab.init_model(model, seed=0)
    x = torch.randn(32, 4, generator=torch.Generator().manual_seed(0))
    y = torch.arange(32) % 3
    d = initlab.diagnose(model, x, y)  # integer targets: cross-entropy
    assert d.loss == pytest.approx(F.cross_entropy(model(x), y).item(), rel=1e-5)
    d = initlab.diagnose(model, x, torch.zeros(32, 3), loss_fn=F.mse_loss)
    assert d.loss == pytest.approx(F.mse_loss(model(x), torch.zeros(32, 3)).item(), rel=1e-5)
    with pytest.raises(ValueError, match="loss rejected"):
        initlab.diagnose(model, x, torch.zeros(5, dtype=torch.long))


# ---------------------------------------------------------------------- thresholds
def test_thresholds_are_validated_and_configurable(x):
    with pytest.raises(ValueError, match=r"vanishing must be <= 1\.0"):
        initlab.Thresholds(vanishing=2)
    with pytest.raises(ValueError, match="dead must be > 0"):
        initlab.Thresholds(dead=0)
    model = built(lambda: initlab.mlp([32] * 6 + [1], activation="relu"))
    initlab.init_model(model, "xavier_normal", seed=0)
    xs = x[:64, :32]
    # rms halves in variance per layer: about x0.18 over 5 layers.
    assert (
        "vanishing"
        in initlab.diagnose(model, xs, thresholds=initlab.Thresholds(vanishing=0.3)).kinds
    )
    assert initlab.diagnose(model, xs, thresholds=initlab.Thresholds(vanishing=0.01)).healthy


# ---------------------------------------------------------------------- identical units
def test_identical_rows_sort_based_count():
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(64, 32, generator=gen)
    w[10] = w[3]
    w[40] = w[3]
    w[7] = w[20]
    w[50] = w[51] + 1e-3  # close but different: not identical
    model = built(lambda: nn.Linear(32, 64))
    with torch.no_grad():
        model.weight.copy_(w)
    d = initlab.diagnose(model, torch.randn(8, 32, generator=gen))
    assert d.layers[0].identical == 5
    with torch.no_grad():
        model.weight.fill_(0.3)
    assert initlab.diagnose(model, torch.randn(8, 32, generator=gen)).layers[0].identical == 64


def test_identical_rows_kernel_on_keys():
    keys = torch.tensor([[[0.0, 1.0], [5.0, 2.0], [0.0, 1.0], [0.0, 3.0]]])
    assert _identical_rows(keys, torch.tensor([1.0]), 1e-5).tolist() == [2]


# ---------------------------------------------------------------------- recommendations
def test_recommendation_per_activation():
    assert recommend(("relu", None)) == ("he_normal", "He")
    assert recommend(("leaky_relu", 0.1))[0] == "he_normal"
    assert recommend(("tanh", None)) == ("xavier_normal", "Glorot")
    assert recommend(("sigmoid", None)) == ("xavier_normal", "Glorot")
    assert recommend(("selu", None)) == ("lecun_normal", "LeCun")
    assert recommend(("linear", None)) == ("lecun_normal", "LeCun")


def test_recommendations_follow_functional_activations_through_fx():
    class Functional(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Linear(10, 20)
            self.b = nn.Linear(20, 5)

        def forward(self, x):
            return self.b(torch.tanh(self.a(x)))

    d = initlab.diagnose(
        built(Functional), torch.randn(4, 10, generator=torch.Generator().manual_seed(0))
    )
    recs = {r.parameter: r for r in d.recommendations}
    assert recs["a.weight"].activation == "tanh" and recs["a.weight"].scheme == "xavier_normal"
    assert recs["a.weight"].expected_std == pytest.approx(math.sqrt(2 / 30))
    assert recs["b.weight"].scheme == "lecun_normal"
    assert recs["b.weight"].expected_std == pytest.approx(1 / math.sqrt(20))


# ---------------------------------------------------------------------- output
def test_str_and_json(fixed):
    d = fixed["relu_glorot"].before
    text = str(d)
    assert "grad/W" in text and "vanishing: activation rms falls" in text
    assert "recommended init" in text and "he_normal" in text
    data = json.loads(json.dumps(d.to_dict(), allow_nan=False))
    assert [v["kind"] for v in data["verdicts"]] == d.kinds
    assert len(data["layers"]) == 2 * DEPTH - 1 and "samples" not in data["layers"][0]


def test_plot_overlays_and_writes_atomically(tmp_path, x):
    model = built(lambda: initlab.mlp([32] * 8 + [1], activation="tanh"))
    initlab.init_model(model, "normal:std=0.05", seed=0)
    result = initlab.fix(model, x[:64, :32])
    path = initlab.plot_signal([result.before, result.after], tmp_path / "signal.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["signal.png"]  # no temp files left
    with pytest.raises(FileNotFoundError, match="does not exist"):
        initlab.plot_signal([result.before], tmp_path / "missing" / "signal.png")


def test_stacked_path_used_on_accelerators_gives_the_same_numbers(monkeypatch):
    import initlab.doctor.probe as probe

    model = built(
        lambda: torch.nn.Sequential(
            nn.Linear(6, 6),
            nn.ReLU(inplace=True),
            nn.Linear(6, 6),
            nn.Tanh(),
            nn.Linear(6, 6),
            nn.ReLU(),
            nn.Linear(6, 6),
            nn.Sigmoid(),
        )
    )
    x = torch.randn(16, 6, generator=torch.Generator().manual_seed(0))
    per_call = initlab.diagnose(model, x)
    monkeypatch.setattr(probe, "_STACK_ON_CPU", True)
    stacked = initlab.diagnose(model, x)
    assert per_call.kinds == stacked.kinds
    for a, b in zip(per_call.layers, stacked.layers, strict=True):
        for key in ("mean", "std", "zeros", "saturated", "dead", "grad_output", "grad_weight"):
            va, vb = getattr(a, key), getattr(b, key)
            # float32 statistics of 96 values reduced in another order (stacked, and by the
            # thread count): round-off up to about n * eps = 6e-6 relative per pass; it was
            # seen at 1.0e-5 (0.0369492517 against 0.0369488739)
            assert (va is None and vb is None) or va == pytest.approx(vb, rel=1e-4, abs=1e-7)
    # The in-place ReLU overwrote linear1's output: the stacked path cloned it first.
    assert stacked.layers[0].zeros == 0.0 and stacked.layers[1].zeros > 0


def test_huge_finite_outputs_do_not_crash_the_stats():
    # Outputs near 1e160 are finite in float64, but their squares are not: this raised
    # OverflowError from a Python-float square. Now the std is a number (inf past the range).
    with torch.random.fork_rng(devices=[]):
        model = nn.Sequential(nn.Linear(4, 4, bias=False)).double()
    with torch.no_grad():
        model[0].weight.copy_(torch.eye(4, dtype=torch.float64) * 1e160)
    x = torch.randn(32, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    row = initlab.diagnose(model, x).layers[0]
    assert math.isfinite(row.mean) and abs(row.mean) > 1e150
    assert row.std > 1e150


def test_recommended_std_uses_the_fans_fix_applies():
    """The recommendation's expected std uses the layer-aware fans that ``fix`` (through
    ``init_model``) applies: ``in * k`` for a ConvTranspose weight ``(in, out, *k)``, 1 for an
    Embedding, not the fans read from the weight's shape."""
    model = built(lambda: nn.Sequential(nn.ConvTranspose1d(16, 4, 3), nn.ReLU(), nn.Flatten()))
    initlab.init_model(model, "random:scale=100", seed=0)  # fix leaves healthy models alone
    inputs = torch.randn(8, 16, 5, generator=torch.Generator().manual_seed(0))
    result = initlab.fix(model, inputs)
    assert result.before.kinds == ["exploding"] and result.success
    rec = {r.parameter: r for r in result.before.recommendations}["0.weight"]
    assert rec.expected_std == pytest.approx(math.sqrt(2 / (16 * 3)))
    assert rec.expected_std == pytest.approx(result.init["0.weight"].target_std)

    embedding = built(lambda: nn.Sequential(nn.Embedding(10, 6), nn.Flatten(), nn.Linear(18, 2)))
    d = initlab.diagnose(embedding, torch.tensor([[1, 2, 3], [4, 5, 6]]))
    rec = {r.parameter: r for r in d.recommendations}["0.weight"]
    assert rec.scheme == "lecun_normal" and rec.expected_std == pytest.approx(1.0)


def test_fix_str_lists_every_reinitialized_weight():
    """Weights not named ``*weight`` (an RNN's ``weight_ih_l0``) are in the table too, and
    every gate weight of a recurrent layer is re-initialized (``weight_hh_l0`` too: left at
    zero, the recurrence would stay dead)."""

    class Recurrent(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.rnn = nn.RNN(4, 8, batch_first=True)
            self.head = nn.Linear(8, 2)

        def forward(self, x):
            return self.head(self.rnn(x)[0][:, -1])

    model = built(Recurrent)
    initlab.init_model(model, "zeros")  # symmetric: fix leaves healthy models alone
    result = initlab.fix(model, torch.randn(3, 5, 4, generator=torch.Generator().manual_seed(0)))
    assert set(result.rules) == {"rnn.weight_ih_l0", "rnn.weight_hh_l0", "head.weight", "head.bias"}
    text = str(result)
    assert "re-initialized 3 weight layers" in text
    table = text.split("re-initialized")[1].split("after:")[0]
    assert "rnn.weight_ih_l0" in table and "head.weight" in table and "head.bias" not in table
    assert "rnn.weight_hh_l0" in table
