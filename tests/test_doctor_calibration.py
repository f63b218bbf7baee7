"""The doctor on real timm, torchvision, Hugging Face and recurrent models (issue 25): no finding
at the framework default init, in training or evaluation mode, the four broken inits named right
on the same models, and the false alarms the issue reported, each on the real class that gave it.
A sample per family; ``benchmarks/doctor_calibration.py`` runs the whole set of
``_doctor_real_models``."""

from __future__ import annotations

import pytest
import torch

import initlab
from _doctor_real_models import BROKEN, EXPECTED, MODELS, break_weights


@pytest.fixture(autouse=True)
def _flush_denormals():
    torch.set_flush_denormal(True)
    yield
    torch.set_flush_denormal(False)


SAMPLE = [
    "timm/convnext_atto",
    "timm/efficientnet_b0",
    "tv/mobilenet_v3_small",
    "hf/gpt2",
    "torch/lstm_lm",
    "torch/gru_lm",
]


@pytest.mark.parametrize("name", SAMPLE)
def test_default_init_is_healthy_and_broken_inits_are_named(name):
    model, example = MODELS[name]()
    for mode in (model.train, model.eval):
        mode()
        d = initlab.diagnose(model, example)
        assert d.healthy, (mode.__name__, "\n".join(str(v) for v in d.verdicts))
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()
    for broken in BROKEN:
        model.load_state_dict(saved)
        break_weights(model, broken)
        d = initlab.diagnose(model, example)
        assert d.primary.kind in EXPECTED[broken], (broken, d.kinds, str(d.primary))


def _rows(d: initlab.doctor.Diagnosis) -> dict[str, initlab.doctor.LayerStats]:
    return {r.name: r for r in d.layers}


@pytest.mark.parametrize("name", ["timm/convnext_atto", "tv/convnext_tiny"])
def test_convnext_branch_gradient_is_not_compared_with_the_stream_it_forks_from(name):
    # The downsample conv's output is the stage's residual stream: its gradient sums the skip
    # path's and the first block's branch, which layer scale (gamma = 1e-6) makes 1e-6 of it.
    # Compared across that fork it was "exploding gradients, x5e5".
    model, example = MODELS[name]()
    d = initlab.diagnose(model, example)
    assert d.healthy, [str(v) for v in d.verdicts]
    downsample = "stages.1.downsample.1" if name.startswith("timm") else "features.2.1"
    row = _rows(d)[downsample]
    assert row.forks and row.weighted


@pytest.mark.parametrize(
    ("name", "reduce"),
    [
        ("timm/efficientnet_b0", "se.conv_reduce"),
        ("tv/efficientnet_b0", "block.2.fc1"),
        ("timm/regnety_002", "se.fc1"),
    ],
)
def test_squeeze_excite_reduce_conv_behind_a_gate_is_not_exploding(name, reduce):
    # Fan-out init gives the squeeze-excite reduce convs an rms row norm of about 7 (above
    # weight_gain = 5); their chain ends in the sigmoid gate (timm's own Sigmoid class in
    # RegNetY), which bounds what they do.
    model, example = MODELS[name]()
    d = initlab.diagnose(model, example)
    assert d.healthy, [str(v) for v in d.verdicts]
    large = [r for r in d.weighted if r.weight_gain > 4]
    assert large and all(r.name.endswith(reduce) for r in large)  # still measured; only there


@pytest.mark.parametrize("name", ["torch/lstm_lm", "torch/gru_lm"])
def test_tiny_weights_in_a_recurrent_lm_are_vanishing_not_exploding(name):
    # N(0, 1e-4) weights: the recurrent layer and the head output their default biases, 500x
    # the tiny embedding output; that is not a signal growing through the weights.
    model, example = MODELS[name]()
    break_weights(model, "tiny")
    d = initlab.diagnose(model, example)
    assert d.primary.kind == "vanishing" and "exploding" not in d.kinds, d.kinds


def test_relu_after_a_vanished_signal_is_vanishing_not_dead():
    # torchvision's MobileNetV3 with N(0, 1e-4) weights: the signal reaches the deep
    # squeeze-excite ReLUs as exact zeros (flushed), so every unit there is "<= 0"; that is
    # the vanishing signal, not units killed by a negative bias.
    model, example = MODELS["tv/mobilenet_v3_small"]()
    break_weights(model, "tiny")
    d = initlab.diagnose(model, example)
    assert d.primary.kind == "vanishing" and "dead" not in d.kinds, d.kinds
    zeros = [r for r in d.layers if r.dead is not None and r.input_rms == 0]
    assert zeros and all(r.dead == r.units for r in zeros)  # still counted in the table
