"""recipe_check: the doctor's predictions under a recipe hold on a model initialized with it,
and fail on one that is not."""

from __future__ import annotations

import pytest
import torch

import initlab
import zoo
from initlab.doctor.recipe_check import TOLERANCE, recipe_check


def test_a_model_initialized_with_the_recipe_matches_its_predictions():
    z = zoo.gpt2(n_layer=4)
    initlab.init_model(z.model, recipe="gpt2", seed=0)
    z.model.lm_head.weight.grad = marker = torch.ones_like(z.model.lm_head.weight)
    check = recipe_check(z.model, z.example, "gpt2")
    assert z.model.lm_head.weight.grad is marker  # the caller's gradients are left alone
    assert z.model.transformer.h[0].attn.c_attn.weight.grad is None
    assert len(check.layers) == 16 and check.off_recipe == []
    for layer in check.layers:
        assert layer.out_ratio == pytest.approx(1, abs=0.15), layer
        if layer.role != "attn_qkv":
            assert layer.grad_ratio == pytest.approx(1, abs=0.15), layer
    growth = check.growth()["transformer.h"]
    assert growth["observed"] == pytest.approx(growth["reference"], rel=0.1)
    text = str(check)
    assert "0 of 16 layers off" in text and "1/sqrt(2L)" in text
    assert check.to_dict()["layers"][0]["verdict"] == "as predicted"


def test_weights_that_do_not_follow_the_recipe_are_flagged():
    z = zoo.gpt2(n_layer=4)
    initlab.init_model(z.model, recipe="megatron", seed=0, sigma=0.1)  # 5x the recipe's std
    check = recipe_check(z.model, z.example, "gpt2")
    assert len(check.off_recipe) == 16
    assert all(layer.out_ratio > TOLERANCE for layer in check.layers)


def test_without_depth_scaling_the_stream_grows_past_the_reference():
    z = zoo.gpt2(n_layer=8)
    initlab.init_model(z.model, recipe="olmo2", seed=0, sigma=0.2)
    check = recipe_check(z.model, z.example, "olmo2", sigma=0.2)
    assert check.off_recipe == []
    growth = check.growth()["transformer.h"]
    assert growth["observed"] > 2 * growth["reference"]


def test_diagnose_knows_the_recipe():
    """diagnose(..., recipe=NAME) carries the recipe check in its text and JSON."""
    import initlab
    from zoo import gpt2

    entry = gpt2(seed=0)
    initlab.init_model(entry.model, recipe="gpt2", seed=0)
    plain = initlab.diagnose(entry.model, entry.example)
    assert plain.recipe is None and "recipe" not in plain.to_dict()
    result = initlab.diagnose(entry.model, entry.example, recipe="gpt2")
    assert result.recipe is not None and result.recipe.recipe == "gpt2"
    assert result.to_dict()["recipe"]["recipe"] == "gpt2"
    assert str(result.recipe) in str(result)
