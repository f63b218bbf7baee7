"""``init_model`` with default arguments on the real classes of transformers, timm and
torchvision (issue 24): traced without an example, activations by what they compute, the
model's intent kept, summed embeddings at one scale. Models are built from small configs;
nothing is downloaded."""

from __future__ import annotations

import math
import warnings

import pytest
import timm
import torch
import torch.nn.functional as F
import torchvision
import transformers
from torch import nn

from initlab import build, init_model
from initlab.initializers.known_activations import _elementwise_kind


def _built(make):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return make()


def _ids(vocab: int, batch: int = 2, tokens: int = 8) -> torch.Tensor:
    return torch.randint(0, vocab, (batch, tokens), generator=torch.Generator().manual_seed(1))


def _first_loss(model: nn.Module, vocab: int) -> float:
    """Cross-entropy of the logits on random tokens against other random tokens (a tied model
    predicts its own input well at init: the labels must not be the inputs)."""
    labels = torch.randint(0, vocab, (4, 16), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        logits = model.eval()(input_ids=_ids(vocab, 4, 16)).logits
    return float(F.cross_entropy(logits.reshape(-1, vocab), labels.reshape(-1)))


_SMALL = dict(
    vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
    num_attention_heads=4,
)  # fmt: skip
_DECODERS = {
    "mistral": lambda: transformers.MistralForCausalLM(
        transformers.MistralConfig(**_SMALL, num_key_value_heads=2)
    ),
    "qwen2": lambda: transformers.Qwen2ForCausalLM(
        transformers.Qwen2Config(**_SMALL, num_key_value_heads=2)
    ),
    "gpt_neox": lambda: transformers.GPTNeoXForCausalLM(transformers.GPTNeoXConfig(**_SMALL)),
    "phi": lambda: transformers.PhiForCausalLM(transformers.PhiConfig(**_SMALL)),
    "falcon": lambda: transformers.FalconForCausalLM(
        transformers.FalconConfig(
            vocab_size=128, hidden_size=32, num_hidden_layers=2, num_attention_heads=4
        )
    ),
    "opt": lambda: transformers.OPTForCausalLM(
        transformers.OPTConfig(
            vocab_size=128,
            hidden_size=32,
            ffn_dim=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            word_embed_proj_dim=32,
        )
    ),
    "gemma2": lambda: transformers.Gemma2ForCausalLM(
        transformers.Gemma2Config(**_SMALL, num_key_value_heads=2, head_dim=8)
    ),
}


@pytest.mark.parametrize("name", sorted(_DECODERS))
def test_without_an_example_the_plan_equals_the_plan_from_a_real_batch(name):
    model = _built(_DECODERS[name])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing is guessed, so nothing warns
        default = init_model(model, seed=0)
    given = init_model(model, seed=0, example={"input_ids": _ids(128)})
    assert default.example_source == "hugging face config"
    assert [(r.parameter, r.activation, r.gain, r.target_std) for r in default.rows] == [
        (r.parameter, r.activation, r.gain, r.target_std) for r in given.rows
    ]
    assert not [r for r in default.rows if r.activation_source == "order"]


def test_mistral_down_proj_and_opt_out_proj_are_linear_not_the_neighbours_activation():
    mistral = init_model(_built(_DECODERS["mistral"]), seed=0)
    assert mistral["model.layers.0.mlp.down_proj.weight"].activation == "linear"
    assert mistral["model.layers.0.mlp.gate_proj.weight"].activation == "silu"
    opt = init_model(_built(_DECODERS["opt"]), seed=0)
    assert opt["model.decoder.layers.0.self_attn.out_proj.weight"].activation == "linear"
    assert opt["model.decoder.layers.0.fc1.weight"].activation == "relu"


def test_gemma2_logit_soft_cap_is_the_identity_at_init_scale():
    model = _built(_DECODERS["gemma2"])
    report = init_model(model, seed=0)
    tied = report["model.embed_tokens.weight"]
    assert (tied.activation, tied.gain) == ("linear", 1.0)  # not tanh's 5/3
    assert abs(_first_loss(model, 128) / math.log(128) - 1) < 0.15  # 9.3 / 7.6 with tanh's gain


def test_summed_embeddings_share_the_scale_of_the_tied_token_embedding():
    config = transformers.RobertaConfig(
        vocab_size=256, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=128, max_position_embeddings=64,
    )  # fmt: skip
    model = _built(lambda: transformers.RobertaForMaskedLM(config))
    report = init_model(model, seed=0)
    word = report["roberta.embeddings.word_embeddings.weight"]
    assert word.target_std == pytest.approx(1 / math.sqrt(64))  # its output use: d_model in
    for name in ("position_embeddings", "token_type_embeddings"):
        row = report[f"roberta.embeddings.{name}.weight"]
        assert row.target_std == word.target_std and "summed with" in row.note
    assert abs(_first_loss(model, 256) / math.log(256) - 1) < 0.15


def test_frozen_sinusoidal_positions_of_whisper_are_kept():
    config = transformers.WhisperConfig(
        vocab_size=128, d_model=32, encoder_layers=1, decoder_layers=1,
        encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=64,
        decoder_ffn_dim=64, num_mel_bins=16, max_source_positions=16,
        max_target_positions=32, pad_token_id=1, bos_token_id=2, eos_token_id=3,
        decoder_start_token_id=2,
    )  # fmt: skip
    model = _built(lambda: transformers.WhisperForConditionalGeneration(config))
    positions = model.model.encoder.embed_positions.weight
    assert not positions.requires_grad
    before = positions.detach().clone()
    report = init_model(model, seed=0)
    assert torch.equal(positions, before)
    row = report["model.encoder.embed_positions.weight"]
    assert row.action == "keep" and "frozen" in row.note
    assert report.example_source == "hugging face config"


def test_mamba_keeps_its_time_step_bias_and_state_parameters():
    config = transformers.MambaConfig(
        vocab_size=64, hidden_size=16, state_size=4, num_hidden_layers=1, expand=2,
        conv_kernel=2,
    )  # fmt: skip
    model = _built(lambda: transformers.MambaForCausalLM(config))
    mixer = model.backbone.layers[0].mixer
    before = {n: p.detach().clone() for n, p in mixer.named_parameters()}
    report = init_model(model, seed=0)
    for name in ("dt_proj.bias", "A_log", "D"):
        assert torch.equal(mixer.get_parameter(name), before[name]), name
        assert report[f"backbone.layers.0.mixer.{name}"].action == "keep"
    assert "time-step bias" in report["backbone.layers.0.mixer.dt_proj.bias"].note
    assert not torch.equal(mixer.in_proj.weight, before["in_proj.weight"])  # the rest is drawn


def test_timm_zero_init_last_gammas_are_kept_and_the_first_loss_is_near_ln_classes():
    model = _built(lambda: timm.create_model("regnety_002", num_classes=10))
    zeros = [n for n, p in model.named_parameters() if p.dim() == 1 and not p.detach().any()]
    zeros = [n for n in zeros if n.endswith("bn.weight")]
    assert zeros  # zero_init_last
    report = init_model(model, seed=0)
    for name in zeros:
        assert report[name].action == "keep" and "zero-init residual" in report[name].note
        assert not model.get_parameter(name).detach().any()
    assert report.example_source == "timm input_size"
    x = torch.randn(8, 3, 224, 224, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        loss = F.cross_entropy(model.eval()(x), torch.arange(8) % 10)
    assert abs(float(loss) / math.log(10) - 1) < 0.15  # 4.48 when the gammas were reset to 1


def test_torchvision_zero_init_residual_survives_init_model_and_build():
    make = lambda: torchvision.models.resnet18(num_classes=10, zero_init_residual=True)  # noqa: E731
    model = _built(make)
    report = init_model(model, seed=0)
    assert report["layer1.0.bn2.weight"].action == "keep"
    assert not model.layer1[0].bn2.weight.detach().any()
    assert model.bn1.weight.detach().eq(1).all()  # not in a residual branch: neutral ones
    built, built_report = build(make, seed=0)
    for name, param in model.state_dict().items():
        assert torch.equal(built.state_dict()[name], param), name
    assert [r.action for r in built_report.rows] == [r.action for r in report.rows]


def test_same_seed_same_weights_whatever_the_global_rng():
    make = lambda: torchvision.models.efficientnet_b0(num_classes=10)  # noqa: E731
    states = []
    for global_seed in (1, 2):
        model = _built(make)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(global_seed)
            init_model(model, seed=0)
        states.append(model.state_dict())
    for name, value in states[0].items():
        assert torch.equal(value, states[1][name]), name


def test_stochastic_depth_and_drop_path_are_stochastic_not_activations():
    from timm.layers import DropPath
    from torchvision.ops import StochasticDepth

    for module in (StochasticDepth(0.5, "row"), DropPath(0.5), nn.Dropout(0.5)):
        with torch.random.fork_rng(devices=[]):
            for global_seed in range(4):
                torch.manual_seed(global_seed)
                assert _elementwise_kind(module) == "stochastic", module
        assert module.training  # its mode is left as it was


def test_an_activation_class_is_known_by_what_it_computes():
    from timm.layers.activations import GELU, Sigmoid, Swish

    gains = {}
    for act in (Sigmoid(), nn.Sigmoid(), Swish(), nn.SiLU(), GELU(), nn.GELU()):

        class Net(nn.Module):  # not a plain Sequential: traced
            def __init__(self, act=act):
                super().__init__()
                self.fc1, self.act, self.fc2 = nn.Linear(8, 8), act, nn.Linear(8, 2)

            def forward(self, x):
                return self.fc2(self.act(self.fc1(x)))

        row = init_model(_built(Net), seed=0)["fc1.weight"]
        gains[type(act).__module__.split(".")[0], type(act).__name__] = (row.activation, row.gain)
    assert gains["timm", "Sigmoid"] == gains["torch", "Sigmoid"] == ("sigmoid", 1.0)
    assert gains["timm", "Swish"][0] == gains["torch", "SiLU"][0] == "silu"
    assert gains["timm", "GELU"][0] == gains["torch", "GELU"][0] == "gelu"
