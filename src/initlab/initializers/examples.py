"""An example input made from the model itself, so that activations and residual streams come
from one real forward pass even when the user gives no ``example``.

:func:`example_for` tries, in order:

1. **Hugging Face** models (anything with a ``config`` that has a ``model_type``): inputs read
   from the config and the forward's signature: ``input_ids`` within ``vocab_size``,
   ``pixel_values`` of ``image_size`` and ``num_channels`` (both towers of CLIP-like models),
   ``input_features`` of ``num_mel_bins`` x ``2 * max_source_positions`` (Whisper), and
   ``decoder_input_ids`` for encoder-decoder models.
2. **timm** models: ``pretrained_cfg["input_size"]`` (or ``default_cfg``).
3. **Any other module**: candidates read from its first weight layer in registration order
   (``Conv2d(c, ...)``: images ``(2, c, s, s)`` for s = 32, 64, 224; ``Linear(f, ...)``:
   ``(2, f)`` then ``(2, 8, f)``; ``Embedding(n, ...)``: token ids; ``LSTM``/``GRU``: a sequence),
   each tried by tracing until one runs.

Every tensor comes from a private generator seeded with a constant: the example, and so the
plan, is the same in every process whatever the global RNG. Batches are small (2 x 8 tokens):
the data flow does not depend on the batch size.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

_BATCH = 2
_TOKENS = 8
_SIZES = (32, 64, 224)


@dataclass(frozen=True)
class MadeExample:
    """An input made for a model and where its shape came from (``"hugging face config"``,
    ``"timm input_size"``, ``"first layer"``)."""

    value: Any
    source: str


def _generator() -> torch.Generator:
    return torch.Generator().manual_seed(0x1A17)


def _device_of(model: nn.Module) -> torch.device:
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


def _dtype_of(model: nn.Module) -> torch.dtype:
    for tensor in model.parameters():
        if tensor.is_floating_point():
            return tensor.dtype
    return torch.get_default_dtype()


def _floats(shape: tuple[int, ...], model: nn.Module) -> torch.Tensor:
    x = torch.randn(shape, generator=_generator())
    return x.to(device=_device_of(model), dtype=_dtype_of(model))


def _ids(vocab: int, model: nn.Module, tokens: int = _TOKENS) -> torch.Tensor:
    ids = torch.randint(0, max(1, vocab), (_BATCH, tokens), generator=_generator())
    return ids.to(_device_of(model))


def _accepts(model: nn.Module) -> set[str]:
    try:
        parameters = inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return set()
    return set(parameters)


def _sub(config: Any, name: str) -> Any:
    return getattr(config, name, None)


def _first(config: Any, *names: str) -> Any:
    """The first attribute of ``config`` (or of its text/vision/encoder sub-configs) that is set."""
    for holder in (config, *(_sub(config, s) for s in ("text_config", "vision_config"))):
        if holder is None:
            continue
        for name in names:
            value = getattr(holder, name, None)
            if value is not None:
                return value
    return None


def _image(config: Any, model: nn.Module) -> torch.Tensor | None:
    vision = _sub(config, "vision_config") or config
    size = getattr(vision, "image_size", None)
    channels = getattr(vision, "num_channels", None) or 3
    if isinstance(size, list | tuple):
        height, width = int(size[0]), int(size[-1])
    elif isinstance(size, int):
        height = width = size
    else:
        return None
    return _floats((_BATCH, int(channels), height, width), model)


def _hugging_face(model: nn.Module) -> Iterator[dict[str, Any]]:
    config = getattr(model, "config", None)
    if config is None or not hasattr(config, "model_type"):
        return
    accepts = _accepts(model)
    main = getattr(model, "main_input_name", "input_ids")
    vocab = _first(config, "vocab_size")
    batch: dict[str, Any] = {}
    if main == "input_features" or ("input_features" in accepts and main != "input_ids"):
        mel = _first(config, "num_mel_bins", "feature_size") or 80
        frames = 2 * (_first(config, "max_source_positions") or 1500)
        batch["input_features"] = _floats((_BATCH, int(mel), int(frames)), model)
    elif main == "input_values":
        batch["input_values"] = _floats((_BATCH, 1600), model)
    if "pixel_values" in accepts:
        image = _image(config, model)
        if image is not None:
            batch["pixel_values"] = image
    if "input_ids" in accepts and vocab is not None and (main == "input_ids" or batch == {}):
        batch["input_ids"] = _ids(int(vocab), model)
    elif "input_ids" in accepts and vocab is not None and "pixel_values" in batch:
        batch["input_ids"] = _ids(int(vocab), model)  # both towers of CLIP-like models
    if getattr(config, "is_encoder_decoder", False) and "decoder_input_ids" in accepts:
        decoder = getattr(config, "decoder", None)
        decoder_vocab = getattr(decoder, "vocab_size", None) or vocab
        if decoder_vocab is not None:
            batch["decoder_input_ids"] = _ids(int(decoder_vocab), model, 4)
    if batch:
        yield batch


def _timm(model: nn.Module) -> Iterator[torch.Tensor]:
    for attribute in ("pretrained_cfg", "default_cfg"):
        cfg = getattr(model, attribute, None)
        size = cfg.get("input_size") if isinstance(cfg, dict) else None
        if isinstance(size, list | tuple) and len(size) == 3:
            yield _floats((_BATCH, *(int(s) for s in size)), model)
            return


def _first_layer(model: nn.Module) -> Iterator[Any]:
    for module in model.modules():
        if isinstance(module, nn.Embedding | nn.EmbeddingBag):
            yield _ids(module.num_embeddings, model)
            return
        if isinstance(module, nn.modules.conv._ConvNd) and not isinstance(
            module, nn.modules.conv._ConvTransposeNd
        ):
            dims = len(module.kernel_size)
            channels = module.in_channels
            for size in _SIZES:
                yield _floats((_BATCH, channels, *(size,) * dims), model)
            return
        if isinstance(module, nn.Linear):
            yield _floats((_BATCH, module.in_features), model)
            yield _floats((_BATCH, _TOKENS, module.in_features), model)
            return
        if isinstance(module, nn.RNNBase):
            first = (_BATCH, _TOKENS) if module.batch_first else (_TOKENS, _BATCH)
            yield _floats((*first, module.input_size), model)
            return
        if isinstance(module, nn.MultiheadAttention):
            x = _floats((_BATCH, _TOKENS, module.embed_dim), model)
            yield (x, x, x)
            return


_MAKERS: tuple[tuple[str, Callable[[nn.Module], Iterator[Any]]], ...] = (
    ("hugging face config", _hugging_face),
    ("timm input_size", _timm),
    ("first layer", _first_layer),
)


def candidate_examples(model: nn.Module) -> Iterator[MadeExample]:
    """Inputs ``model`` may accept, most likely first (see the module docstring); the caller
    tries each (a forward pass) until one runs: a timm model built at another ``img_size``
    than its ``pretrained_cfg`` says takes the first layer's candidates. None for a container
    without a forward
    (``nn.ModuleList``, ``nn.ModuleDict``)."""
    if type(model).forward is nn.Module.forward:
        return
    for source, maker in _MAKERS:
        for value in maker(model):
            yield MadeExample(value, source)
