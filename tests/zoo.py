"""A zoo of real architectures for tests: models nobody at initlab wrote.

Hugging Face models are built from small configs (``transformers`` is a dev dependency; nothing
is downloaded). torchvision and timm cannot be imported with the CPU torch here, so their
structures are written out compactly, keeping every detail that trips up an init tool:

- ``resnet_bottleneck`` / ``resnet_basic``: torchvision's ResNet (BN after every conv, in-place
  ``out += identity``, ``ReLU(inplace=True)`` registered once and called several times,
  downsample branches);
- ``mobilenet_v3``: depthwise-separable blocks with squeeze-excite (Hardsigmoid gate) and
  Hardswish, as torchvision's MobileNetV3;
- ``efficientnet``: timm's ``BatchNormAct2d`` (a BatchNorm subclass that owns ``drop =
  Identity()`` and ``act = SiLU()`` and calls them in its own forward);
- ``convnext``: timm's ConvNeXt block (depthwise 7x7, ``LayerNorm2d``, 4x MLP with GELU,
  layer-scale ``gamma`` = 1e-6);
- ``vit``: torchvision's ViT (conv patch embedding, ``class_token``, ``pos_embedding``,
  ``nn.MultiheadAttention`` encoder blocks, zero-initialised head);
- ``gpt2``, ``bert``, ``llama``, ``t5``: Hugging Face, small configs;
- ``transformer_encoder``, ``lstm``, ``gru``: torch built-ins.

Every factory takes ``seed`` and returns ``ZooModel(model, example)``, where ``example`` is how
the model is called: a tensor, a tuple of positional arguments, or a dict of keyword arguments.
Construction runs under ``torch.random.fork_rng`` so the caller's global RNG is untouched.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from initlab.initializers.model_calls import call_model, main_output


@dataclass
class ZooModel:
    model: nn.Module
    example: Any  # tensor, tuple of positional args, or dict of keyword args
    kind: str  # "cnn", "transformer", "rnn"


@contextlib.contextmanager
def _seeded(seed: int):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


# ---------------------------------------------------------------------- torchvision ResNet
class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample=None):
        super().__init__()
        width = planes
        self.conv1 = nn.Conv2d(inplanes, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class ResNet(nn.Module):
    """torchvision.models.ResNet, with its constructor's init (kaiming fan_out on convs)."""

    def __init__(self, block, layers, num_classes: int = 10, width: int = 16):
        super().__init__()
        self.inplanes = width
        self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = self._make_layer(block, width, layers[0])
        self.layer2 = self._make_layer(block, width * 2, layers[1], stride=2)
        self.layer3 = self._make_layer(block, width * 4, layers[2], stride=2)
        self.layer4 = self._make_layer(block, width * 8, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(width * 8 * block.expansion, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d | nn.GroupNorm):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def _make_layer(self, block, planes, blocks, stride=1):
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride, bias=False),
                nn.BatchNorm2d(planes * block.expansion),
            )
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def resnet_basic(seed: int = 0, batch: int = 8, size: int = 32) -> ZooModel:
    """ResNet-18's structure ([2, 2, 2, 2] basic blocks), 16 base channels."""
    with _seeded(seed):
        model = ResNet(BasicBlock, [2, 2, 2, 2])
        x = torch.randn(batch, 3, size, size)
    return ZooModel(model, x, "cnn")


def resnet_bottleneck(
    seed: int = 0, batch: int = 8, size: int = 32, layers=(3, 4, 6, 3)
) -> ZooModel:
    """ResNet-50's structure ([3, 4, 6, 3] bottlenecks), 16 base channels."""
    with _seeded(seed):
        model = ResNet(Bottleneck, list(layers))
        x = torch.randn(batch, 3, size, size)
    return ZooModel(model, x, "cnn")


# ---------------------------------------------------------------------- MobileNetV3 / EfficientNet
class SqueezeExcitation(nn.Module):
    """torchvision.ops.SqueezeExcitation: x * hardsigmoid(fc2(relu(fc1(avgpool(x)))))."""

    def __init__(self, channels: int, squeeze: int):
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, channels, 1)
        self.activation = nn.ReLU()
        self.scale_activation = nn.Hardsigmoid()

    def forward(self, x):
        scale = self.scale_activation(self.fc2(self.activation(self.fc1(self.avgpool(x)))))
        return scale * x


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, expand: int, cout: int, stride: int, use_se: bool):
        super().__init__()
        self.use_res_connect = stride == 1 and cin == cout
        layers: list[nn.Module] = [
            nn.Conv2d(cin, expand, 1, bias=False), nn.BatchNorm2d(expand), nn.Hardswish(),
            nn.Conv2d(expand, expand, 3, stride, 1, groups=expand, bias=False),
            nn.BatchNorm2d(expand), nn.Hardswish(),
        ]  # fmt: skip
        if use_se:
            layers.append(SqueezeExcitation(expand, max(8, expand // 4)))
        layers += [nn.Conv2d(expand, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.block = nn.Sequential(*layers)

    def forward(self, x):
        out = self.block(x)
        return out + x if self.use_res_connect else out


def mobilenet_v3(seed: int = 0, batch: int = 8, size: int = 32) -> ZooModel:
    """MobileNetV3-Small's blocks; torchvision's init (kaiming fan_out, Linear N(0, .01))."""
    with _seeded(seed):
        model = nn.Sequential(
            nn.Sequential(
                nn.Conv2d(3, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16), nn.Hardswish()
            ),
            InvertedResidual(16, 16, 16, 1, True),
            InvertedResidual(16, 64, 24, 2, False),
            InvertedResidual(24, 72, 24, 1, True),
            InvertedResidual(24, 96, 40, 2, True),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(40, 64),
            nn.Hardswish(),
            nn.Dropout(0.2),
            nn.Linear(64, 10),
        )
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)
        x = torch.randn(batch, 3, size, size)
    return ZooModel(model, x, "cnn")


class BatchNormAct2d(nn.BatchNorm2d):
    """timm.layers.BatchNormAct2d: batch norm, then ``drop`` (Identity) and ``act`` inside."""

    def __init__(self, num_features: int, act_layer=nn.SiLU):
        super().__init__(num_features)
        self.drop = nn.Identity()
        self.act = act_layer()

    def forward(self, x):
        x = F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                         self.training, self.momentum, self.eps)  # fmt: skip
        return self.act(self.drop(x))


class DepthwiseSeparableConv(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv_dw = nn.Conv2d(cin, cin, 3, 1, 1, groups=cin, bias=False)
        self.bn1 = BatchNormAct2d(cin)
        self.se = SqueezeExcitation(cin, max(4, cin // 4))
        self.conv_pw = nn.Conv2d(cin, cout, 1, bias=False)
        self.bn2 = BatchNormAct2d(cout, act_layer=nn.Identity)

    def forward(self, x):
        shortcut = x
        x = self.bn2(self.conv_pw(self.se(self.bn1(self.conv_dw(x)))))
        return x + shortcut if x.shape == shortcut.shape else x


def efficientnet(seed: int = 0, batch: int = 8, size: int = 32) -> ZooModel:
    """EfficientNet-B0's stem and depthwise-separable blocks with timm's BatchNormAct2d."""
    with _seeded(seed):
        model = nn.Sequential(
            nn.Conv2d(3, 32, 3, 2, 1, bias=False),
            BatchNormAct2d(32),
            DepthwiseSeparableConv(32, 32),
            DepthwiseSeparableConv(32, 16),
            nn.Conv2d(16, 64, 1, bias=False),
            BatchNormAct2d(64),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(64, 10),
        )
        x = torch.randn(batch, 3, size, size)
    return ZooModel(model, x, "cnn")


# ---------------------------------------------------------------------- ConvNeXt
class LayerNorm2d(nn.LayerNorm):
    """timm.layers.LayerNorm2d: LayerNorm over channels of an NCHW tensor."""

    def forward(self, x):
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class ConvNeXtBlock(nn.Module):
    def __init__(self, dim: int, ls_init_value: float = 1e-6):
        super().__init__()
        self.conv_dw = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Sequential()
        self.mlp.fc1 = nn.Linear(dim, 4 * dim)
        self.mlp.act = nn.GELU()
        self.mlp.fc2 = nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(ls_init_value * torch.ones(dim))

    def forward(self, x):
        shortcut = x
        x = self.conv_dw(x).permute(0, 2, 3, 1)
        x = self.mlp(self.norm(x))
        x = x.mul(self.gamma).permute(0, 3, 1, 2)
        return x + shortcut


def convnext(
    seed: int = 0, batch: int = 8, size: int = 32, depth: int = 3, dim: int = 32
) -> ZooModel:
    """ConvNeXt-Tiny's stem and blocks (timm: trunc_normal_(std=.02) weights, zero biases)."""
    with _seeded(seed):
        model = nn.Sequential(
            nn.Conv2d(3, dim, 4, 4),
            LayerNorm2d(dim, eps=1e-6),
            *[ConvNeXtBlock(dim) for _ in range(depth)],
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.LayerNorm(dim),
            nn.Linear(dim, 10),
        )
        for m in model.modules():
            if isinstance(m, nn.Conv2d | nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
        x = torch.randn(batch, 3, size, size)
    return ZooModel(model, x, "cnn")


# ---------------------------------------------------------------------- ViT
class EncoderBlock(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_dim: int):
        super().__init__()
        self.ln_1 = nn.LayerNorm(dim, eps=1e-6)
        self.self_attention = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.dropout = nn.Dropout(0.0)
        self.ln_2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Sequential(
            nn.Linear(dim, mlp_dim), nn.GELU(), nn.Dropout(0.0), nn.Linear(mlp_dim, dim),
            nn.Dropout(0.0),
        )  # fmt: skip

    def forward(self, x):
        y = self.ln_1(x)
        y, _ = self.self_attention(y, y, y, need_weights=False)
        x = x + self.dropout(y)
        return x + self.mlp(self.ln_2(x))


class VisionTransformer(nn.Module):
    """torchvision.models.VisionTransformer, small: conv_proj, class_token, pos_embedding."""

    def __init__(self, image: int = 16, patch: int = 4, dim: int = 64, depth: int = 2,
                 heads: int = 4, mlp_dim: int = 128, num_classes: int = 10):  # fmt: skip
        super().__init__()
        self.patch = patch
        self.conv_proj = nn.Conv2d(3, dim, patch, patch)
        seq = (image // patch) ** 2 + 1
        self.class_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embedding = nn.Parameter(torch.empty(1, seq, dim).normal_(std=0.02))
        self.layers = nn.Sequential(*[EncoderBlock(dim, heads, mlp_dim) for _ in range(depth)])
        self.ln = nn.LayerNorm(dim, eps=1e-6)
        self.heads = nn.Sequential()
        self.heads.head = nn.Linear(dim, num_classes)
        fan_in = 3 * patch * patch
        nn.init.trunc_normal_(self.conv_proj.weight, std=(1 / fan_in) ** 0.5)
        nn.init.zeros_(self.conv_proj.bias)
        nn.init.zeros_(self.heads.head.weight)
        nn.init.zeros_(self.heads.head.bias)

    def forward(self, x):
        x = self.conv_proj(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.class_token.expand(x.shape[0], -1, -1), x], dim=1)
        x = self.ln(self.layers(x + self.pos_embedding))
        return self.heads(x[:, 0])


def vit(seed: int = 0, batch: int = 8) -> ZooModel:
    with _seeded(seed):
        model = VisionTransformer()
        x = torch.randn(batch, 3, 16, 16)
    return ZooModel(model, x, "transformer")


# ---------------------------------------------------------------------- Hugging Face
_VOCAB = 128


def _ids(seed: int, batch: int, tokens: int) -> torch.Tensor:
    return torch.randint(0, _VOCAB, (batch, tokens), generator=torch.Generator().manual_seed(seed))


def _hf(build: Callable[[], nn.Module], seed: int) -> nn.Module:
    import transformers

    transformers.logging.set_verbosity_error()
    with _seeded(seed), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build()


def gpt2(
    seed: int = 0, batch: int = 2, tokens: int = 16, n_layer: int = 2, n_embd: int = 64
) -> ZooModel:
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(n_layer=n_layer, n_embd=n_embd, n_head=4, vocab_size=_VOCAB,
                        n_positions=64, bos_token_id=0, eos_token_id=0)  # fmt: skip
    model = _hf(lambda: GPT2LMHeadModel(config), seed)
    return ZooModel(model, {"input_ids": _ids(seed, batch, tokens)}, "transformer")


def bert(seed: int = 0, batch: int = 2, tokens: int = 16) -> ZooModel:
    from transformers import BertConfig, BertForMaskedLM

    config = BertConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=128, vocab_size=_VOCAB, max_position_embeddings=64,
                        pad_token_id=0)  # fmt: skip
    model = _hf(lambda: BertForMaskedLM(config), seed)
    ids = _ids(seed, batch, tokens)
    return ZooModel(
        model, {"input_ids": ids, "attention_mask": torch.ones_like(ids)}, "transformer"
    )


def llama(seed: int = 0, batch: int = 2, tokens: int = 16) -> ZooModel:
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, vocab_size=_VOCAB,
                         max_position_embeddings=64, pad_token_id=0, bos_token_id=1,
                         eos_token_id=2)  # fmt: skip
    model = _hf(lambda: LlamaForCausalLM(config), seed)
    return ZooModel(model, {"input_ids": _ids(seed, batch, tokens)}, "transformer")


def t5(seed: int = 0, batch: int = 2, tokens: int = 16) -> ZooModel:
    from transformers import T5Config, T5ForConditionalGeneration

    config = T5Config(d_model=64, d_ff=128, d_kv=16, num_heads=4, num_layers=2,
                      vocab_size=_VOCAB, pad_token_id=0, eos_token_id=1,
                      decoder_start_token_id=0)  # fmt: skip
    model = _hf(lambda: T5ForConditionalGeneration(config), seed)
    ids = _ids(seed, batch, tokens)
    return ZooModel(model, {"input_ids": ids, "decoder_input_ids": ids}, "transformer")


# ---------------------------------------------------------------------- torch built-ins
def transformer_encoder(seed: int = 0, batch: int = 4, tokens: int = 12) -> ZooModel:
    with _seeded(seed):
        layer = nn.TransformerEncoderLayer(64, 4, 128, dropout=0.0, batch_first=True)
        model = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        x = torch.randn(batch, tokens, 64)
    return ZooModel(model, x, "transformer")


class _RNNClassifier(nn.Module):
    def __init__(self, cell: type[nn.Module]):
        super().__init__()
        self.rnn = cell(16, 32, num_layers=2, batch_first=True)
        self.head = nn.Linear(32, 4)

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.head(out[:, -1])


def lstm(seed: int = 0, batch: int = 4, steps: int = 10) -> ZooModel:
    with _seeded(seed):
        model = _RNNClassifier(nn.LSTM)
        x = torch.randn(batch, steps, 16)
    return ZooModel(model, x, "rnn")


def gru(seed: int = 0, batch: int = 4, steps: int = 10) -> ZooModel:
    with _seeded(seed):
        model = _RNNClassifier(nn.GRU)
        x = torch.randn(batch, steps, 16)
    return ZooModel(model, x, "rnn")


# The whole zoo, by name: what the docs' model-zoo page and the parametrized tests walk.
ZOO: dict[str, Callable[..., ZooModel]] = {
    "resnet_basic": resnet_basic,
    "resnet_bottleneck": resnet_bottleneck,
    "mobilenet_v3": mobilenet_v3,
    "efficientnet": efficientnet,
    "convnext": convnext,
    "vit": vit,
    "gpt2": gpt2,
    "bert": bert,
    "llama": llama,
    "t5": t5,
    "transformer_encoder": transformer_encoder,
    "lstm": lstm,
    "gru": gru,
}


# How a zoo entry is called and read: the library's own helpers (a tensor, a tuple of
# positional arguments or a dict of keyword arguments; a ModelOutput's logits).
call = call_model
logits = main_output
