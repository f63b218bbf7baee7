"""audit_init: fingerprints that see every element and its position, and exact statistics."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import initlab


def _model(dtype=torch.float32) -> nn.Module:
    with torch.device("meta"):
        model = nn.Sequential(nn.Linear(30, 40), nn.ReLU(), nn.Linear(40, 10))
    model = model.to_empty(device="cpu").to(dtype)
    initlab.init_model(model, "he_normal", bias="uniform:low=-1,high=1", seed=0)
    return model


def test_same_values_same_fingerprints_and_statistics_match():
    a, b = initlab.audit_init(_model()), initlab.audit_init(_model())
    assert a.differences(b) == [] and a.rows == b.rows
    weight = _model()[0].weight.detach().double()
    row = a["0.weight"]
    assert row.shape == (40, 30) and row.dtype == "float32"
    # fixed-point sums: within 2^-32 of the largest |value| per element
    assert row.mean == pytest.approx(weight.mean().item(), abs=1e-8)
    assert row.std == pytest.approx(weight.std().item(), rel=1e-8)
    assert len(row.hash) == 16


def test_one_changed_element_or_a_swap_changes_the_hash():
    reference = initlab.audit_init(_model())
    changed = _model()
    with torch.no_grad():
        w = changed[0].weight
        w[3, 4] = torch.nextafter(w[3, 4], torch.tensor(math.inf))  # one ulp
    assert [line.split(":")[0] for line in initlab.audit_init(changed).differences(reference)] == [
        "0.weight"
    ]
    swapped = _model()
    with torch.no_grad():
        w = swapped[2].weight
        w[0, 0], w[1, 1] = w[1, 1].clone(), w[0, 0].clone()
    diff = initlab.audit_init(swapped).differences(reference)
    assert len(diff) == 1 and diff[0].startswith("2.weight")
    # a swap keeps mean and std: only the hash, which sees positions, tells
    assert initlab.audit_init(swapped)["2.weight"].mean == reference["2.weight"].mean


def test_half_precision_and_meta_parameters():
    report = initlab.audit_init(_model(torch.bfloat16))
    assert report["0.weight"].dtype == "bfloat16" and report["0.weight"].hash is not None
    with torch.device("meta"):
        meta = nn.Linear(3, 2)
    row = initlab.audit_init(meta)["weight"]
    assert row.hash is None and row.mean is None


def test_report_table_dict_and_errors():
    report = initlab.audit_init(_model())
    assert "0.weight" in str(report) and report.to_dict()["rows"][0]["shape"] == [40, 30]
    with pytest.raises(KeyError, match="no fingerprint for 'nope'"):
        report["nope"]
    with pytest.raises(TypeError, match=r"audit_init needs a torch\.nn\.Module; got Tensor"):
        initlab.audit_init(torch.zeros(3))
