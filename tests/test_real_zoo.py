"""The conformance registry (``tests/real_zoo.py``) builds real models reproducibly: same seed,
same weights; the caller's RNG untouched; the example runs to finite logits of the stated
width; the recorded parameter counts and dropout flags are what a build gives. Coverage counts
are checked without building anything."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

import real_zoo

# A few cheap entries of each family (each builds and runs in well under a second).
SAMPLE = [
    "squeezenet1_1", "shufflenet_v2_x0_5", "mobilenet_v3_small",
    "timm/test_vit", "timm/test_resnet", "timm/test_efficientnet", "timm/test_convnext",
    "hf/gpt2", "hf/llama", "hf/bert", "hf/t5", "hf/whisper", "hf/clip", "hf/vit", "hf/mamba",
    "torch/lstm", "torch/transformer_encoder",
]  # fmt: skip


def _state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("name", SAMPLE)
def test_build_is_seeded_and_leaves_the_global_rng_alone(name):
    entry = real_zoo.REGISTRY[name]
    rng = torch.random.get_rng_state()
    first = _state(entry.build(0))
    assert torch.equal(rng, torch.random.get_rng_state()), "build used the global RNG"
    again = _state(entry.build(0))
    other = _state(entry.build(1))
    assert first.keys() == again.keys()
    differing = [k for k in first if not torch.equal(first[k], again[k])]
    assert not differing, f"same seed, different tensors: {differing[:5]}"
    assert any(not torch.equal(first[k], other[k]) for k in first), "the seed changed nothing"


@pytest.mark.parametrize("name", SAMPLE)
def test_example_gives_finite_logits_with_one_column_per_class(name):
    entry = real_zoo.REGISTRY[name]
    model = entry.build(0)
    example = entry.example()
    again = entry.example()
    pairs = example.items() if isinstance(example, dict) else [("x", example)]
    for key, value in pairs:
        other = again[key] if isinstance(again, dict) else again
        assert torch.equal(value, other), f"example {key!r} is not reproducible"
    rng = torch.random.get_rng_state()
    logits = real_zoo.forward_logits(entry, model, example)
    assert torch.equal(rng, torch.random.get_rng_state()), "the forward used the global RNG"
    assert logits.shape[0] == 2 and logits.shape[-1] == entry.columns(2), logits.shape
    assert torch.isfinite(logits).all()
    measured = entry.measured
    assert measured is not None, f"{name} has no MEASURED row"
    assert sum(p.numel() for p in model.parameters()) == measured.params
    assert bool(real_zoo.stochastic_modules(model)) == measured.dropout


def test_stochastic_modules_finds_dropout_and_skips_zero_rates():
    model = torch.nn.Sequential(torch.nn.Identity(), torch.nn.Dropout(0.0))
    assert real_zoo.stochastic_modules(model) == []
    model.append(torch.nn.Dropout(0.1))
    assert real_zoo.stochastic_modules(model) == ["2"]


def test_coverage_without_building():
    import torchvision
    from timm.models import _registry

    by_family: dict[str, set[str]] = {}
    for entry in real_zoo.REGISTRY.values():
        by_family.setdefault(entry.family, set()).add(entry.group)
    assert len(by_family["timm"]) >= 30, sorted(by_family["timm"])
    assert len(by_family["hf"]) >= 30, sorted(by_family["hf"])
    classification = set(torchvision.models.list_models(module=torchvision.models))
    assert set(real_zoo.torchvision_names()) == classification
    # Each timm entry is a registered model filed under the module its group names.
    timm_entries = [e for e in real_zoo.REGISTRY.values() if e.family == "timm"]
    module_of = _registry._model_to_module
    wrong = [(e.name, e.group) for e in timm_entries
             if module_of.get(e.name.removeprefix("timm/")) != e.group]  # fmt: skip
    assert not wrong, wrong
    missing = [name for name in real_zoo.REGISTRY if name not in real_zoo.MEASURED]
    assert not missing, f"entries without a MEASURED row: {missing}"
    assert set(real_zoo.MEASURED) <= set(real_zoo.REGISTRY), "MEASURED rows of no entry"


def test_max_params_selects_a_cheap_subset():
    cheap = real_zoo.torchvision_names(max_params=5_000_000)
    assert "squeezenet1_1" in cheap and "regnet_y_128gf" not in cheap
    assert all(real_zoo.REGISTRY[n].params <= 5_000_000 for n in cheap)
    assert len(cheap) < len(real_zoo.torchvision_names())


# ---------------------------------------------------------------------- the conformance script
def _conformance():
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    try:
        import zoo_conformance
    finally:
        sys.path.pop(0)
    return zoo_conformance


def test_conformance_checks_report_exceptions_and_the_table_counts_them():
    zc = _conformance()
    entry = real_zoo.REGISTRY["torch/lstm"]

    def boom(entry):
        raise ValueError("boom\nsecond line")

    checks = {"init_runs": zc.CHECKS["init_runs"], "keeps_intent": zc.CHECKS["keeps_intent"],
              "boom": boom}  # fmt: skip
    results = zc.run_checks(entry, checks)
    zc._MEMO.clear()
    assert results["boom"] == (False, "ValueError: boom")
    assert results["init_runs"][0] is True, results["init_runs"]
    assert results["keeps_intent"] == (None, "no frozen parameters, no buffers")
    text = zc.markdown([(entry, results)], list(checks), "cmd", 1.0)
    assert "| torch | 1 | 1 ✓ / 0 ✗ / 0 – | 0 ✓ / 0 ✗ / 1 – | 0 ✓ / 1 ✗ / 0 – |" in text
    assert "| torch/lstm | torch | rnn | 0.02M | ✓ " in text
    assert "| ✗ ValueError: boom |" in text


def test_state_hash_sees_one_changed_element():
    zc = _conformance()
    model = real_zoo.REGISTRY["torch/gru"].build(0)
    before = zc.state_hash(model)
    assert zc.state_hash(real_zoo.REGISTRY["torch/gru"].build(0)) == before
    with torch.no_grad():
        model.head.bias[3] += 1e-6
    assert zc.state_hash(model) != before


# A sample of the conformance run (issue 24): per family, models whose structure tripped the
# default path (registration order, frozen tables, zero-init residual scales, fx touching
# BatchNorm counters, a layer drop): the checks that need no second process must pass.
_SAMPLE = ["hf/mistral", "hf/whisper", "hf/mamba", "hf/wav2vec2", "timm/efficientformerv2_s0",
           "mobilenet_v2", "resnet18", "torch/lstm"]  # fmt: skip


@pytest.mark.parametrize("name", _SAMPLE)
def test_conformance_sample_keeps_intent_and_agrees_with_a_given_example(name):
    zc = _conformance()
    checks = {key: zc.CHECKS[key] for key in ("init_runs", "keeps_intent", "example_agrees")}
    try:
        results = zc.run_checks(real_zoo.REGISTRY[name], checks)
    finally:
        zc._MEMO.clear()
    failed = {key: detail for key, (ok, detail) in results.items() if ok is False}
    assert not failed, failed
