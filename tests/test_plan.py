"""``plan_init`` / ``apply_plan``: one plan, visible as data, filled by one engine; recipes
honour every ``init_model`` argument or refuse it (issue 24)."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from initlab import InitPlan, apply_plan, init_model, plan_init


def _model() -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.emb = nn.Embedding(50, 16)
                self.fc1, self.fc2 = nn.Linear(16, 32), nn.Linear(32, 50)
                self.norm = nn.LayerNorm(32)

            def forward(self, ids):
                return self.fc2(self.norm(torch.relu(self.fc1(self.emb(ids)))))

        return Net()


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_plan_init_draws_nothing_and_says_what_it_will_do():
    model = _model()
    before = _state(model)
    plan = plan_init(model)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert isinstance(plan, InitPlan) and plan.model is model
    row = plan["fc1.weight"]
    assert (row.action, row.activation, row.activation_source) == ("weight", "relu", "trace")
    assert row.target_std == pytest.approx((2 / 16) ** 0.5)
    assert plan.example_source == "first layer"  # an Embedding: token ids
    assert "reason" in str(plan) and "fc1.weight" in str(plan)
    data = json.loads(plan.to_json())
    assert [r["parameter"] for r in data["rows"]] == [r.parameter for r in plan.rows]
    assert "realized_std" not in data["rows"][0] and data["example_source"] == "first layer"


def test_apply_plan_equals_init_model_and_runs_with_any_seed():
    model, other = _model(), _model()
    plan = plan_init(model)
    first = apply_plan(model, plan, seed=3)
    applied = _state(model)
    init_model(other, seed=3)
    assert all(torch.equal(applied[k], v) for k, v in other.state_dict().items())
    apply_plan(model, plan, seed=4)
    assert not torch.equal(model.fc1.weight, applied["fc1.weight"])
    again = apply_plan(model, plan, seed=3)
    assert all(torch.equal(applied[k], v) for k, v in model.state_dict().items())
    assert [r.realized_std for r in again.rows] == [r.realized_std for r in first.rows]
    assert all(r.realized_std is None for r in plan.rows)  # the plan itself is not a report


def test_apply_plan_refuses_a_plan_of_another_model():
    plan = plan_init(_model())
    with pytest.raises(ValueError, match="made for another model object"):
        apply_plan(_model(), plan, seed=0)
    with pytest.raises(TypeError, match="needs an InitPlan"):
        apply_plan(_model(), {"rows": []}, seed=0)


@pytest.mark.parametrize("rng", ["counter", "torch"])
def test_recipes_honour_bias_rules_and_rng(rng):
    model = _model()
    report = init_model(model, recipe="gpt2", seed=0, bias="ones", rng=rng,
                        rules={"fc2.weight": "zeros", "norm.*": "keep"})  # fmt: skip
    assert torch.equal(model.fc1.bias, torch.ones(32))  # was zeros whatever bias said
    assert not model.fc2.weight.detach().any()
    assert report["fc2.weight"].note.startswith("rule")
    std = float(model.fc1.weight.detach().std())
    assert abs(std / 0.02 - 1) < 5 / (2 * model.fc1.weight.numel()) ** 0.5 * 2


def test_recipe_rng_counter_and_torch_draw_different_streams_from_one_seed():
    a, b = _model(), _model()
    init_model(a, recipe="gpt2", seed=0)
    init_model(b, recipe="gpt2", seed=0, rng="torch")
    assert not torch.equal(a.fc1.weight, b.fc1.weight)
    c = _model()
    init_model(c, recipe="gpt2", seed=0)
    assert torch.equal(a.fc1.weight, c.fc1.weight)


def test_recipe_refuses_what_it_does_not_use():
    with pytest.raises(ValueError, match="layouts is not used with recipe"):
        init_model(_model(), recipe="gpt2", layouts={"Linear": "in_out"})
    with pytest.raises(ValueError, match="both scheme='xavier_normal' and recipe='gpt2'"):
        init_model(_model(), "xavier_normal", recipe="gpt2")
    with pytest.raises(ValueError, match="rng"):
        init_model(_model(), recipe="gpt2", rng="numpy")
