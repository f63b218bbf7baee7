"""The doctor on real timm, torchvision, Hugging Face and recurrent models (issue 25): no finding
at the framework default init, in training or evaluation mode, the four broken inits named right
on the same models, and the false alarms the issue reported, each on the real class that gave it.
A sample per family; ``benchmarks/doctor_calibration.py`` runs the whole set of
``_doctor_real_models``."""

from __future__ import annotations

import pytest
import torch

import initlab
from _doctor_real_models import MODELS, break_weights


@pytest.fixture(autouse=True)
def _flush_denormals():
    torch.set_flush_denormal(True)
    yield
    torch.set_flush_denormal(False)


@pytest.mark.parametrize("name", ["torch/lstm_lm", "torch/gru_lm"])
def test_tiny_weights_in_a_recurrent_lm_are_vanishing_not_exploding(name):
    # N(0, 1e-4) weights: the recurrent layer and the head output their default biases, 500x
    # the tiny embedding output; that is not a signal growing through the weights.
    model, example = MODELS[name]()
    break_weights(model, "tiny")
    d = initlab.diagnose(model, example)
    assert d.primary.kind == "vanishing" and "exploding" not in d.kinds, d.kinds
