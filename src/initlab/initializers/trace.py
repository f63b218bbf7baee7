"""Data flow of any model, from one real forward pass on an example input.

``torch.fx`` cannot trace most real models (Hugging Face transformers fail on
``co_varnames``/``Proxy`` errors, data-dependent control flow defeats it), and the order in
which modules are registered is not the order in which data flows (T5's and Llama's MLPs
register ``wi, wo, act`` and ``gate_proj, up_proj, down_proj, act_fn``). :func:`trace` runs the
model once on an example and records what actually happened:

- every **module call** (forward pre/post hooks on each submodule), in execution order, with the
  tensors it consumed (positional and keyword arguments) and produced;
- every **torch function** called between and inside modules (a ``TorchFunctionMode``):
  ``F.gelu``, ``x + y``, ``x.view(...)``, ``F.dropout``, ``out += identity``. A function's own
  internals are not recorded (the mode is off while it runs), so ``F.multi_head_attention_forward``
  is one call, as fx sees it.

Tensors are followed by **value**: each tensor a call produces gets a new value id (so an
in-place op such as ``relu_`` or ``+=`` consumes the old value and produces a new one of the same
tensor object), and a module's output is linked to the value its inner call produced.

The run is side-effect free: under ``torch.no_grad``, in a forked RNG (CPU and the model's CUDA
devices), in the model's current train/eval mode, with every buffer (batch-norm running
statistics) restored afterwards.

What the recorded flow answers (:class:`DataFlow`):

- :meth:`DataFlow.following`: the activation that acts on a layer's output. The walk passes
  through *transparent* steps (dropout, ``nn.Identity``, shape ops such as view/reshape/permute/
  transpose/flatten/getitem/cat/chunk/expand, dtype casts, normalization layers and functions,
  pooling, elementwise ``add``/``mul``/``div``/``sub``: residual adds, scalings, layer scales and
  gates) and stops at the first **activation**: a known activation module or function, or an
  unknown parameter-free leaf module that acts elementwise and is not the identity (its gain is
  then measured from its own forward). A call that mixes features (``linear``, ``conv``,
  ``matmul``, attention, softmax) or a module with its own weight ends the walk with no
  activation. Normalization layers are transparent because the activation after a norm is the
  one the layer's pre-activations feed (conv -> batch norm -> ReLU: the conv gets ReLU's gain),
  the convention of He et al. and of ``torch.fx``-based tools. Unknown modules with children are
  looked into (timm's ``BatchNormAct2d`` calls ``F.batch_norm``, ``drop = Identity()`` and
  ``act = SiLU()`` inside its own forward).
- :meth:`DataFlow.residual`: whether a layer's output reaches, through dropout, scaling, layer
  scale, norms and shape ops only, an ``add`` whose other operand *skips* the layer (it is
  computed from a value upstream of the layer's input and not from the layer's output): the
  layers that write into a residual stream (GPT-2's ``c_proj``, ResNet's last conv and its
  batch norm).
- :attr:`DataFlow.order`: leaf modules in the order of their first call.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from initlab.initializers.flow_record import _Recorder, _Recording
from initlab.initializers.flow_walk import (
    _ADDS,
    Following,
    _feeds_residual,
    _walk,
    _walk_activation,
)
from initlab.initializers.known_activations import _has_own_weight
from initlab.initializers.model_calls import _restored_state, call_model


class DataFlow(_Recording):
    """The recorded calls and the values they exchange; built by :func:`trace`."""

    def following(self, name: str) -> Following | None:
        """The activation after module ``name``'s output (first call; first branch in execution
        order), or ``None`` if the module was never called. See the module docstring."""
        calls = self.module_calls(name)
        if not calls:
            return None
        return _walk_activation(self, calls[0])

    def residual(self, name: str) -> bool:
        """Whether module ``name``'s output is added to a stream that skips it (any call)."""
        return any(_feeds_residual(self, call) for call in self.module_calls(name))

    def summed_embeddings(self) -> list[list[str]]:
        """Groups of embedding modules (``nn.Embedding``) whose outputs are added together
        through transparent steps only (token + position + token type), each group in
        registration order; embeddings summed with no other embedding are left out."""
        joins: dict[str, set[int]] = {}
        for name, module in self.model.named_modules():
            if not isinstance(module, nn.Embedding | nn.EmbeddingBag) or not self.called(name):
                continue
            adds = joins.setdefault(name, set())
            for call in self.module_calls(name):
                adds.update(c.index for c, step, _ in _walk(self, call) if c.name in _ADDS)
        groups: list[list[str]] = []
        for name, adds in joins.items():
            overlapping = [g for g in groups if any(adds & joins[other] for other in g)]
            merged = [name, *(n for g in overlapping for n in g)]
            groups = [g for g in groups if g not in overlapping] + [merged]
        order = {name: i for i, name in enumerate(joins)}
        return [sorted(g, key=order.__getitem__) for g in groups if len(g) > 1]

    def residual_modules(self) -> list[str]:
        """Modules with a >= 2-D parameter whose output is added to a residual stream. A module
        never called as a module (``MultiheadAttention``'s ``out_proj``) takes its nearest
        called ancestor's answer."""
        answers: dict[str, bool] = {}
        names = []
        for name, module in self.model.named_modules():
            if self.called(name):
                answers[name] = self.residual(name)
            if not name or not _has_own_weight(module):
                continue
            parts = name.split(".")
            owners = [".".join(parts[:i]) for i in range(len(parts), 0, -1)]
            owner = next((o for o in owners if o in answers), None)
            if owner is not None and answers[owner]:
                names.append(name)
        return names


def trace(model: nn.Module, example: Any) -> DataFlow:
    """Run ``model`` once on ``example`` and record its data flow (see the module docstring).

    ``example``: a tensor, a tuple of positional arguments or a dict of keyword arguments.
    Nothing about the model changes: no gradients, same train/eval mode, buffers restored, and
    the global RNG is forked. Every intermediate tensor stays alive until the pass ends (tensor
    identity is how the flow is followed), about the memory of a training step's activations:
    a small example (a batch of two, a few tokens) gives the same flow.

    >>> import torch, torch.nn as nn
    >>> flow = trace(nn.Sequential(nn.Linear(4, 8), nn.Dropout(), nn.GELU()), torch.ones(2, 4))
    >>> flow.following("0").activation
    ('gelu', None)
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"trace needs a torch.nn.Module; got {type(model).__name__}")
    flow = DataFlow(model)
    handles = []
    try:
        for module in model.modules():
            handles.append(module.register_forward_pre_hook(flow._pre_hook, with_kwargs=True))
            handles.append(
                module.register_forward_hook(flow._post_hook, with_kwargs=True, always_call=True)
            )
        with _restored_state(model), torch.no_grad():
            flow._produce(example, -1)  # the model's inputs: values without a producer
            try:
                with _Recorder(flow):
                    call_model(model, example)
            except Exception as error:
                raise ValueError(
                    f"could not run the model on the example input to trace its data flow: "
                    f"{type(error).__name__}: {error}. Give an example the model accepts: a "
                    f"tensor, a tuple of positional arguments or a dict of keyword arguments"
                ) from error
    finally:
        for handle in handles:
            handle.remove()
        flow._stack.clear()
        # Identities were only needed while recording: release the tensors.
        flow._keep.clear()
        flow._value_of.clear()
    return flow
