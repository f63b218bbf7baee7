"""The doctor's recommendations: the init each weight layer should get.

Recommendations follow the activation that comes after each weight layer (found by the data-flow
discovery :func:`initlab.init_model` uses): He
(``he_normal``, gain of the activation) for the ReLU family and other rectifiers (GELU, SiLU,
ELU, ...), Glorot (gain 1) for tanh and sigmoid, LeCun for SELU and for layers followed by no
activation. :func:`initlab.fix` re-initializes with them.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Sequence
from functools import cache
from typing import Any

from torch import nn

from initlab.doctor.diagnosis import Recommendation
from initlab.doctor.probe import _Call, _weight_of
from initlab.initializers.activations import following_activations
from initlab.initializers.fans import parameter_fans
from initlab.initializers.registry import get
from initlab.initializers.schemes import Activation


def recommend(activation: Activation) -> tuple[str, str]:
    """The scheme spec and family for a weight layer followed by ``activation``.

    ReLU family and other rectifiers: He (``he_normal``, ``std = gain / sqrt(fan_in)`` with the
    activation's gain, sqrt(2) for ReLU); tanh and sigmoid: Glorot (``xavier_normal``, gain 1,
    ``std = sqrt(2 / (fan_in + fan_out))``); SELU and no activation: LeCun
    (``std = 1 / sqrt(fan_in)``).

    Why gain 1 for tanh and not PyTorch's 5/3: at gain 1 a tanh net sits at the edge of chaos
    (the backward signal is preserved; the forward rms decays like ``1/sqrt(depth)``, to about
    0.1 of layer 1's at depth 50), while at 5/3 it is in the chaotic phase, where gradient norms
    grow with depth (60-90x over 50 layers of width 256, measured).
    """
    name = activation[0]
    if name in ("tanh", "sigmoid"):
        return "xavier_normal", "Glorot"
    if name in ("selu", "linear"):
        return "lecun_normal", "LeCun"
    return "he_normal", "He"


# Discovery without an example (torch.fx or module order) depends only on the model's module
# structure: cached per model and structure, so repeated diagnoses (Monitor, benchmarks, sweeps)
# do not trace the model with torch.fx every time (tens to hundreds of ms on a ResNet-50).
_STATIC: weakref.WeakKeyDictionary[nn.Module, tuple[Any, dict[str, Any]]] = (
    weakref.WeakKeyDictionary()
)


def _static_discovery(model: nn.Module) -> dict[str, Any]:
    structure = tuple((n, type(m), m.forward) for n, m in model.named_modules())
    cached = _STATIC.get(model)
    if cached is not None and cached[0] == structure:
        return cached[1]
    found = following_activations(model)
    _STATIC[model] = (structure, found)
    return found


@cache
def _scheme(spec: str) -> Any:
    return get(spec)


def _recommendations(
    model: nn.Module,
    calls: Sequence[_Call],
    per_weight: dict[int, dict[str, float]],
    example: Any = None,
) -> list[Recommendation]:
    """Per weight module called in the pass: the activation that follows it, found by
    :func:`initlab.initializers.activations.following_activations`, the same discovery
    :func:`initlab.init_model` uses (so ``fix`` and ``init_model`` give one answer): with
    ``example`` (the diagnosed inputs) from the traced data flow of a real forward pass."""
    qualified = {id(m): n for n, m in model.named_modules()}
    if not calls:
        found = {}
    elif example is not None:
        found = following_activations(model, example)
    else:
        found = _static_discovery(model)
    by_module: dict[int, Activation] = {}
    for call in calls:
        if _weight_of(call.module) is None or id(call.module) in by_module:
            continue
        entry = found.get(qualified.get(id(call.module), ""))
        by_module[id(call.module)] = entry.activation if entry is not None else ("linear", None)
    result = []
    for call in calls:
        if id(call.module) not in by_module:
            continue
        activation = by_module.pop(id(call.module))
        prefix = qualified.get(id(call.module), "")
        recurrent = bool(_recurrent_names(call.module))
        for weight_name, weight, act, scheme, family, expected in _entries(call.module, activation):
            norm = per_weight.get(id(call.module), {}).get("weight_norm")
            numel = weight.numel()
            current = None if norm is None or numel == 0 else norm / math.sqrt(numel)
            if recurrent:  # the measured norm is weight_ih_l0's alone
                current = float(weight.detach().float().pow(2).mean().sqrt())
            name = f"{prefix}.{weight_name}" if prefix else weight_name
            result.append(Recommendation(name, act[0], scheme, family, expected, current))
    return result


# Per module: what its recommendation does not owe to the weights' values (names, schemes,
# fans and target std), while its parameters are the same tensors of the same shapes.
_ENTRIES: weakref.WeakKeyDictionary[nn.Module, tuple[Any, list[Any]]] = weakref.WeakKeyDictionary()


def _entries(module: nn.Module, activation: Activation) -> list[Any]:
    """``(name, weight, activation, scheme, family, expected std)`` for each weight the
    module's recommendation covers (:func:`_weights`), cached per module."""
    params = tuple((id(p), tuple(p.shape)) for p in module.parameters(recurse=False))
    key = (activation, params)
    cached = _ENTRIES.get(module)
    if cached is not None and cached[0] == key:
        return cached[1]
    entries = []
    for weight_name, weight, act in _weights(module, activation):
        scheme, family = recommend(act)
        # The layer-aware fans init_model (and so fix) uses: ConvTranspose, Embedding, gates.
        chunk = parameter_fans(module, weight_name, weight)[0]  # type: ignore[index]
        shape = (chunk.stop - chunk.start, *weight.shape[1:])  # type: ignore[union-attr]
        expected = _scheme(scheme).target_std(shape, (chunk.fan_in, chunk.fan_out), act)
        entries.append((weight_name, weight, act, scheme, family, expected))
    _ENTRIES[module] = (key, entries)
    return entries


def _recurrent_names(module: nn.Module) -> list[str]:
    """The gate weights of PyTorch's recurrent layers (``weight_ih_l*``, ``weight_hh_l*``,
    ``_reverse`` included; not the projection ``weight_hr``)."""
    if not isinstance(module, nn.RNNBase):
        return []
    return [
        n
        for n, _ in module.named_parameters(recurse=False)
        if n.startswith(("weight_ih", "weight_hh"))
    ]


def _weights(module: nn.Module, activation: Activation) -> list[tuple[str, Any, Activation]]:
    """``(name, weight, activation after it)`` for the weights a recommendation covers: the
    module's unit weight; for ``LSTM``/``GRU``/``RNN`` every gate weight, each followed by its
    gates' sigmoid/tanh (Glorot, gain 1: ``std = 1/sqrt(hidden)`` on ``weight_hh``'s gate
    chunks), whatever follows the layer itself."""
    names = _recurrent_names(module)
    if names:
        gate: Activation = ("tanh", None)
        return [(n, getattr(module, n), gate) for n in names]
    weight = _weight_of(module)
    name = next(n for n, p in module.named_parameters(recurse=False) if p is weight)
    return [(name, weight, activation)]
