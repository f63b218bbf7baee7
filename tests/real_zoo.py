"""The conformance set: real models from torchvision, timm and Hugging Face, built from small
configs with their framework's own default initialization.

``tests/zoo.py`` holds hand-written copies of third-party structures; they passed tests where
the real classes fail. Every entry here constructs the library's own class (nothing is
downloaded: no ``pretrained=True``, no ``from_pretrained``):

- **torchvision**: every classification model of ``torchvision.models.list_models(module=
  torchvision.models)``, ``num_classes=10``, at the smallest input side of 32, 64, 96, 128, ...
  it accepts (ViTs take ``image_size``: 32, and 28 for the patch-14 ``vit_h_14``; MaxViT needs
  224, its 7x7 partitions divide every stage only there; Inception v3 needs 75, so 96);
  ``googlenet`` and ``inception_v3`` with ``aux_logits=False, init_weights=True``.
- **timm**: one or more models from each of the 98 model modules of timm 1.0.31 (``group`` is
  the module, what ``timm.models._registry`` files the model under), ``num_classes=10``, at the
  model's own ``pretrained_cfg["input_size"]`` when batch 2 runs forward in under 0.3 s on one
  thread and the model has at most 30M parameters, else with ``img_size`` made small (or a
  small input where the model pools adaptively).
- **hf**: Hugging Face architectures from small configs (hidden 32, 2 layers, 4 heads, vocab
  99), each with its LM, classification or contrastive head; the constructor runs the model's
  own ``_init_weights``.
- **torch**: LSTM and GRU classifiers over an embedding, ``nn.TransformerEncoder``.

An entry's ``build(seed)`` constructs under ``torch.random.fork_rng`` with ``manual_seed(seed)``
(the caller's global RNG is untouched), ``example(batch)`` makes the input with a private
generator, ``logits(output)`` reads the classification logits (``classes`` columns; ``None``
for CLIP/SigLIP, whose image-text logits have one column per example in the batch).

``params``, ``dropout`` (any module that draws in train mode: dropout, stochastic depth or
drop-path with a nonzero rate, or a Hugging Face config dropout above zero) and the seconds to
build and to run batch 2 forward come from :data:`MEASURED`, which ``python3
tests/real_zoo.py --measure`` prints (one thread, CPU, on the shared 2-core machine, so the
seconds are upper bounds). All 259 entries build and run in about 190 s (timm 68 s, Hugging
Face 4 s, torchvision the rest); the ten slowest (build + forward, seconds):

| model | params | build | forward |
|---|---|---|---|
| regnet_y_128gf | 637.5M | 13.6 | 2.59 |
| timm/mobilenetv5_300m | 294.1M | 12.39 | 1.64 |
| timm/deepseek_vit_412m | 411.9M | 4.96 | 5.88 |
| vit_h_14 | 630.5M | 7.67 | 1.96 |
| vit_l_16 | 303.1M | 6.77 | 0.79 |
| vit_l_32 | 305.5M | 5.16 | 0.75 |
| convnext_large | 196.2M | 4.84 | 0.31 |
| regnet_y_32gf | 141.4M | 2.48 | 0.52 |
| wide_resnet101_2 | 124.9M | 2.34 | 0.37 |
| efficientnet_v2_l | 117.2M | 2.22 | 0.34 |

Left out: nothing. Every torchvision classification model, every timm module and every
Hugging Face architecture tried here built and ran on CPU; the heavy ones (``vit_h_14``,
``regnet_y_128gf``, timm's ``deepseek_vit_412m`` and ``mobilenetv5_300m``, which have no small
variant) are in, and ``names(max_params=...)`` leaves them out.
"""

from __future__ import annotations

import contextlib
import sys
import time
import types
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from initlab.initializers.model_calls import call_model, main_output

Family = Literal["torchvision", "timm", "hf", "torch"]
Kind = Literal["cnn", "vit", "lm", "encoder", "seq2seq", "speech", "multimodal", "ssm", "rnn"]


def import_vision() -> None:
    """Make torchvision importable beside the CPU torch: the registry's torchvision wheel is a
    CUDA build whose fake-op registrations fail ("operator torchvision::nms does not exist");
    the model definitions use no custom ops. timm and transformers import torchvision."""
    sys.modules.setdefault(
        "torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations")
    )


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run the block on a forked global RNG seeded with ``seed``; the caller's state is back
    afterwards. Third-party warnings and log lines of the constructors are silenced."""
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.manual_seed(seed)
        yield


@dataclass(frozen=True)
class Measured:
    """What one build and one batch-2 forward of an entry gave (see :func:`measure`)."""

    params: int
    dropout: bool
    build_s: float
    forward_s: float


@dataclass(frozen=True)
class RealModel:
    """One model of the conformance set.

    ``make`` constructs the model (call :meth:`build`, which seeds it); ``inputs(generator,
    batch)`` makes the example; ``read`` finds the logits in the output; ``group`` is what
    counts as a family within ``family`` (timm module, Hugging Face ``model_type``, torchvision
    module); ``classes`` is ``None`` where the logits have one column per example (contrastive).
    """

    family: Family
    name: str
    kind: Kind
    classes: int | None
    group: str
    make: Callable[[], nn.Module]
    inputs: Callable[[torch.Generator, int], Any]
    read: Callable[[Any], torch.Tensor] = main_output

    def build(self, seed: int) -> nn.Module:
        """The model as its framework initializes it, seeded; the global RNG is untouched."""
        with seeded(seed):
            return self.make()

    def example(self, batch: int = 2) -> Any:
        """The input the model is called with (a tensor or a dict of keyword arguments), drawn
        from a private generator: the same for the same ``batch``."""
        return self.inputs(torch.Generator().manual_seed(1234), batch)

    def logits(self, output: Any) -> torch.Tensor:
        return self.read(output)

    def columns(self, batch: int = 2) -> int:
        """How many columns the logits have: ``classes``, or ``batch`` for contrastive ones."""
        return batch if self.classes is None else self.classes

    @property
    def measured(self) -> Measured | None:
        return MEASURED.get(self.name)

    @property
    def params(self) -> int | None:
        return None if self.measured is None else self.measured.params

    @property
    def dropout(self) -> bool | None:
        return None if self.measured is None else self.measured.dropout


def forward_logits(entry: RealModel, model: nn.Module, example: Any) -> torch.Tensor:
    """``entry.logits`` of one forward of ``model`` on ``example``, without gradients, on a
    forked RNG seeded 0 (dropout in train mode draws from it, not from the caller's)."""
    with seeded(0), torch.no_grad():
        return entry.logits(call_model(model, example))


_DROP_ATTRS = ("p", "drop_prob", "drop_rate", "dropout")


def stochastic_modules(model: nn.Module) -> list[str]:
    """Modules that draw random numbers in train mode: dropout, stochastic depth, drop-path
    (by class name containing ``drop`` or ``stochastic`` and a nonzero rate), plus, for
    Hugging Face models, config entries named ``*dropout*``/``*drop_prob*`` above zero (many
    attention layers call ``F.dropout`` with the config's rate)."""
    found = []
    for name, module in model.named_modules():
        cls = type(module).__name__.lower()
        if "drop" in cls or "stochastic" in cls:
            rate = next((getattr(module, a) for a in _DROP_ATTRS if hasattr(module, a)), None)
            if isinstance(rate, int | float) and rate > 0:
                found.append(name or type(module).__name__)
    configs = [getattr(model, "config", None)]
    configs += [getattr(configs[0], k, None) for k in ("text_config", "vision_config")]
    for config in configs:
        if config is None or not hasattr(config, "to_dict"):
            continue
        for key, value in config.to_dict().items():
            lowered = key.lower()
            is_rate = "dropout" in lowered or "drop_prob" in lowered
            number = isinstance(value, int | float) and not isinstance(value, bool)
            if is_rate and number and value > 0:
                found.append(f"config.{key}={value}")
    return found


# ---------------------------------------------------------------------- torchvision
# name -> smallest input side of 32, 64, 96, ... the model accepts (32 unless listed).
_TORCHVISION_SIDE = {"alexnet": 64, "inception_v3": 96, "maxvit_t": 224, "vit_h_14": 28}
_TORCHVISION_VIT = ("vit_", "swin_", "maxvit_")


def _images(side: int) -> Callable[[torch.Generator, int], torch.Tensor]:
    def make(generator: torch.Generator, batch: int) -> torch.Tensor:
        return torch.randn(batch, 3, side, side, generator=generator)

    return make


def _torchvision_make(name: str, side: int) -> Callable[[], nn.Module]:
    def make() -> nn.Module:
        import_vision()
        from torchvision import models

        kwargs: dict[str, Any] = {"num_classes": 10}
        if name in ("googlenet", "inception_v3"):
            kwargs.update(aux_logits=False, init_weights=True)
        if name.startswith("vit_"):
            kwargs["image_size"] = side
        return models.get_model(name, **kwargs)

    return make


# Every classification builder of torchvision 0.28 (``list_models(module=torchvision.models)``);
# a test checks the list against the installed torchvision.
TORCHVISION_MODELS = [
    "alexnet", "convnext_base", "convnext_large", "convnext_small", "convnext_tiny", "densenet121",
    "densenet161", "densenet169", "densenet201", "efficientnet_b0", "efficientnet_b1",
    "efficientnet_b2", "efficientnet_b3", "efficientnet_b4", "efficientnet_b5", "efficientnet_b6",
    "efficientnet_b7", "efficientnet_v2_l", "efficientnet_v2_m", "efficientnet_v2_s", "googlenet",
    "inception_v3", "maxvit_t", "mnasnet0_5", "mnasnet0_75", "mnasnet1_0", "mnasnet1_3",
    "mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small", "regnet_x_16gf", "regnet_x_1_6gf",
    "regnet_x_32gf", "regnet_x_3_2gf", "regnet_x_400mf", "regnet_x_800mf", "regnet_x_8gf",
    "regnet_y_128gf", "regnet_y_16gf", "regnet_y_1_6gf", "regnet_y_32gf", "regnet_y_3_2gf",
    "regnet_y_400mf", "regnet_y_800mf", "regnet_y_8gf", "resnet101", "resnet152", "resnet18",
    "resnet34", "resnet50", "resnext101_32x8d", "resnext101_64x4d", "resnext50_32x4d",
    "shufflenet_v2_x0_5", "shufflenet_v2_x1_0", "shufflenet_v2_x1_5", "shufflenet_v2_x2_0",
    "squeezenet1_0", "squeezenet1_1", "swin_b", "swin_s", "swin_t", "swin_v2_b", "swin_v2_s",
    "swin_v2_t", "vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19",
    "vgg19_bn", "vit_b_16", "vit_b_32", "vit_h_14", "vit_l_16", "vit_l_32", "wide_resnet101_2",
    "wide_resnet50_2",
]  # fmt: skip


def _torchvision_group(name: str) -> str:
    for prefix, group in (("wide_resnet", "resnet"), ("resnext", "resnet"), ("vgg", "vgg"),
                          ("swin", "swin_transformer"), ("vit", "vision_transformer"),
                          ("shufflenet", "shufflenetv2"), ("mobilenet_v2", "mobilenetv2"),
                          ("mobilenet_v3", "mobilenetv3")):  # fmt: skip
        if name.startswith(prefix):
            return group
    return name.rstrip("0123456789_").split("_")[0] if "regnet" not in name else "regnet"


def _torchvision_entries() -> list[RealModel]:
    entries = []
    for name in TORCHVISION_MODELS:
        side = _TORCHVISION_SIDE.get(name, 32)
        kind: Kind = "vit" if name.startswith(_TORCHVISION_VIT) else "cnn"
        entries.append(RealModel("torchvision", name, kind, 10, _torchvision_group(name),
                                 _torchvision_make(name, side), _images(side)))  # fmt: skip
    return entries


# ---------------------------------------------------------------------- timm
# (model, input side, img_size passed or None, timm module, kind). The side is the model's
# pretrained input size where that is cheap, else the smallest of 32, 64, ... it accepts.
_TIMM = [
    ("halonet26t", 256, None, "byoanet", "vit"),  # halo blocks of 8 need 256
    ("resnext26ts", 32, 32, "byobnet", "cnn"),
    ("mobileone_s0", 32, 32, "byobnet", "cnn"),
    ("repvgg_a0", 32, 32, "byobnet", "cnn"),
    ("test_byobnet", 160, None, "byobnet", "cnn"),
    ("beit_base_patch16_224", 32, 32, "beit", "vit"),
    ("cait_xxs24_224", 32, 32, "cait", "vit"),
    ("coat_lite_tiny", 32, 32, "coat", "vit"),
    ("convit_tiny", 32, 32, "convit", "vit"),
    ("convmixer_768_32", 32, None, "convmixer", "cnn"),
    ("convnext_atto", 224, None, "convnext", "cnn"),
    ("test_convnext", 160, None, "convnext", "cnn"),
    ("cpubone_b0_bfrobust", 224, None, "cpubone", "cnn"),
    ("crossvit_tiny_240", 32, None, "crossvit", "vit"),
    ("csatv2", 64, None, "csatv2", "vit"),
    ("cs3darknet_focus_s", 32, None, "cspnet", "cnn"),
    ("cspnext_tiny", 224, None, "cspnext", "cnn"),
    ("davit_tiny", 32, None, "davit", "vit"),
    ("deepseek_vit_412m", 224, 224, "deepseek_vit", "vit"),
    ("deit_tiny_patch16_224", 32, 32, "deit", "vit"),
    ("densenet121", 32, None, "densenet", "cnn"),
    ("dla34", 32, None, "dla", "cnn"),
    ("dpn48b", 32, None, "dpn", "cnn"),
    ("edgenext_xx_small", 256, None, "edgenext", "vit"),
    ("efficientformer_l1", 224, None, "efficientformer", "vit"),
    ("efficientformerv2_s0", 32, 32, "efficientformer_v2", "vit"),
    ("efficientnet_b0", 224, None, "efficientnet", "cnn"),
    ("tinynet_e", 106, None, "efficientnet", "cnn"),
    ("test_efficientnet", 160, None, "efficientnet", "cnn"),
    ("efficientvim_m1", 224, None, "efficientvim", "ssm"),
    ("efficientvit_b0", 224, None, "efficientvit_mit", "vit"),
    ("efficientvit_m0", 224, None, "efficientvit_msra", "vit"),
    ("eva02_tiny_patch14_224", 32, 32, "eva", "vit"),
    ("fasternet_t0", 224, None, "fasternet", "cnn"),
    ("fastvit_t8", 32, None, "fastvit", "cnn"),
    ("focalnet_tiny_srf", 32, None, "focalnet", "vit"),
    ("gcvit_xxtiny", 32, 32, "gcvit", "vit"),
    ("gemma4_vit_167m", 32, 32, "gemma4_vit", "vit"),
    ("ghostnet_050", 224, None, "ghostnet", "cnn"),
    ("hardcorenas_a", 224, None, "hardcorenas", "cnn"),
    ("hgnetv2_b0", 224, None, "hgnet", "cnn"),
    ("hiera_tiny_224", 32, 32, "hiera", "vit"),
    ("hieradet_small", 32, None, "hieradet_sam2", "vit"),
    ("hrnet_w18_small", 32, None, "hrnet", "cnn"),
    ("iformer_t", 32, None, "iformer", "vit"),
    ("inception_next_atto", 224, None, "inception_next", "cnn"),
    ("inception_resnet_v2", 96, None, "inception_resnet_v2", "cnn"),
    ("inception_v3", 96, None, "inception_v3", "cnn"),
    ("inception_v4", 96, None, "inception_v4", "cnn"),
    ("lcnetv2_small", 224, None, "lcnetv2", "cnn"),
    ("levit_128s", 224, None, "levit", "vit"),
    ("lowformer_b0", 32, None, "lowformer", "vit"),
    ("mambaout_femto", 32, None, "mambaout", "cnn"),
    ("test_mambaout", 160, None, "mambaout", "cnn"),
    ("maxvit_rmlp_pico_rw_256", 32, 32, "maxxvit", "vit"),
    ("coatnet_nano_rw_224", 32, 32, "maxxvit", "vit"),
    ("test_maxvit", 160, None, "maxxvit", "vit"),
    ("poolformer_s12", 32, None, "metaformer", "vit"),
    ("mixer_s16_224", 32, 32, "mlp_mixer", "vit"),
    ("mobilenetv3_small_050", 224, None, "mobilenetv3", "cnn"),
    ("mobilenetv5_300m", 32, None, "mobilenetv5", "cnn"),
    ("mobilevit_xxs", 32, 32, "mobilevit", "vit"),
    ("mvitv2_tiny", 32, 32, "mvitv2", "vit"),
    ("naflexvit_base_patch16_gap", 32, 32, "naflexvit", "vit"),
    ("nasnetalarge", 32, None, "nasnet", "cnn"),
    ("nest_tiny", 32, 32, "nest", "vit"),
    ("nextvit_small", 32, None, "nextvit", "vit"),
    ("nf_resnet26", 32, None, "nfnet", "cnn"),
    ("test_nfnet", 160, None, "nfnet", "cnn"),
    ("pit_ti_224", 32, 32, "pit", "vit"),
    ("pnasnet5large", 32, None, "pnasnet", "cnn"),
    ("pvt_v2_b0", 224, None, "pvt_v2", "vit"),
    ("qwen3_vit_88m", 32, 32, "qwen3_vit", "vit"),
    ("rdnet_tiny", 32, None, "rdnet", "cnn"),
    ("regnety_002", 224, None, "regnet", "cnn"),
    ("repghostnet_050", 224, None, "repghost", "cnn"),
    ("repvit_m0_9", 32, 32, "repvit", "cnn"),
    ("res2net50_14w_8s", 32, None, "res2net", "cnn"),
    ("resnest14d", 224, None, "resnest", "cnn"),
    ("resnet10t", 176, None, "resnet", "cnn"),
    ("resnet18", 224, None, "resnet", "cnn"),
    ("seresnet18", 224, None, "resnet", "cnn"),
    ("test_resnet", 160, None, "resnet", "cnn"),
    ("resnetv2_18", 224, None, "resnetv2", "cnn"),
    ("rexnet_100", 224, None, "rexnet", "cnn"),
    ("selecsls42", 32, None, "selecsls", "cnn"),
    ("legacy_seresnet18", 224, None, "senet", "cnn"),
    ("sequencer2d_s", 32, 32, "sequencer", "rnn"),
    ("shvit_s1", 224, None, "shvit", "vit"),
    ("skresnet18", 224, None, "sknet", "cnn"),
    ("starnet_s050", 224, None, "starnet", "cnn"),
    ("swiftformer_xs", 224, None, "swiftformer", "vit"),
    ("swin_tiny_patch4_window7_224", 32, 32, "swin_transformer", "vit"),
    ("swinv2_tiny_window8_256", 32, 32, "swin_transformer_v2", "vit"),
    ("swinv2_cr_tiny_224", 32, 32, "swin_transformer_v2_cr", "vit"),
    ("tiny_vit_5m_224", 224, None, "tiny_vit", "vit"),
    ("tnt_s_patch16_224", 32, 32, "tnt", "vit"),
    ("tresnet_m", 32, None, "tresnet", "cnn"),
    ("twins_pcpvt_small", 32, 32, "twins", "vit"),
    ("vgg11", 32, None, "vgg", "cnn"),
    ("visformer_tiny", 224, None, "visformer", "vit"),
    ("vit_tiny_patch16_224", 224, None, "vision_transformer", "vit"),
    ("test_vit", 160, None, "vision_transformer", "vit"),
    ("vit_tiny_r_s16_p8_224", 224, None, "vision_transformer_hybrid", "vit"),
    ("vit_relpos_small_patch16_224", 32, 32, "vision_transformer_relpos", "vit"),
    ("test_vit_relpos", 160, None, "vision_transformer_relpos", "vit"),
    ("samvit_base_patch16", 32, 32, "vision_transformer_sam", "vit"),
    ("vitamin_small_224", 32, 32, "vitamin", "vit"),
    ("volo_d1_224", 32, 32, "volo", "vit"),
    ("ese_vovnet19b_dw", 224, None, "vovnet", "cnn"),
    ("legacy_xception", 32, None, "xception", "cnn"),
    ("xception41", 32, None, "xception_aligned", "cnn"),
    ("xcit_nano_12_p16_224", 224, None, "xcit", "vit"),
]
# Every module of timm.list_models() has an entry; none failed to build. The test_* models are
# timm's own tiny configs of real classes (the cheap sample of the tests).


def _timm_make(name: str, img_size: int | None) -> Callable[[], nn.Module]:
    def make() -> nn.Module:
        import_vision()
        import timm

        kwargs: dict[str, Any] = {"num_classes": 10}
        if img_size is not None:
            kwargs["img_size"] = img_size
        return timm.create_model(name, pretrained=False, **kwargs)

    return make


def _timm_entries() -> list[RealModel]:
    return [
        RealModel(
            "timm", f"timm/{name}", kind, 10, group, _timm_make(name, img_size), _images(side)
        )
        for name, side, img_size, group, kind in _TIMM
    ]


# ---------------------------------------------------------------------- Hugging Face
VOCAB = 99
TOKENS = 8
_SMALL = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
          "intermediate_size": 64, "vocab_size": VOCAB, "max_position_embeddings": 64}  # fmt: skip
_DECODER = _SMALL | {"num_key_value_heads": 2, "pad_token_id": 0, "bos_token_id": 1,
                     "eos_token_id": 2}  # fmt: skip


def _ids(generator: torch.Generator, batch: int, tokens: int = TOKENS) -> torch.Tensor:
    # Tokens from 3 on: 0-2 are pad/bos/eos in every config here.
    return torch.randint(3, VOCAB, (batch, tokens), generator=generator)


def _lm_inputs(generator: torch.Generator, batch: int) -> dict[str, torch.Tensor]:
    ids = _ids(generator, batch)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def _seq2seq_inputs(generator: torch.Generator, batch: int) -> dict[str, torch.Tensor]:
    ids = _ids(generator, batch)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids),
            "decoder_input_ids": _ids(generator, batch)}  # fmt: skip


def _pixel_inputs(side: int, channels: int = 3) -> Callable[[torch.Generator, int], Any]:
    def make(generator: torch.Generator, batch: int) -> dict[str, torch.Tensor]:
        return {"pixel_values": torch.randn(batch, channels, side, side, generator=generator)}

    return make


def _text_image_inputs(generator: torch.Generator, batch: int) -> dict[str, torch.Tensor]:
    ids = _ids(generator, batch)
    ids[:, -1] = 2  # CLIP pools at the eos token
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids),
            "pixel_values": torch.randn(batch, 3, 32, 32, generator=generator)}  # fmt: skip


_MEL_BINS = 80
_AUDIO_FRAMES = 32  # Whisper: 2 * max_source_positions


def _whisper_inputs(generator: torch.Generator, batch: int) -> dict[str, torch.Tensor]:
    return {"input_features": torch.randn(batch, _MEL_BINS, _AUDIO_FRAMES, generator=generator),
            "decoder_input_ids": _ids(generator, batch)}  # fmt: skip


def _audio_inputs(generator: torch.Generator, batch: int) -> dict[str, torch.Tensor]:
    return {"input_values": torch.randn(batch, 800, generator=generator)}


def _image_text_logits(output: Any) -> torch.Tensor:
    return output.logits_per_image


def _hf_make(model_class: str, config_class: str, **config: Any) -> Callable[[], nn.Module]:
    def make() -> nn.Module:
        import_vision()
        import transformers

        transformers.logging.set_verbosity_error()
        cfg = getattr(transformers, config_class)(**config)
        return getattr(transformers, model_class)(cfg)

    return make


_WAV2VEC = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
            "intermediate_size": 64, "vocab_size": 32, "conv_dim": (32, 32),
            "conv_stride": (5, 4), "conv_kernel": (10, 8), "num_conv_pos_embeddings": 16,
            "num_conv_pos_embedding_groups": 2, "pad_token_id": 0,
            # SpecAugment masks draw from NumPy's global RNG in train mode: off.
            "mask_time_prob": 0.0, "mask_feature_prob": 0.0}  # fmt: skip
_VISION = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
           "intermediate_size": 64, "image_size": 32, "patch_size": 8,
           "num_labels": 10}  # fmt: skip


def _hf_table() -> list[tuple[str, Kind, int | None, Callable[[], nn.Module], Any]]:
    """(model_type, kind, classes, make, inputs) of every Hugging Face entry."""
    d = _DECODER
    # fmt: off
    lm: list[tuple[str, str, str, dict[str, Any]]] = [
        # (model_type, model class, config class, config)
        ("gpt2", "GPT2LMHeadModel", "GPT2Config",
         {"n_embd": 32, "n_layer": 2, "n_head": 4, "n_inner": 64, "vocab_size": VOCAB,
          "n_positions": 64, "bos_token_id": 1, "eos_token_id": 2}),
        ("llama", "LlamaForCausalLM", "LlamaConfig", d),
        ("mistral", "MistralForCausalLM", "MistralConfig", d),
        ("mixtral", "MixtralForCausalLM", "MixtralConfig",
         d | {"num_local_experts": 4, "num_experts_per_tok": 2}),
        ("qwen2", "Qwen2ForCausalLM", "Qwen2Config", d),
        ("qwen2_moe", "Qwen2MoeForCausalLM", "Qwen2MoeConfig",
         d | {"num_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 32,
              "shared_expert_intermediate_size": 32}),
        ("qwen3", "Qwen3ForCausalLM", "Qwen3Config", d | {"head_dim": 8}),
        ("gemma", "GemmaForCausalLM", "GemmaConfig", d | {"head_dim": 8}),
        ("gemma2", "Gemma2ForCausalLM", "Gemma2Config", d | {"head_dim": 8}),
        ("gemma3_text", "Gemma3ForCausalLM", "Gemma3TextConfig", d | {"head_dim": 8}),
        ("gpt_neox", "GPTNeoXForCausalLM", "GPTNeoXConfig", d),
        ("opt", "OPTForCausalLM", "OPTConfig",
         d | {"ffn_dim": 64, "word_embed_proj_dim": 32}),
        ("phi", "PhiForCausalLM", "PhiConfig", d),
        ("phi3", "Phi3ForCausalLM", "Phi3Config", d),
        ("falcon", "FalconForCausalLM", "FalconConfig", d),
        ("bloom", "BloomForCausalLM", "BloomConfig",
         {"hidden_size": 32, "n_layer": 2, "n_head": 4, "vocab_size": VOCAB,
          "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0}),
        ("gptj", "GPTJForCausalLM", "GPTJConfig",
         {"n_embd": 32, "n_layer": 2, "n_head": 4, "n_inner": 64, "rotary_dim": 4,
          "vocab_size": VOCAB, "n_positions": 64, "bos_token_id": 1, "eos_token_id": 2}),
        ("gpt_neo", "GPTNeoForCausalLM", "GPTNeoConfig",
         {"hidden_size": 32, "num_layers": 2, "num_heads": 4, "intermediate_size": 64,
          "attention_types": [[["global", "local"], 1]], "window_size": 4,
          "vocab_size": VOCAB, "max_position_embeddings": 64, "bos_token_id": 1,
          "eos_token_id": 2}),
        ("codegen", "CodeGenForCausalLM", "CodeGenConfig",
         {"n_embd": 32, "n_layer": 2, "n_head": 4, "n_inner": 64, "rotary_dim": 4,
          "vocab_size": VOCAB, "n_positions": 64, "n_ctx": 64, "bos_token_id": 1,
          "eos_token_id": 2}),
        ("olmo", "OlmoForCausalLM", "OlmoConfig", d),
        ("olmo2", "Olmo2ForCausalLM", "Olmo2Config", d),
        ("stablelm", "StableLmForCausalLM", "StableLmConfig", d),
        ("starcoder2", "Starcoder2ForCausalLM", "Starcoder2Config", d),
        ("gpt_bigcode", "GPTBigCodeForCausalLM", "GPTBigCodeConfig",
         {"n_embd": 32, "n_layer": 2, "n_head": 4, "n_inner": 64, "vocab_size": VOCAB,
          "n_positions": 64, "bos_token_id": 1, "eos_token_id": 2}),
        ("mpt", "MptForCausalLM", "MptConfig",
         {"d_model": 32, "n_layers": 2, "n_heads": 4, "expansion_ratio": 2,
          "vocab_size": VOCAB, "max_seq_len": 64}),
        ("cohere", "CohereForCausalLM", "CohereConfig", d),
        ("granite", "GraniteForCausalLM", "GraniteConfig", d),
        ("biogpt", "BioGptForCausalLM", "BioGptConfig", _SMALL | {"pad_token_id": 0}),
        ("xglm", "XGLMForCausalLM", "XGLMConfig",
         {"d_model": 32, "num_layers": 2, "attention_heads": 4, "ffn_dim": 64,
          "vocab_size": VOCAB, "max_position_embeddings": 64, "pad_token_id": 0}),
    ]
    encoders: list[tuple[str, str, str, dict[str, Any]]] = [
        ("bert", "BertForMaskedLM", "BertConfig", _SMALL | {"pad_token_id": 0}),
        ("roberta", "RobertaForMaskedLM", "RobertaConfig",
         _SMALL | {"pad_token_id": 0, "max_position_embeddings": 72}),
        ("xlm-roberta", "XLMRobertaForMaskedLM", "XLMRobertaConfig",
         _SMALL | {"pad_token_id": 0, "max_position_embeddings": 72}),
        ("distilbert", "DistilBertForMaskedLM", "DistilBertConfig",
         {"dim": 32, "n_layers": 2, "n_heads": 4, "hidden_dim": 64, "vocab_size": VOCAB,
          "max_position_embeddings": 64, "pad_token_id": 0}),
        ("albert", "AlbertForMaskedLM", "AlbertConfig",
         _SMALL | {"embedding_size": 16, "pad_token_id": 0}),
        ("electra", "ElectraForMaskedLM", "ElectraConfig",
         _SMALL | {"embedding_size": 16, "pad_token_id": 0}),
        ("deberta", "DebertaForMaskedLM", "DebertaConfig", _SMALL | {"pad_token_id": 0}),
        ("deberta-v2", "DebertaV2ForMaskedLM", "DebertaV2Config", _SMALL | {"pad_token_id": 0}),
        ("mpnet", "MPNetForMaskedLM", "MPNetConfig",
         _SMALL | {"pad_token_id": 0, "max_position_embeddings": 72}),
        ("modernbert", "ModernBertForMaskedLM", "ModernBertConfig",
         _SMALL | {"pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2,
                   "cls_token_id": 1, "sep_token_id": 2, "global_attn_every_n_layers": 2,
                   "local_attention": 8}),
        ("roformer", "RoFormerForMaskedLM", "RoFormerConfig", _SMALL | {"pad_token_id": 0}),
        ("convbert", "ConvBertForMaskedLM", "ConvBertConfig",
         _SMALL | {"embedding_size": 32, "pad_token_id": 0}),
    ]
    seq2seq: list[tuple[str, str, str, dict[str, Any]]] = [
        ("t5", "T5ForConditionalGeneration", "T5Config",
         {"d_model": 32, "d_ff": 64, "d_kv": 8, "num_heads": 4, "num_layers": 2,
          "vocab_size": VOCAB, "pad_token_id": 0, "eos_token_id": 2,
          "decoder_start_token_id": 0}),
    ]
    bart_like = {"d_model": 32, "encoder_layers": 2, "decoder_layers": 2,
                 "encoder_attention_heads": 4, "decoder_attention_heads": 4,
                 "encoder_ffn_dim": 64, "decoder_ffn_dim": 64, "vocab_size": VOCAB,
                 "max_position_embeddings": 64, "pad_token_id": 0, "bos_token_id": 1,
                 "eos_token_id": 2, "decoder_start_token_id": 2}  # fmt: skip
    for model_type, cls in (("bart", "Bart"), ("mbart", "MBart"), ("pegasus", "Pegasus")):
        seq2seq.append((model_type, f"{cls}ForConditionalGeneration", f"{cls}Config", bart_like))
    seq2seq.append(("marian", "MarianMTModel", "MarianConfig",
                    bart_like | {"decoder_vocab_size": VOCAB}))  # fmt: skip
    ssm: list[tuple[str, str, str, dict[str, Any]]] = [
        ("mamba", "MambaForCausalLM", "MambaConfig",
         {"hidden_size": 32, "num_hidden_layers": 2, "state_size": 8, "expand": 2,
          "vocab_size": VOCAB, "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2}),
        ("mamba2", "Mamba2ForCausalLM", "Mamba2Config",
         {"hidden_size": 32, "num_hidden_layers": 2, "state_size": 8, "expand": 2,
          "num_heads": 8, "head_dim": 8, "n_groups": 1, "chunk_size": 8,
          "vocab_size": VOCAB, "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2}),
        ("falcon_mamba", "FalconMambaForCausalLM", "FalconMambaConfig",
         {"hidden_size": 32, "num_hidden_layers": 2, "state_size": 8, "expand": 2,
          "vocab_size": VOCAB, "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2}),
    ]
    rnn: list[tuple[str, str, str, dict[str, Any]]] = [
        ("rwkv", "RwkvForCausalLM", "RwkvConfig",
         {"hidden_size": 32, "num_hidden_layers": 2, "attention_hidden_size": 32,
          "intermediate_size": 64, "vocab_size": VOCAB, "context_length": 64,
          "bos_token_id": 1, "eos_token_id": 2}),
    ]
    table: list[tuple[str, Kind, int | None, Callable[[], nn.Module], Any]] = []
    for rows, kind, inputs in ((lm, "lm", _lm_inputs), (encoders, "encoder", _lm_inputs),
                               (seq2seq, "seq2seq", _seq2seq_inputs), (ssm, "ssm", _lm_inputs),
                               (rnn, "rnn", _lm_inputs)):  # fmt: skip
        for model_type, model_class, config_class, config in rows:
            table.append((model_type, kind, VOCAB, _hf_make(model_class, config_class, **config),
                          inputs))  # fmt: skip
    whisper = {"d_model": 32, "encoder_layers": 2, "decoder_layers": 2,
               "encoder_attention_heads": 4, "decoder_attention_heads": 4,
               "encoder_ffn_dim": 64, "decoder_ffn_dim": 64, "vocab_size": VOCAB,
               "num_mel_bins": _MEL_BINS, "max_source_positions": _AUDIO_FRAMES // 2,
               "max_target_positions": 64, "pad_token_id": 0, "bos_token_id": 1,
               "eos_token_id": 2, "decoder_start_token_id": 1, "suppress_tokens": [],
               "begin_suppress_tokens": []}  # fmt: skip
    text = _SMALL | {"bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0}
    vision = {k: v for k, v in _VISION.items() if k != "num_labels"}
    table += [
        ("whisper", "speech", VOCAB,
         _hf_make("WhisperForConditionalGeneration", "WhisperConfig", **whisper), _whisper_inputs),
        ("wav2vec2", "speech", 32, _hf_make("Wav2Vec2ForCTC", "Wav2Vec2Config", **_WAV2VEC),
         _audio_inputs),
        ("hubert", "speech", 32, _hf_make("HubertForCTC", "HubertConfig", **_WAV2VEC),
         _audio_inputs),
        ("clip", "multimodal", None,
         _hf_make("CLIPModel", "CLIPConfig", text_config=text, vision_config=vision,
                  projection_dim=32), _text_image_inputs),
        ("siglip", "multimodal", None,
         _hf_make("SiglipModel", "SiglipConfig", text_config=text, vision_config=vision),
         _text_image_inputs),
        ("vit", "vit", 10, _hf_make("ViTForImageClassification", "ViTConfig", **_VISION),
         _pixel_inputs(32)),
        ("deit", "vit", 10, _hf_make("DeiTForImageClassification", "DeiTConfig", **_VISION),
         _pixel_inputs(32)),
        ("beit", "vit", 10, _hf_make("BeitForImageClassification", "BeitConfig", **_VISION),
         _pixel_inputs(32)),
        ("dinov2", "vit", 10,
         _hf_make("Dinov2ForImageClassification", "Dinov2Config", **_VISION), _pixel_inputs(32)),
        ("swin", "vit", 10,
         _hf_make("SwinForImageClassification", "SwinConfig", image_size=32, patch_size=2,
                  embed_dim=16, depths=[1, 1], num_heads=[2, 4], window_size=4, num_labels=10),
         _pixel_inputs(32)),
        ("convnext", "cnn", 10,
         _hf_make("ConvNextForImageClassification", "ConvNextConfig", hidden_sizes=[16, 32],
                  depths=[1, 1], num_stages=2, num_labels=10), _pixel_inputs(32)),
        ("resnet", "cnn", 10,
         _hf_make("ResNetForImageClassification", "ResNetConfig", embedding_size=16,
                  hidden_sizes=[16, 32], depths=[1, 1], layer_type="basic", num_labels=10),
         _pixel_inputs(32)),
        ("mobilevit", "vit", 10,
         _hf_make("MobileViTForImageClassification", "MobileViTConfig", image_size=32,
                  hidden_sizes=[32, 48, 64], neck_hidden_sizes=[8, 8, 16, 16, 32, 48, 64],
                  num_labels=10), _pixel_inputs(32)),
    ]
    # fmt: on
    return table


# Hugging Face architectures left out: none; every one tried builds and runs (transformers 5.25).


def _hf_entries() -> list[RealModel]:
    entries = []
    for model_type, kind, classes, make, inputs in _hf_table():
        read = _image_text_logits if kind == "multimodal" else main_output
        entries.append(RealModel("hf", f"hf/{model_type}", kind, classes, model_type, make,
                                 inputs, read))  # fmt: skip
    return entries


# ---------------------------------------------------------------------- torch built-ins
class RecurrentClassifier(nn.Module):
    """Embedding, a 2-layer LSTM or GRU, and a linear head on the last step."""

    def __init__(self, cell: type[nn.LSTM] | type[nn.GRU]) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, 32)
        self.rnn = cell(32, 32, num_layers=2, batch_first=True)
        self.head = nn.Linear(32, 10)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(self.embed(ids))
        return self.head(out[:, -1])


class EncoderClassifier(nn.Module):
    """Embedding, PyTorch's ``nn.TransformerEncoder`` (2 layers, GELU, pre-norm), mean pool
    and a linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, 32)
        layer = nn.TransformerEncoderLayer(32, 4, 64, activation="gelu", batch_first=True,
                                           norm_first=True)  # fmt: skip
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(32, 10)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(self.embed(ids)).mean(dim=1))


def _torch_entries() -> list[RealModel]:
    return [
        RealModel("torch", "torch/lstm", "rnn", 10, "lstm",
                  lambda: RecurrentClassifier(nn.LSTM), _ids),
        RealModel("torch", "torch/gru", "rnn", 10, "gru", lambda: RecurrentClassifier(nn.GRU),
                  _ids),
        RealModel("torch", "torch/transformer_encoder", "encoder", 10, "transformer",
                  EncoderClassifier, _ids),
    ]  # fmt: skip


# ---------------------------------------------------------------------- the registry
REGISTRY: dict[str, RealModel] = {
    e.name: e for e in _torchvision_entries() + _timm_entries() + _hf_entries() + _torch_entries()
}


def names(family: Family | None = None, max_params: int | None = None) -> list[str]:
    """Entry names of ``family`` (all families if ``None``) with at most ``max_params``
    parameters (all if ``None``; entries without a measurement count as over any limit)."""
    chosen = []
    for name, entry in REGISTRY.items():
        if family is not None and entry.family != family:
            continue
        if max_params is not None and (entry.params is None or entry.params > max_params):
            continue
        chosen.append(name)
    return chosen


def torchvision_names(max_params: int | None = None) -> list[str]:
    """torchvision entries with at most ``max_params`` parameters: ``torchvision_names(30e6)``
    skips the VGGs, the big RegNets and ViTs (``regnet_y_128gf`` alone takes a minute)."""
    return names("torchvision", max_params)


def measure(entry: RealModel) -> Measured:
    """Build ``entry`` (seed 0) and run batch 2 forward once, timing both."""
    start = time.perf_counter()
    model = entry.build(0)
    built = time.perf_counter()
    forward_logits(entry, model, entry.example())
    done = time.perf_counter()
    params = sum(p.numel() for p in model.parameters())
    return Measured(params, bool(stochastic_modules(model)), round(built - start, 2),
                    round(done - built, 2))  # fmt: skip


# name -> Measured(params, dropout, build_s, forward_s), printed by ``--measure``.
MEASURED: dict[str, Measured] = {
    "alexnet": Measured(57044810, True, 0.66, 0.11),
    "convnext_base": Measured(87576714, True, 2.25, 0.17),
    "convnext_large": Measured(196245706, True, 4.84, 0.31),
    "convnext_small": Measured(49462378, True, 1.06, 0.11),
    "convnext_tiny": Measured(27827818, True, 0.59, 0.06),
    "densenet121": Measured(6964106, False, 0.17, 0.07),
    "densenet161": Measured(26494090, False, 0.5, 0.15),
    "densenet169": Measured(12501130, False, 0.29, 0.09),
    "densenet201": Measured(18112138, False, 0.4, 0.12),
    "efficientnet_b0": Measured(4020358, True, 0.11, 0.05),
    "efficientnet_b1": Measured(6525994, True, 0.17, 0.05),
    "efficientnet_b2": Measured(7715084, True, 0.19, 0.06),
    "efficientnet_b3": Measured(10711602, True, 0.25, 0.07),
    "efficientnet_b4": Measured(17566546, True, 0.37, 0.11),
    "efficientnet_b5": Measured(28361274, True, 0.6, 0.16),
    "efficientnet_b6": Measured(40758754, True, 0.79, 0.19),
    "efficientnet_b7": Measured(63812570, True, 2.15, 0.25),
    "efficientnet_v2_l": Measured(117247082, True, 2.22, 0.34),
    "efficientnet_v2_m": Measured(52871166, True, 1.17, 0.2),
    "efficientnet_v2_s": Measured(20190298, True, 0.5, 0.17),
    "googlenet": Measured(5610154, True, 0.21, 0.05),
    "inception_v3": Measured(21806058, True, 0.55, 0.14),
    "maxvit_t": Measured(30412744, True, 0.6, 1.07),
    "mnasnet0_5": Measured(950322, True, 0.05, 0.03),
    "mnasnet0_75": Measured(1902018, True, 0.06, 0.04),
    "mnasnet1_0": Measured(3115122, True, 0.09, 0.04),
    "mnasnet1_3": Measured(5014066, True, 0.13, 0.04),
    "mobilenet_v2": Measured(2236682, True, 0.07, 0.03),
    "mobilenet_v3_large": Measured(4214842, True, 0.1, 0.03),
    "mobilenet_v3_small": Measured(1528106, True, 0.06, 0.02),
    "regnet_x_16gf": Measured(52250026, False, 0.9, 0.25),
    "regnet_x_1_6gf": Measured(8286266, False, 0.21, 0.06),
    "regnet_x_32gf": Measured(105315770, False, 1.57, 0.34),
    "regnet_x_3_2gf": Measured(14297642, False, 0.2, 0.06),
    "regnet_x_400mf": Measured(5098986, False, 0.09, 0.03),
    "regnet_x_800mf": Measured(6593386, False, 0.12, 0.04),
    "regnet_x_8gf": Measured(37670858, False, 0.47, 0.13),
    "regnet_y_128gf": Measured(637493824, False, 13.6, 2.59),
    "regnet_y_16gf": Measured(80595390, False, 1.59, 0.33),
    "regnet_y_1_6gf": Measured(10322320, False, 0.23, 0.08),
    "regnet_y_32gf": Measured(141370900, False, 2.48, 0.52),
    "regnet_y_3_2gf": Measured(17938468, False, 0.8, 0.12),
    "regnet_y_400mf": Measured(3907554, False, 0.11, 0.04),
    "regnet_y_800mf": Measured(5655362, False, 0.16, 0.07),
    "regnet_y_8gf": Measured(37384642, False, 0.7, 0.2),
    "resnet101": Measured(42520650, False, 0.87, 0.18),
    "resnet152": Measured(58164298, False, 1.04, 0.24),
    "resnet18": Measured(11181642, False, 0.23, 0.03),
    "resnet34": Measured(21289802, False, 0.37, 0.05),
    "resnet50": Measured(23528522, False, 0.4, 0.07),
    "resnext101_32x8d": Measured(86762826, False, 1.48, 0.38),
    "resnext101_64x4d": Measured(81426762, False, 1.32, 0.36),
    "resnext50_32x4d": Measured(23000394, False, 0.42, 0.1),
    "shufflenet_v2_x0_5": Measured(352042, False, 0.03, 0.02),
    "shufflenet_v2_x1_0": Measured(1263854, False, 0.03, 0.03),
    "shufflenet_v2_x1_5": Measured(2488874, False, 0.05, 0.03),
    "shufflenet_v2_x2_0": Measured(5365486, False, 0.07, 0.04),
    "squeezenet1_0": Measured(740554, True, 0.02, 0.02),
    "squeezenet1_1": Measured(727626, True, 0.02, 0.01),
    "swin_b": Measured(86753474, True, 2.21, 0.31),
    "swin_s": Measured(48844948, True, 1.27, 0.19),
    "swin_t": Measured(27527044, True, 0.72, 0.53),
    "swin_v2_b": Measured(86916098, True, 1.65, 0.27),
    "swin_v2_s": Measured(48976132, True, 1.02, 0.19),
    "swin_v2_t": Measured(27590260, True, 0.53, 0.1),
    "vgg11": Measured(128807306, True, 1.78, 0.12),
    "vgg11_bn": Measured(128812810, True, 1.94, 0.09),
    "vgg13": Measured(128991818, True, 1.81, 0.09),
    "vgg13_bn": Measured(128997706, True, 1.74, 0.09),
    "vgg16": Measured(134301514, True, 1.88, 0.1),
    "vgg16_bn": Measured(134309962, True, 1.97, 0.13),
    "vgg19": Measured(139611210, True, 1.56, 0.07),
    "vgg19_bn": Measured(139622218, True, 1.31, 0.1),
    "vit_b_16": Measured(85658890, False, 0.55, 0.07),
    "vit_b_32": Measured(87426058, False, 0.56, 0.06),
    "vit_h_14": Measured(630455050, False, 7.67, 1.96),
    "vit_l_16": Measured(303115274, False, 6.77, 0.79),
    "vit_l_32": Measured(305471498, False, 5.16, 0.75),
    "wide_resnet101_2": Measured(124858186, False, 2.34, 0.37),
    "wide_resnet50_2": Measured(66854730, False, 1.57, 0.19),
    "timm/halonet26t": Measured(10451778, False, 0.42, 0.57),
    "timm/resnext26ts": Measured(8269442, False, 0.24, 0.08),
    "timm/mobileone_s0": Measured(4278522, False, 0.24, 0.15),
    "timm/repvgg_a0": Measured(7840778, False, 0.1, 0.03),
    "timm/test_byobnet": Measured(202426, False, 0.01, 0.01),
    "timm/beit_base_patch16_224": Measured(85665994, False, 0.91, 0.07),
    "timm/cait_xxs24_224": Measured(11728330, False, 0.14, 0.02),
    "timm/coat_lite_tiny": Measured(5404170, False, 0.06, 0.02),
    "timm/convit_tiny": Measured(5482578, False, 0.07, 0.01),
    "timm/convmixer_768_32": Measured(20348938, False, 0.1, 0.04),
    "timm/convnext_atto": Measured(3377730, False, 0.05, 0.06),
    "timm/test_convnext": Measured(207778, False, 0.01, 0.01),
    "timm/cpubone_b0_bfrobust": Measured(8780570, True, 0.05, 0.07),
    "timm/crossvit_tiny_240": Measured(6727700, False, 0.09, 0.11),
    "timm/csatv2": Measured(10720314, False, 0.15, 0.04),
    "timm/cs3darknet_focus_s": Measured(2766858, False, 0.03, 0.01),
    "timm/cspnext_tiny": Measured(2352550, False, 0.23, 0.09),
    "timm/davit_tiny": Measured(27598858, False, 0.39, 0.05),
    "timm/deepseek_vit_412m": Measured(411852810, False, 4.96, 5.88),
    "timm/deit_tiny_patch16_224": Measured(5489482, False, 0.13, 0.01),
    "timm/densenet121": Measured(6964106, False, 0.2, 0.04),
    "timm/dla34": Measured(15234234, False, 0.13, 0.02),
    "timm/dpn48b": Measured(8301556, False, 0.05, 0.03),
    "timm/edgenext_xx_small": Measured(1159906, False, 0.03, 0.05),
    "timm/efficientformer_l1": Measured(11400908, False, 0.07, 0.15),
    "timm/efficientformerv2_s0": Measured(3246724, False, 0.04, 0.03),
    "timm/efficientnet_b0": Measured(4020358, False, 0.05, 0.1),
    "timm/tinynet_e": Measured(774782, False, 0.02, 0.02),
    "timm/test_efficientnet": Measured(101766, False, 0.01, 0.01),
    "timm/efficientvim_m1": Measured(5725098, False, 0.04, 0.05),
    "timm/efficientvit_b0": Measured(2141818, False, 0.02, 0.03),
    "timm/efficientvit_m0": Measured(2158366, False, 0.04, 0.05),
    "timm/eva02_tiny_patch14_224": Measured(5455690, False, 0.07, 0.01),
    "timm/fasternet_t0": Measured(2637310, False, 0.04, 0.05),
    "timm/fastvit_t8": Measured(3264922, False, 0.06, 0.04),
    "timm/focalnet_tiny_srf": Measured(27665806, True, 0.5, 0.07),
    "timm/gcvit_xxtiny": Measured(11445606, False, 0.08, 0.03),
    "timm/gemma4_vit_167m": Measured(167372298, False, 1.7, 0.14),
    "timm/ghostnet_050": Measured(1319102, False, 0.03, 0.05),
    "timm/hardcorenas_a": Measured(3992042, False, 0.05, 0.06),
    "timm/hgnetv2_b0": Measured(3968040, False, 0.08, 0.09),
    "timm/hiera_tiny_224": Measured(26853994, False, 0.34, 0.04),
    "timm/hieradet_small": Measured(33969034, False, 0.59, 0.17),
    "timm/hrnet_w18_small": Measured(11158954, False, 0.19, 0.08),
    "timm/iformer_t": Measured(2632026, False, 0.09, 0.03),
    "timm/inception_next_atto": Measured(3205130, False, 0.09, 0.14),
    "timm/inception_resnet_v2": Measured(54321834, False, 0.39, 0.18),
    "timm/inception_v3": Measured(21806058, False, 0.42, 0.13),
    "timm/inception_v4": Measured(41158186, False, 0.3, 0.14),
    "timm/lcnetv2_small": Measured(2860362, False, 0.05, 0.09),
    "timm/levit_128s": Measured(7014758, False, 0.29, 0.06),
    "timm/lowformer_b0": Measured(12515482, False, 0.11, 0.03),
    "timm/mambaout_femto": Measured(6163066, False, 0.15, 0.09),
    "timm/test_mambaout": Measured(193130, False, 0.04, 0.02),
    "timm/maxvit_rmlp_pico_rw_256": Measured(7261550, True, 0.16, 0.14),
    "timm/coatnet_nano_rw_224": Measured(14594974, False, 0.28, 0.06),
    "timm/test_maxvit": Measured(965542, False, 0.06, 0.1),
    "timm/poolformer_s12": Measured(11407306, False, 0.32, 0.08),
    "timm/mixer_s16_224": Measured(17232426, False, 0.44, 0.08),
    "timm/mobilenetv3_small_050": Measured(578474, False, 0.07, 0.06),
    "timm/mobilenetv5_300m": Measured(294147402, False, 12.39, 1.64),
    "timm/mobilevit_xxs": Measured(954234, False, 0.12, 0.09),
    "timm/mvitv2_tiny": Measured(23340586, False, 0.99, 0.09),
    "timm/naflexvit_base_patch16_gap": Measured(85872394, False, 1.88, 0.18),
    "timm/nasnetalarge": Measured(84760480, False, 0.97, 0.66),
    "timm/nest_tiny": Measured(16160362, True, 0.39, 0.06),
    "timm/nextvit_small": Measured(30748618, True, 0.67, 0.14),
    "timm/nf_resnet26": Measured(13966666, False, 0.23, 0.1),
    "timm/test_nfnet": Measured(192010, False, 0.01, 0.04),
    "timm/pit_ti_224": Measured(4546762, False, 0.04, 0.02),
    "timm/pnasnet5large": Measured(81779878, False, 0.58, 0.28),
    "timm/pvt_v2_b0": Measured(3412330, False, 0.07, 0.13),
    "timm/qwen3_vit_88m": Measured(87422218, False, 1.79, 0.15),
    "timm/rdnet_tiny": Measured(22832418, False, 0.4, 0.12),
    "timm/regnety_002": Measured(2797686, False, 0.09, 0.1),
    "timm/repghostnet_050": Measured(1045778, False, 0.42, 0.14),
    "timm/repvit_m0_9": Measured(4727028, False, 0.12, 0.14),
    "timm/res2net50_14w_8s": Measured(23031306, False, 0.47, 0.16),
    "timm/resnest14d": Measured(8583178, False, 0.16, 0.45),
    "timm/resnet10t": Measured(4927618, False, 0.09, 0.14),
    "timm/resnet18": Measured(11181642, False, 0.2, 0.31),
    "timm/seresnet18": Measured(11271754, False, 0.21, 0.26),
    "timm/test_resnet": Measured(373658, False, 0.02, 0.05),
    "timm/resnetv2_18": Measured(11179850, False, 0.2, 0.25),
    "timm/rexnet_100": Measured(3528683, True, 0.11, 0.23),
    "timm/selecsls42": Measured(29086762, False, 0.47, 0.09),
    "timm/legacy_seresnet18": Measured(11270722, False, 0.19, 0.29),
    "timm/sequencer2d_s": Measured(27270538, False, 0.47, 0.11),
    "timm/shvit_s1": Measured(6013018, False, 0.1, 0.1),
    "timm/skresnet18": Measured(11450186, False, 0.21, 0.33),
    "timm/starnet_s050": Measured(415018, False, 0.05, 0.06),
    "timm/swiftformer_xs": Measured(3037780, False, 0.11, 0.17),
    "timm/swin_tiny_patch4_window7_224": Measured(27506020, True, 0.62, 0.06),
    "timm/swinv2_tiny_window8_256": Measured(27585844, True, 0.63, 0.06),
    "timm/swinv2_cr_tiny_224": Measured(27570814, True, 0.25, 0.06),
    "timm/tiny_vit_5m_224": Measured(5074974, False, 0.28, 0.34),
    "timm/tnt_s_patch16_224": Measured(23313706, False, 0.55, 0.08),
    "timm/tresnet_m": Measured(29360522, False, 0.55, 0.12),
    "timm/twins_pcpvt_small": Measured(23598346, False, 0.52, 0.08),
    "timm/vgg11": Measured(128807306, False, 2.01, 0.26),
    "timm/visformer_tiny": Measured(9940218, False, 0.19, 0.14),
    "timm/vit_tiny_patch16_224": Measured(5526346, False, 0.11, 0.12),
    "timm/test_vit": Measured(306890, False, 0.01, 0.01),
    "timm/vit_tiny_r_s16_p8_224": Measured(6146634, False, 0.11, 0.08),
    "timm/vit_relpos_small_patch16_224": Measured(21602770, True, 0.16, 0.05),
    "timm/test_vit_relpos": Measured(754117, True, 0.02, 0.03),
    "timm/samvit_base_patch16": Measured(86467338, False, 0.52, 0.49),
    "timm/vitamin_small_224": Measured(21807818, False, 0.38, 0.05),
    "timm/volo_d1_224": Measured(25796012, False, 0.56, 0.06),
    "timm/ese_vovnet19b_dw": Measured(5528330, False, 0.1, 0.22),
    "timm/legacy_xception": Measured(20827442, False, 0.37, 0.11),
    "timm/xception41": Measured(24941050, False, 0.21, 0.13),
    "timm/xcit_nano_12_p16_224": Measured(2925514, False, 0.08, 0.11),
    "hf/gpt2": Measured(22368, True, 1.87, 0.0),
    "hf/llama": Measured(24928, False, 0.02, 0.0),
    "hf/mistral": Measured(24928, False, 0.02, 0.0),
    "hf/mixtral": Measured(62048, False, 0.02, 0.0),
    "hf/qwen2": Measured(25056, False, 0.02, 0.0),
    "hf/qwen2_moe": Measured(43808, False, 0.02, 0.0),
    "hf/qwen3": Measured(24960, False, 0.02, 0.0),
    "hf/gemma": Measured(21760, False, 0.02, 0.0),
    "hf/gemma2": Measured(21888, False, 0.02, 0.0),
    "hf/gemma3_text": Measured(21920, False, 0.06, 0.0),
    "hf/gpt_neox": Measured(23488, True, 0.02, 0.0),
    "hf/opt": Measured(22432, True, 0.02, 0.0),
    "hf/phi": Measured(21347, False, 0.02, 0.0),
    "hf/phi3": Measured(24928, False, 0.01, 0.0),
    "hf/falcon": Measured(24864, False, 0.02, 0.0),
    "hf/bloom": Measured(28704, False, 0.02, 0.0),
    "hf/gptj": Measured(23203, False, 0.02, 0.0),
    "hf/gpt_neo": Measured(22176, True, 0.06, 0.0),
    "hf/codegen": Measured(23203, False, 0.01, 0.0),
    "hf/olmo": Measured(24768, False, 0.02, 0.0),
    "hf/olmo2": Measured(25024, False, 0.01, 0.0),
    "hf/stablelm": Measured(25088, False, 0.02, 0.0),
    "hf/starcoder2": Measured(18208, False, 0.02, 0.0),
    "hf/gpt_bigcode": Measured(19200, True, 0.02, 0.0),
    "hf/mpt": Measured(27904, False, 0.02, 0.0),
    "hf/cohere": Measured(21696, False, 0.02, 0.0),
    "hf/granite": Measured(24928, False, 0.01, 0.0),
    "hf/biogpt": Measured(22432, True, 0.02, 0.0),
    "hf/xglm": Measured(20320, True, 0.02, 0.0),
    "hf/bert": Measured(23651, True, 0.03, 0.0),
    "hf/roberta": Measured(23907, True, 0.02, 0.0),
    "hf/xlm-roberta": Measured(23907, True, 0.02, 0.0),
    "hf/distilbert": Measured(23587, True, 0.02, 0.0),
    "hf/albert": Measured(12419, True, 0.02, 0.0),
    "hf/electra": Measured(20963, True, 0.02, 0.0),
    "hf/deberta": Measured(23523, True, 0.02, 0.0),
    "hf/deberta-v2": Measured(23587, True, 0.02, 0.0),
    "hf/mpnet": Measured(23971, True, 0.02, 0.0),
    "hf/modernbert": Measured(24963, False, 0.02, 0.0),
    "hf/roformer": Measured(22115, True, 0.03, 0.0),
    "hf/convbert": Measured(23783, True, 0.02, 0.0),
    "hf/t5": Measured(44768, True, 0.04, 0.01),
    "hf/bart": Measured(50272, True, 0.04, 0.01),
    "hf/mbart": Measured(50400, True, 0.03, 0.01),
    "hf/pegasus": Measured(50144, True, 0.05, 0.01),
    "hf/marian": Measured(50016, True, 0.04, 0.01),
    "hf/mamba": Measured(20032, False, 0.02, 0.01),
    "hf/mamba2": Measured(21232, False, 0.02, 0.01),
    "hf/falcon_mamba": Measured(20032, False, 0.02, 0.0),
    "hf/rwkv": Measured(25600, False, 0.03, 0.0),
    "hf/whisper": Measured(59232, False, 0.04, 0.01),
    "hf/wav2vec2": Measured(36144, True, 0.03, 0.01),
    "hf/hubert": Measured(36144, True, 0.02, 0.0),
    "hf/clip": Measured(48353, False, 0.04, 0.01),
    "hf/siglip": Measured(55778, False, 0.06, 0.0),
    "hf/vit": Measured(24234, False, 0.02, 0.0),
    "hf/deit": Measured(24298, False, 0.02, 0.0),
    "hf/beit": Measured(23754, True, 0.04, 0.0),
    "hf/dinov2": Measured(33034, False, 0.04, 0.01),
    "hf/swin": Measured(19088, True, 0.05, 0.01),
    "hf/convnext": Measured(16346, False, 0.01, 0.0),
    "hf/resnet": Measured(21914, False, 0.02, 0.01),
    "hf/mobilevit": Measured(332162, True, 0.05, 0.02),
    "torch/lstm": Measured(20394, False, 0.0, 0.0),
    "torch/gru": Measured(16170, False, 0.0, 0.0),
    "torch/transformer_encoder": Measured(20586, True, 0.01, 0.0),
}


def _main(argv: list[str]) -> None:
    """``python3 tests/real_zoo.py --measure [NAME...]``: print MEASURED rows."""
    torch.set_num_threads(1)
    chosen = argv[1:] or list(REGISTRY)
    import_vision()  # import the libraries first: the first build should not pay for them
    import timm  # noqa: F401
    import torchvision.models  # noqa: F401
    import transformers  # noqa: F401

    for name in chosen:
        m = measure(REGISTRY[name])
        print(f"    {name!r}: Measured({m.params}, {m.dropout}, {m.build_s}, {m.forward_s}),",
              flush=True)  # fmt: skip


if __name__ == "__main__":
    if sys.argv[1:2] != ["--measure"]:
        raise SystemExit("usage: python3 tests/real_zoo.py --measure [NAME...]")
    _main(sys.argv[1:])


__all__ = [
    "MEASURED", "REGISTRY", "Measured", "RealModel", "forward_logits", "import_vision",
    "measure", "names", "seeded", "stochastic_modules", "torchvision_names",
]  # fmt: skip
