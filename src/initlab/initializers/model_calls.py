"""How initlab runs a model it is given: call it as the example says (a tensor, a tuple of
positional arguments or a dict of keyword arguments), find the tensor its output stands for,
and leave nothing changed (buffers restored, the RNG forked).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import nn


def _tensors(obj: Any, depth: int = 0) -> Iterator[torch.Tensor]:
    """Tensors inside ``obj``: tuples, lists, dicts (``ModelOutput``), dataclass-like objects."""
    if isinstance(obj, torch.Tensor):
        yield obj
    elif depth > 4:
        return
    elif isinstance(obj, tuple | list):
        for item in obj:
            yield from _tensors(item, depth + 1)
    elif isinstance(obj, dict):
        for item in obj.values():
            yield from _tensors(item, depth + 1)


_PROBE_SEED = 0x1A17


@contextlib.contextmanager
def _restored_state(model: nn.Module) -> Iterator[None]:
    """Run ``model`` under a forked, fixed-seed global RNG and restore every buffer (running
    statistics) afterwards."""
    buffers = [(b, b.detach().clone()) for b in model.buffers() if b.device.type != "meta"]
    devices = sorted(
        {b.device.index or 0 for b, _ in buffers if b.device.type == "cuda"}
        | {p.device.index or 0 for p in model.parameters() if p.device.type == "cuda"}
    )
    try:
        with torch.random.fork_rng(devices=devices):
            # Whatever the model draws while it is probed (dropout, stochastic depth) is the
            # same in every process: the global RNG's state must not decide initlab's answers.
            torch.manual_seed(_PROBE_SEED)
            yield
    finally:
        with torch.no_grad():
            for buffer, saved in buffers:
                buffer.copy_(saved)


def call_model(model: nn.Module, example: Any) -> Any:
    """Call ``model`` as ``example`` says: a tensor, a tuple of positional arguments, or a dict
    of keyword arguments (``model(**batch)``, the Hugging Face way)."""
    if isinstance(example, Mapping):
        return model(**example)
    if isinstance(example, tuple):
        return model(*example)
    return model(example)


def main_output(output: Any) -> torch.Tensor:
    """The tensor a model's output stands for: the output itself, its ``logits`` or
    ``last_hidden_state`` (by name, as Hugging Face ``ModelOutput`` objects have them), else the
    first tensor in a tuple, list or dict."""
    if isinstance(output, torch.Tensor):
        return output
    for attr in ("logits", "last_hidden_state"):
        if getattr(output, attr, None) is not None:
            return getattr(output, attr)
    tensors = [t for t in _tensors(output) if isinstance(t, torch.Tensor)]
    if not tensors:
        raise TypeError(f"the model returned no tensor ({type(output).__name__})")
    return tensors[0]
