"""Roles on real architectures: what recipes key on must be right for GPT-2, Llama, T5, BERT,
torch's TransformerEncoder, ViT and ResNet."""

from __future__ import annotations

import pathlib

import pytest
import torch
from torch import nn

import zoo
from initlab.initializers.roles import ROLES, is_zero_centered, roles


def _role(table, name):
    return table[name].role


def test_gpt2_roles_fused_qkv_and_residual_writers_from_data_flow():
    z = zoo.gpt2(n_layer=3)
    table = roles(z.model, z.example)
    assert table.dataflow
    assert table.stacks == {"transformer.h": 3}
    assert _role(table, "transformer.wte.weight") == "embedding"
    assert _role(table, "transformer.wpe.weight") == "position_embedding"
    qkv = table["transformer.h.2.attn.c_attn.weight"]
    assert qkv.role == "attn_qkv" and qkv.block == 2 and qkv.n_blocks == 3
    # Conv1D stores (in, out): fans from the logical shape, q/k/v split along dim 1.
    assert (qkv.fan_in, qkv.fan_out) == (64, 64)
    assert [(c.role, c.dim, c.start, c.stop) for c in qkv.chunks] == [
        ("attn_q", 1, 0, 64), ("attn_k", 1, 64, 128), ("attn_v", 1, 128, 192)
    ]  # fmt: skip
    for i in range(3):
        attn_out = table[f"transformer.h.{i}.attn.c_proj.weight"]
        down = table[f"transformer.h.{i}.mlp.c_proj.weight"]
        assert (attn_out.role, down.role) == ("attn_out", "mlp_down")
        assert attn_out.residual is True and down.residual is True
        assert table[f"transformer.h.{i}.mlp.c_fc.weight"].residual is False
    head = table["lm_head.weight"]
    assert head.role == "head" and head.tied_to == "transformer.wte.weight"
    assert table.dims["d"] == 64 and table.dims["d_ff"] == 256


def test_llama_gated_mlp_and_rmsnorm():
    z = zoo.llama()
    table = roles(z.model, z.example)
    names = {
        "model.layers.1.self_attn.q_proj.weight": "attn_q",
        "model.layers.1.self_attn.k_proj.weight": "attn_k",
        "model.layers.1.self_attn.v_proj.weight": "attn_v",
        "model.layers.1.self_attn.o_proj.weight": "attn_out",
        "model.layers.1.mlp.gate_proj.weight": "mlp_gate",
        "model.layers.1.mlp.up_proj.weight": "mlp_up",
        "model.layers.1.mlp.down_proj.weight": "mlp_down",
        "model.layers.1.input_layernorm.weight": "norm_scale",
        "lm_head.weight": "head",
    }
    for name, role in names.items():
        assert _role(table, name) == role, name
    assert table["model.layers.1.self_attn.o_proj.weight"].residual is True
    assert table["model.norm.weight"].zero_centered is False
    assert table["lm_head.weight"].tied_to is None


def test_t5_encoder_and_decoder_are_separate_stacks_with_cross_attention():
    z = zoo.t5()
    table = roles(z.model, z.example)
    assert table.stacks == {"encoder.block": 2, "decoder.block": 2}
    cross = table["decoder.block.1.layer.1.EncDecAttention.o.weight"]
    assert cross.role == "attn_out" and cross.residual is True and cross.stack == "decoder.block"
    bias = "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"
    assert _role(table, bias) == "rel_attn_bias"
    assert _role(table, "decoder.block.0.layer.2.DenseReluDense.wo.weight") == "mlp_down"
    assert table.dims["d_kv"] == 16 and table.dims["n_heads"] == 4


def test_bert_post_norm_projections_are_not_residual_writers_but_keep_their_roles():
    z = zoo.bert()
    table = roles(z.model, z.example)
    out = table["bert.encoder.layer.0.attention.output.dense.weight"]
    down = table["bert.encoder.layer.0.output.dense.weight"]
    assert (out.role, down.role) == ("attn_out", "mlp_down")
    # Post-LN: LayerNorm(x + dense(h)), so the projection's output is not added unchanged.
    assert out.residual is False and down.residual is False
    assert _role(table, "bert.encoder.layer.0.intermediate.dense.weight") == "mlp_in"
    assert _role(table, "bert.embeddings.token_type_embeddings.weight") == "position_embedding"


def test_multihead_attention_in_proj_is_three_row_blocks():
    z = zoo.transformer_encoder()
    table = roles(z.model, z.example)
    row = table["layers.1.self_attn.in_proj_weight"]
    assert row.role == "attn_qkv" and row.block == 1
    assert [(c.role, c.dim, c.start, c.stop) for c in row.chunks] == [
        ("attn_q", 0, 0, 64), ("attn_k", 0, 64, 128), ("attn_v", 0, 128, 192)
    ]  # fmt: skip
    assert _role(table, "layers.1.self_attn.out_proj.weight") == "attn_out"


def test_vit_unnamed_mlp_layers_are_found_from_the_data_flow():
    z = zoo.vit()
    table = roles(z.model, z.example)
    assert (_role(table, "layers.0.mlp.0.weight"), table["layers.0.mlp.0.weight"].source) == (
        "mlp_in", "dataflow"
    )  # fmt: skip
    assert (_role(table, "layers.0.mlp.3.weight"), table["layers.0.mlp.3.weight"].source) == (
        "mlp_down", "dataflow"
    )  # fmt: skip
    assert _role(table, "conv_proj.weight") == "conv_stem"
    assert _role(table, "heads.head.weight") == "classifier"
    assert _role(table, "pos_embedding") == "position_embedding"
    # Without an example input the same layers fall back on names: generic linears.
    assert _role(roles(z.model), "layers.0.mlp.0.weight") == "linear"


def test_resnet_stem_branch_out_shortcut_and_global_block_index():
    z = zoo.resnet_basic()
    table = roles(z.model, z.example)
    assert table.stacks == {"BasicBlock": 8}
    assert _role(table, "conv1.weight") == "conv_stem"
    assert _role(table, "layer2.0.conv1.weight") == "conv_body"
    assert _role(table, "layer2.0.conv2.weight") == "conv_branch_out"
    assert _role(table, "layer2.0.bn2.weight") == "norm_branch_out"
    assert _role(table, "layer2.0.downsample.0.weight") == "conv_shortcut"
    assert _role(table, "layer2.0.downsample.1.weight") == "norm_scale"
    assert table["layer2.0.conv1.weight"].block == 2
    assert _role(table, "fc.weight") == "classifier"


class _GemmaNorm(nn.Module):
    """An RMSNorm whose forward scales by (1 + w), stored as zeros (Gemma, Qwen3.5)."""

    def __init__(self, dim):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(dim))

    def forward(self, x):
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)
        return x * (1.0 + self.weight)


def test_zero_centred_norms_are_measured_not_guessed():
    assert is_zero_centered(_GemmaNorm(8)) is True
    assert is_zero_centered(nn.LayerNorm(8)) is False
    norm = _GemmaNorm(8)
    with torch.no_grad():
        norm.weight.fill_(0.25)
    is_zero_centered(norm)
    assert torch.all(norm.weight == 0.25)  # the probe restores the weight


def test_overrides_by_glob_win_and_bad_roles_name_the_closest():
    z = zoo.vit()
    table = roles(z.model, overrides={"layers.*.mlp.0.weight": "mlp_in"})
    assert table["layers.1.mlp.0.weight"].role == "mlp_in"
    assert table["layers.1.mlp.0.weight"].source == "override"
    with pytest.raises(ValueError, match="did you mean 'mlp_down'"):
        roles(z.model, overrides={"*": "mlp_dwn"})
    with pytest.raises(TypeError, match=r"nn\.Module"):
        roles("gpt2")


def test_table_str_and_to_dict():
    z = zoo.gpt2()
    table = roles(z.model)
    text = str(table)
    assert "attn_qkv [attn_q, attn_k, attn_v]" in text and "L=2" in text
    data = table.to_dict()
    assert data["stacks"] == {"transformer.h": 2}
    assert {r["role"] for r in data["rows"]} <= set(ROLES)
    assert data["rows"][0]["shape"] == [128, 64]


def test_cli_roles_prints_the_table(tmp_path, capsys):
    from initlab.cli import main

    path = tmp_path / "m.py"
    here = str(pathlib.Path(__file__).parent)
    path.write_text(
        f"import sys\nsys.path.insert(0, {here!r})\nimport zoo\n"
        "def factory():\n    return zoo.gpt2().model\n"
    )
    assert main(["roles", "--model", f"{path}:factory", "--tokens", "8"]) == 0
    out = capsys.readouterr().out
    assert "transformer.h.1.mlp.c_proj.weight" in out and "data flow" in out
    assert main(["roles", "--model", f"{path}:factory", "--override", "bad"]) == 2


def _hf_model(model_class, config_class, **config):
    transformers = pytest.importorskip("transformers")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return getattr(transformers, model_class)(getattr(transformers, config_class)(**config))


def test_towers_and_encoder_decoder_count_their_own_blocks():
    """CLIP's two towers have blocks of one class under two parents, both paths through an
    ``encoder``: each tower is its own stack. Encoder and decoder stacks are apart even where
    the block class is shared (T5)."""
    tower = dict(hidden_size=32, intermediate_size=64, num_attention_heads=4)
    clip = _hf_model("CLIPModel", "CLIPConfig", projection_dim=16,
                     text_config=dict(tower, vocab_size=99, num_hidden_layers=2,
                                      max_position_embeddings=16),
                     vision_config=dict(tower, num_hidden_layers=3, image_size=16,
                                        patch_size=8))  # fmt: skip
    table = roles(clip)
    assert table.stacks == {"text_model.encoder.layers": 2, "vision_model.encoder.layers": 3}
    fc2 = table["vision_model.encoder.layers.2.mlp.fc2.weight"]
    assert (fc2.block, fc2.n_blocks, fc2.stack) == (2, 3, "vision_model.encoder.layers")
    assert table["text_model.encoder.layers.1.mlp.fc2.weight"].n_blocks == 2
    seq = dict(vocab_size=99, d_model=32, encoder_layers=2, decoder_layers=3,
               encoder_ffn_dim=64, decoder_ffn_dim=64, encoder_attention_heads=4,
               decoder_attention_heads=4, pad_token_id=0, bos_token_id=1, eos_token_id=2,
               decoder_start_token_id=2)  # fmt: skip
    bart = roles(_hf_model("BartForConditionalGeneration", "BartConfig", **seq))
    assert bart.stacks == {"model.encoder.layers": 2, "model.decoder.layers": 3}
    whisper = roles(_hf_model("WhisperForConditionalGeneration", "WhisperConfig", **seq,
                              num_mel_bins=8, max_source_positions=16,
                              max_target_positions=16))  # fmt: skip
    assert whisper.stacks == {"model.encoder.layers": 2, "model.decoder.layers": 3}
    t5 = roles(_hf_model("T5ForConditionalGeneration", "T5Config", vocab_size=99, d_model=32,
                         d_kv=8, d_ff=64, num_heads=4, num_layers=2, num_decoder_layers=3,
                         pad_token_id=0, eos_token_id=1))  # fmt: skip
    assert t5.stacks == {"encoder.block": 2, "decoder.block": 3}


class _Attention(nn.Module):
    def __init__(self):
        super().__init__()
        self.q, self.o = nn.Linear(8, 8), nn.Linear(8, 8)


class _Mixer(nn.Module):
    def __init__(self):
        super().__init__()
        self.in_proj, self.out_proj = nn.Linear(8, 16), nn.Linear(16, 8)


def test_one_container_is_one_stack_whatever_its_block_classes():
    """A hybrid model alternating two block classes in one list (Jamba-style) has one residual
    stream of that depth."""
    model = nn.Module()
    with torch.random.fork_rng(devices=[]):
        model.layers = nn.ModuleList([_Mixer() if i % 2 else _Attention() for i in range(4)])
    table = roles(model)
    assert table.stacks == {"layers": 4}
    row = table["layers.3.out_proj.weight"]
    assert (row.block, row.n_blocks) == (3, 4)
