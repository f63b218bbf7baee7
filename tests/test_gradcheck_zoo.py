"""gradcheck on models nobody at initlab wrote (tests/zoo.py): Hugging Face GPT-2, BERT, Llama,
T5, torchvision-style ResNets (in-place ``out += identity``, batch norm, max-pool), a ViT and an
LSTM. Correct autograd gradients pass; a planted bug is still found and named."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from initlab.gradient_check.check import gradcheck, plant_bug
from initlab.gradient_check.model_io import KeepFloat64, predictions, switch_off_randomness
from zoo import ZOO

# small versions of each zoo model, to keep the suite fast; the benchmark runs the full ones
SMALL = {
    "gpt2": {},
    "bert": {},
    "llama": {},
    "t5": {"tokens": 8},
    "resnet_basic": {"batch": 4, "size": 16},
    "resnet_bottleneck": {"batch": 4, "size": 16, "layers": (1, 1, 1, 1)},
    "vit": {"batch": 4},
    "lstm": {},
}
# a parameter of each model whose backward pass the planted bug breaks
PLANT = {
    "gpt2": "transformer.h.0.mlp.c_fc.weight",  # Hugging Face Conv1D, (in, out) layout
    "bert": "bert.encoder.layer.0.intermediate.dense.weight",
    "llama": "model.layers.0.mlp.up_proj.weight",
    "t5": "encoder.block.0.layer.1.DenseReluDense.wi.weight",
    "resnet_basic": "layer2.0.conv1.weight",
    "resnet_bottleneck": "layer1.0.conv2.weight",
    "vit": "heads.head.weight",  # zero-initialised head: everything upstream has zero grad
    "lstm": "rnn.weight_hh_l0",
}


def _case(name: str):
    zoo = ZOO[name](seed=0, **SMALL[name])
    example = zoo.example
    if isinstance(example, dict):  # token ids in, logits (batch, tokens, vocab) out
        return zoo.model, example, example["input_ids"]
    batch = example.shape[0]
    return zoo.model, example, torch.arange(batch) % 4


@pytest.mark.parametrize("name", list(SMALL))
def test_zoo_models_pass_and_a_planted_bug_is_named(name):
    model, inputs, targets = _case(name)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    check = gradcheck(model, "cross_entropy", inputs, targets, mode="fast", dropout="off")
    assert check.verdict == "correct", str(check)
    if name.startswith("resnet"):
        # vmap ran everywhere: fast mode batches several tensors per call, and where the
        # downsample branch is batched alone (out += identity under vmap fails) the in-place
        # add is made out of place, after a check against the loop
        assert check.vectorized
        assert not any("in a loop" in n for n in check.notes)
        # two rounds of directions: at most half the 2 * 7 * (T + 1) of one round of 7
        assert check.evaluations < 7 * (len(check.tensors) + 1)
    buggy = gradcheck(plant_bug(model, PLANT[name], -1.0), "cross_entropy", inputs, targets,
                      mode="fast", directions=3, dropout="off")  # fmt: skip
    assert buggy.verdict == "bug" and buggy.worst_tensor == PLANT[name], str(buggy)
    assert [t.name for t in buggy.tensors if t.verdict == "bug"] == [PLANT[name]]
    # the user's model is untouched (the check works on a float64 copy)
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())


def test_hf_model_output_and_sequence_logits():
    model, inputs, ids = _case("gpt2")
    reference = copy.deepcopy(model).eval()
    with torch.no_grad():
        outputs = reference(**inputs, labels=ids)
    assert "Output" in type(outputs).__name__  # a ModelOutput, not a tensor
    assert predictions(outputs).shape == (*ids.shape, 128)
    # the model's own loss, found by name, with labels passed as a keyword input
    check = gradcheck(model, "model", {**inputs, "labels": ids}, None, mode="fast",
                      dropout="off")  # fmt: skip
    assert check.verdict == "correct"
    assert check.loss == pytest.approx(float(outputs.loss), rel=1e-5)  # float64 vs float32


def test_every_dropout_is_off_including_attention_dropout():
    model, inputs, ids = _case("llama")
    model.config.attention_dropout = 0.5  # functional dropout inside the attention
    for layer in model.model.layers:
        layer.self_attn.attention_dropout = 0.5
    model.train()
    with pytest.raises(ValueError, match=r"dropout is active.*self_attn"):
        gradcheck(model, "cross_entropy", inputs, ids, mode="fast")
    check = gradcheck(model, "cross_entropy", inputs, ids, mode="fast", dropout="off")
    assert check.verdict == "correct"
    # batch norm keeps its batch statistics when the rest is switched to eval mode
    with torch.random.fork_rng(devices=[]):  # nn.Linear's default init draws
        net = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3), nn.Dropout(0.5))
    switch_off_randomness(net)
    assert net[1].training and not net[2].training and not net[0].training


def test_float32_casts_inside_a_float64_forward_are_kept_in_float64():
    # LlamaRMSNorm computes its variance in float32: without this the check sees a staircase
    x = torch.randn(3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    with KeepFloat64() as keep:
        y = x.to(torch.float32)
        z = torch.softmax(x, dim=-1, dtype=torch.float32)
        w = x.float().to("cpu", torch.float16)
    assert y.dtype == z.dtype == w.dtype == torch.float64
    assert keep.skipped["Tensor.to(torch.float32)"] == 1
    model, inputs, ids = _case("llama")
    check = gradcheck(model, "cross_entropy", inputs, ids, mode="fast", dropout="off")
    assert any("lower precision" in n for n in check.notes)


def test_batch_norm_on_two_examples_is_never_called_a_bug():
    # at batch 2 and 16x16 inputs, layer3/4's batch norms normalise over 2 values per channel:
    # PyTorch's correct gradients then differ from finite differences at eps 1e-7 by up to
    # 1e-2 (conv1.weight), which used to read "bug"; the difference shrinks with the step
    zoo = ZOO["resnet_basic"](seed=1, batch=2, size=16)
    check = gradcheck(zoo.model, "cross_entropy", zoo.example, torch.tensor([0, 1]),
                      mode="fast", seed=1)  # fmt: skip
    # Now each direction is measured at the step that balances truncation and the measured
    # round-off of this loss (far worse than float64's), so the rows agree at smaller steps.
    assert check.verdict in ("correct", "look closer"), str(check)
    assert min(t.step for t in check.tensors) < 1e-8
    assert any("rounds worse than float64" in n for n in check.notes)
    if check.verdict == "look closer":
        assert any("very few values per channel" in n for n in check.notes)
