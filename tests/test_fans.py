"""Fans by shape and layout, and layer-aware fans per module type."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from initlab import fan_in_fan_out, parameter_fans, receptive_field
from initlab.initializers.fans import FanChunk


def _torch_fans(shape):
    return nn.init._calculate_fan_in_and_fan_out(torch.empty(shape))


@pytest.mark.parametrize(
    "shape", [(10, 3), (3, 10), (64, 3, 5), (64, 3, 3, 3), (8, 4, 2, 3, 5), (7, 7, 1, 1)]
)
def test_fans_match_pytorch(shape):
    assert fan_in_fan_out(shape) == _torch_fans(shape)
    assert fan_in_fan_out(torch.empty(shape)) == _torch_fans(shape)
    assert fan_in_fan_out(np.empty(shape)) == _torch_fans(shape)
    assert receptive_field(shape) == math.prod(shape[2:])


def test_keras_layout_docstring_examples():
    assert fan_in_fan_out((64, 3, 3, 3)) == (27, 576)
    assert fan_in_fan_out((3, 3, 3, 64), layout="keras") == (27, 576)
    assert fan_in_fan_out((20, 10), layout="keras") == (20, 10)  # Dense kernel (in, out)
    assert receptive_field((5, 5, 3, 8), layout="keras") == 25


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(1, 9), min_size=2, max_size=5))
def test_property_layouts_agree(torch_shape):
    keras_shape = (*torch_shape[2:], torch_shape[1], torch_shape[0])
    assert fan_in_fan_out(keras_shape, layout="keras") == fan_in_fan_out(torch_shape)
    fan_in, fan_out = fan_in_fan_out(torch_shape)
    assert fan_in * torch_shape[0] == fan_out * torch_shape[1]  # both count every weight
    assert fan_in_fan_out(torch_shape) == _torch_fans(torch_shape)


@pytest.mark.parametrize("shape", [(), (5,), 5])
def test_fewer_than_two_dims_is_a_clear_error(shape):
    with pytest.raises(ValueError, match=r"at least 2 dimensions.*Biases and other 1-D"):
        fan_in_fan_out(shape)


def test_bad_inputs():
    with pytest.raises(ValueError, match="layout must be one of 'torch', 'keras'; got 'tf'"):
        fan_in_fan_out((2, 2), layout="tf")
    with pytest.raises(TypeError, match="expected a shape"):
        fan_in_fan_out("ab")
    with pytest.raises(ValueError, match="must be >= 0"):
        fan_in_fan_out((2, -1))


# --------------------------------------------------------------------- layer-aware fans
def _meta(module_cls, *args, **kwargs):
    # modules on the meta device: no memory, and their default init draws no random numbers
    return module_cls(*args, **kwargs, device="meta")


def _fans(module, name="weight"):
    return [(c.fan_in, c.fan_out) for c in parameter_fans(module, name, getattr(module, name))]


def test_linear_and_conv():
    assert _fans(_meta(nn.Linear, 20, 30)) == [(20, 30)]
    assert _fans(_meta(nn.Conv1d, 4, 8, 5)) == [(20, 40)]
    assert _fans(_meta(nn.Conv2d, 3, 16, 3)) == [(27, 144)]
    assert _fans(_meta(nn.Conv3d, 2, 4, (1, 2, 3))) == [(12, 24)]


@pytest.mark.parametrize("groups", [1, 2, 4, 8])
def test_grouped_conv(groups):
    conv = _meta(nn.Conv2d, 8, 16, 3, groups=groups)
    # each output sees in/g * k inputs; each input feeds out/g * k outputs
    assert _fans(conv) == [(8 // groups * 9, 16 // groups * 9)]


def test_depthwise_conv():
    conv = _meta(nn.Conv2d, 32, 32, 3, groups=32)
    assert _fans(conv) == [(9, 9)]


@pytest.mark.parametrize("groups", [1, 2, 4])
@pytest.mark.parametrize("cls", [nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d])
def test_conv_transpose_follows_the_true_direction(cls, groups):
    conv = _meta(cls, 8, 16, 3, groups=groups)
    rf = 3 ** (len(conv.weight.shape) - 2)
    assert tuple(conv.weight.shape[:2]) == (8, 16 // groups)  # PyTorch stores (in, out/g, *k)
    # the layer maps 8 input channels to 16: fan_in counts inputs of a group, fan_out outputs
    assert _fans(conv) == [(8 // groups * rf, 16 // groups * rf)]
    # the shape alone would get it backwards for groups == 1
    if groups == 1:
        assert fan_in_fan_out(conv.weight.shape) == (16 * rf, 8 * rf)


def test_conv_transpose_fans_equal_the_equivalent_conv():
    # a stride-1 transposed conv is a conv with the kernel flipped and in/out swapped
    deconv, conv = _meta(nn.ConvTranspose2d, 6, 10, 3), _meta(nn.Conv2d, 6, 10, 3)
    assert _fans(deconv) == _fans(conv)


def test_embedding():
    assert _fans(_meta(nn.Embedding, 1000, 64)) == [(1, 64)]
    assert _fans(_meta(nn.EmbeddingBag, 10, 8)) == [(1, 8)]


@pytest.mark.parametrize(
    ("cls", "gates", "acts"),
    [
        (nn.LSTM, ["input gate", "forget gate", "cell", "output gate"],
         ["sigmoid", "sigmoid", "tanh", "sigmoid"]),
        (nn.GRU, ["reset gate", "update gate", "new"], ["sigmoid", "sigmoid", "tanh"]),
        (nn.RNN, ["hidden"], ["tanh"]),
    ],
)  # fmt: skip
def test_recurrent_per_gate_blocks(cls, gates, acts):
    rnn = _meta(cls, 10, 20, num_layers=2)
    for name, fan_in in [("weight_ih_l0", 10), ("weight_hh_l0", 20), ("weight_ih_l1", 20)]:
        chunks = parameter_fans(rnn, name, getattr(rnn, name))
        assert [c.role for c in chunks] == gates
        assert [c.activation for c in chunks] == acts
        assert [(c.start, c.stop) for c in chunks] == [
            (20 * i, 20 * (i + 1)) for i in range(len(gates))
        ]
        assert all((c.fan_in, c.fan_out) == (fan_in, 20) for c in chunks)
    assert parameter_fans(rnn, "bias_ih_l0", rnn.bias_ih_l0) is None


def test_relu_rnn_and_bidirectional():
    rnn = _meta(nn.RNN, 5, 7, nonlinearity="relu", bidirectional=True)
    chunks = parameter_fans(rnn, "weight_ih_l0_reverse", rnn.weight_ih_l0_reverse)
    assert [(c.fan_in, c.fan_out, c.activation) for c in chunks] == [(5, 7, "relu")]


def test_lstm_with_projection():
    lstm = _meta(nn.LSTM, 10, 20, proj_size=5)
    chunks = parameter_fans(lstm, "weight_hh_l0", lstm.weight_hh_l0)  # (4*20, 5)
    assert [(c.fan_in, c.fan_out) for c in chunks] == [(5, 20)] * 4
    (proj,) = parameter_fans(lstm, "weight_hr_l0", lstm.weight_hr_l0)  # (5, 20)
    assert (proj.fan_in, proj.fan_out) == (20, 5)


def test_multihead_attention_in_proj_per_block():
    mha = _meta(nn.MultiheadAttention, 16, 4)
    chunks = parameter_fans(mha, "in_proj_weight", mha.in_proj_weight)
    assert [c.role for c in chunks] == ["query", "key", "value"]
    assert [(c.start, c.stop, c.fan_in, c.fan_out) for c in chunks] == [
        (0, 16, 16, 16), (16, 32, 16, 16), (32, 48, 16, 16)
    ]  # fmt: skip
    assert parameter_fans(mha, "in_proj_bias", mha.in_proj_bias) is None
    assert _fans(mha.out_proj) == [(16, 16)]


def test_multihead_attention_separate_kv_dims():
    mha = _meta(nn.MultiheadAttention, 16, 4, kdim=6, vdim=10)
    assert _fans(mha, "q_proj_weight") == [(16, 16)]
    assert _fans(mha, "k_proj_weight") == [(6, 16)]
    assert _fans(mha, "v_proj_weight") == [(10, 16)]


def test_one_dim_parameters_have_no_fans():
    ln = _meta(nn.LayerNorm, 8)
    assert parameter_fans(ln, "weight", ln.weight) is None
    assert parameter_fans(ln, "bias", ln.bias) is None


def test_fan_chunk_defaults():
    chunk = FanChunk(0, 4, 3, 4)
    assert (chunk.role, chunk.activation) == ("weight", None)
