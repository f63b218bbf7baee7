"""Real torchvision, timm and Hugging Face classes at small size, for calibrating the doctor's
verdicts (issue 25): each builder returns ``(model, example)`` at the framework's own default
init, built from a config (no download), seeded through a forked global RNG.

Widths are the families' real ones where an init's scale is absolute (Hugging Face's
``initializer_range = 0.02``: at width 64 ten times that is a sensible init, at 768 it is not);
depth, vocabulary, sequence length and image size are cut so that one diagnosis takes a
fraction of a second. Private to the doctor's tests and ``benchmarks/doctor_calibration.py``;
the project's shared registry is ``tests/real_zoo.py``.

The four broken inits (:func:`break_weights`): every >= 2-D parameter zero, N(0, 1),
N(0, 1e-4), or ten times its default; 1-D parameters (norm scales, biases, layer scales) keep
their defaults. :data:`EXPECTED` says what the doctor must name first for each.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

sys.modules.setdefault(
    "torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations")
)

Example = Any
Builder = Callable[[], tuple[nn.Module, Example]]


@contextmanager
def _seeded(seed: int = 0):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def _images(batch: int = 4, size: int = 32) -> torch.Tensor:
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(0))


def _ids(vocab: int, batch: int = 2, tokens: int = 16) -> torch.Tensor:
    return torch.randint(0, vocab, (batch, tokens), generator=torch.Generator().manual_seed(0))


# ---------------------------------------------------------------------------------- timm
def _timm(name: str, size: int = 32, **kwargs: Any) -> Builder:
    def build() -> tuple[nn.Module, Example]:
        import timm

        with _seeded():
            model = timm.create_model(name, pretrained=False, **kwargs)
        return model, _images(size=size)

    return build


# ---------------------------------------------------------------------------------- torchvision
def _tv(name: str, size: int = 32, **kwargs: Any) -> Builder:
    def build() -> tuple[nn.Module, Example]:
        import torchvision

        with _seeded():
            model = torchvision.models.get_model(name, weights=None, **kwargs)
        return model, _images(size=size)

    return build


def _tv_vit() -> tuple[nn.Module, Example]:
    from torchvision.models.vision_transformer import VisionTransformer

    with _seeded():  # vit_b_16's width (768, mlp 3072, 12 heads), 2 layers, 32 px
        model = VisionTransformer(32, 16, num_layers=2, num_heads=12, hidden_dim=768, mlp_dim=3072)
    return model, _images()


# ---------------------------------------------------------------------------------- transformers
def _hf(config_name: str, model_name: str, batch: Callable[[Any], Example], **config: Any):
    def build() -> tuple[nn.Module, Example]:
        import transformers

        transformers.logging.set_verbosity_error()
        cfg = getattr(transformers, config_name)(**config)
        with _seeded():
            model = getattr(transformers, model_name)(cfg)
        return model, batch(cfg)

    return build


_VOCAB = 1000
_LM = lambda cfg: {"input_ids": _ids(_VOCAB)}  # noqa: E731


def _t5_batch(cfg: Any) -> Example:
    return {"input_ids": _ids(_VOCAB), "decoder_input_ids": _ids(_VOCAB, tokens=8)}


def _whisper_batch(cfg: Any) -> Example:
    features = torch.randn(2, cfg.num_mel_bins, 2 * cfg.max_source_positions)
    return {"input_features": features, "decoder_input_ids": _ids(_VOCAB, tokens=8)}


def _vit_batch(cfg: Any) -> Example:
    return {"pixel_values": _images(batch=2)}


# ---------------------------------------------------------------------------------- recurrent
class RecurrentLM(nn.Module):
    """Embedding -> 2-layer LSTM or GRU -> linear head: a word-level language model."""

    def __init__(self, cell: type[nn.Module], vocab: int = _VOCAB, dim: int = 64) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.rnn = cell(dim, 128, num_layers=2, batch_first=True)
        self.head = nn.Linear(128, vocab)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.rnn(self.embed(ids))[0])


def _recurrent(cell: type[nn.Module]) -> Builder:
    def build() -> tuple[nn.Module, Example]:
        with _seeded():
            model = RecurrentLM(cell)
        return model, _ids(_VOCAB, batch=4, tokens=12)

    return build


# ---------------------------------------------------------------------------------- registry
MODELS: dict[str, Builder] = {
    "timm/convnext_atto": _timm("convnext_atto"),
    "timm/convnext_tiny": _timm("convnext_tiny"),
    "timm/efficientnet_b0": _timm("efficientnet_b0"),
    "timm/regnety_002": _timm("regnety_002"),
    "timm/resnet18": _timm("resnet18"),
    "timm/vit_tiny": _timm("vit_tiny_patch16_224", img_size=32),
    "timm/mixer_s32": _timm("mixer_s32_224", img_size=64, size=64),
    "tv/resnet18": _tv("resnet18"),
    "tv/mobilenet_v3_small": _tv("mobilenet_v3_small"),
    "tv/efficientnet_b0": _tv("efficientnet_b0"),
    "tv/convnext_tiny": _tv("convnext_tiny"),
    "tv/swin_t": _tv("swin_t"),
    "tv/vit_b_16": _tv_vit,
    "tv/densenet121": _tv("densenet121"),
    "tv/shufflenet_v2": _tv("shufflenet_v2_x0_5"),
    "hf/gpt2": _hf("GPT2Config", "GPT2LMHeadModel", _LM, n_layer=2, vocab_size=_VOCAB),
    "hf/llama": _hf(
        "LlamaConfig",
        "LlamaForCausalLM",
        _LM,
        num_hidden_layers=2,
        hidden_size=768,
        intermediate_size=2048,
        num_attention_heads=12,
        num_key_value_heads=4,
        vocab_size=_VOCAB,
    ),
    "hf/bert": _hf("BertConfig", "BertForMaskedLM", _LM, num_hidden_layers=2, vocab_size=_VOCAB),
    "hf/t5": _hf(
        "T5Config",
        "T5ForConditionalGeneration",
        _t5_batch,
        num_layers=2,
        num_decoder_layers=2,
        vocab_size=_VOCAB,
    ),
    "hf/vit": _hf(
        "ViTConfig",
        "ViTForImageClassification",
        _vit_batch,
        num_hidden_layers=2,
        image_size=32,
        patch_size=16,
    ),
    "hf/whisper": _hf(
        "WhisperConfig",
        "WhisperForConditionalGeneration",
        _whisper_batch,
        d_model=384,
        encoder_layers=2,
        decoder_layers=2,
        encoder_attention_heads=6,
        decoder_attention_heads=6,
        encoder_ffn_dim=1536,
        decoder_ffn_dim=1536,
        num_mel_bins=80,
        max_source_positions=16,
        max_target_positions=32,
        vocab_size=_VOCAB,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        decoder_start_token_id=1,
    ),
    "torch/lstm_lm": _recurrent(nn.LSTM),
    "torch/gru_lm": _recurrent(nn.GRU),
}

BROKEN = ("zeros", "unit", "tiny", "x10")
# What the doctor must name first for each broken init.
EXPECTED: dict[str, set[str]] = {
    "zeros": {"symmetric"},
    "unit": {"exploding", "saturated", "non-finite"},
    "tiny": {"vanishing"},
    "x10": {"exploding", "saturated", "non-finite"},
}


def break_weights(model: nn.Module, mode: str) -> None:
    """Every >= 2-D parameter zero (``zeros``), N(0, 1) (``unit``), N(0, 1e-4) (``tiny``) or
    ten times its value (``x10``), drawn from a private generator; the rest kept."""
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() < 2:
                continue
            if mode == "zeros":
                p.zero_()
            elif mode == "x10":
                p.mul_(10.0)
            else:
                scale = 1.0 if mode == "unit" else 1e-4
                p.copy_(scale * torch.randn(p.shape, generator=generator, dtype=p.dtype))
