"""Which nonlinearity follows each parameterized layer of a model.

:func:`following_activations` answers it, in this order, and each answer says how it was found
(``FoundActivation.source``):

0. ``"sequential"``: a plain ``nn.Sequential`` tree whose leaves are stock ``torch.nn`` weight
   layers, activations and transparent layers (dropout, identity, norms, pooling, reshapes):
   registration order is the data flow, so it is read directly. Exactly what tracing gives.
1. With an ``example`` input: the data flow of one real forward pass
   (:func:`initlab.initializers.trace.trace`), which works on any model that runs, Hugging Face
   ones included. Source ``"trace"`` (a known activation module or function), ``"measured"`` (an
   unknown elementwise module such as Hugging Face's ``NewGELUActivation``, whose gain is then
   computed from its own forward) or ``"none"`` (nothing follows: linear). Layers the forward
   pass never calls as modules (``nn.MultiheadAttention``'s ``out_proj``) take their nearest
   called ancestor's answer.
2. Without an example: ``torch.fx`` tracing (``"fx"``), same walk on the symbolic graph.
3. When fx fails too: registration order (``"order"``), a guess that is wrong when the
   activation module is registered after both layers (T5's ``wi, wo, act``); ``init_model``
   then warns once and asks for an example.
4. PyTorch's Transformer layers, whose ``linear1`` is followed by their ``activation``
   attribute (a function), have source ``"layer"`` when no trace saw the call.
"""

from __future__ import annotations

import operator
import warnings
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn

from initlab.initializers.examples import candidate_examples
from initlab.initializers.known_activations import (
    _METHODS,
    MeasuredActivation,
    _elementwise_kind,
    _has_own_weight,
    function_activation,
    is_norm_module,
    match_activation,
    module_activation,
    module_function,
)
from initlab.initializers.model_calls import _restored_state
from initlab.initializers.schemes import Activation
from initlab.initializers.trace import DataFlow, trace


@dataclass(frozen=True)
class FoundActivation:
    """The activation after a layer and how it was found: ``sequential``, ``trace``,
    ``measured``, ``fx``, ``order``, ``layer`` or ``none`` (see the module docstring).

    ``activation`` is ``(name, param)``; ``name`` is a :class:`MeasuredActivation` (a callable
    whose ``str()`` is its class name) for an activation initlab has no name for.
    """

    activation: Activation
    source: str

    @property
    def name(self) -> str:
        return str(self.activation[0])


_LINEAR: Activation = ("linear", None)


def measured_activation(module: nn.Module) -> Activation | None:
    """An unknown activation module recognised by behaviour: no parameters, no buffers, no
    children, acts elementwise and is not the identity. Its gain is measured from its forward."""
    if (
        next(module.children(), None) is not None
        or next(module.parameters(), None) is not None
        or next(module.buffers(), None) is not None
        or isinstance(module, _PASS_MODULES)
    ):
        return None
    if _elementwise_kind(module) != "elementwise":
        return None
    matched = match_activation(module_function(module))
    if matched is not None:
        return None if matched == _LINEAR else matched
    return (MeasuredActivation(type(module).__name__, module), None)


# Operations that pass the signal on without a nonlinearity (fx graphs).
_PASS_FUNCTIONS = {operator.add, torch.add, operator.getitem, torch.flatten, torch.reshape,
                   F.dropout, torch.cat, operator.mul, torch.transpose, torch.permute,
                   F.layer_norm, F.batch_norm, F.group_norm, F.max_pool2d, F.avg_pool2d,
                   F.adaptive_avg_pool2d, torch.squeeze, torch.unsqueeze}  # fmt: skip
_PASS_METHODS = {"view", "reshape", "flatten", "permute", "transpose", "contiguous", "squeeze",
                 "unsqueeze", "add", "add_", "__getitem__", "float", "to", "type_as",
                 "mul", "expand"}  # fmt: skip
_PASS_MODULES = (
    nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.Flatten,
    nn.Unflatten, nn.Identity, nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm,
    nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AvgPoolNd,
    nn.modules.pooling._AdaptiveAvgPoolNd, nn.modules.pooling._AdaptiveMaxPoolNd,
    *((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ()),
)  # fmt: skip


def _node_activation(node: fx.Node, modules: dict[str, nn.Module]) -> Activation | str | None:
    """An activation, ``"pass"`` for a transparent op, or ``None`` for anything else."""
    if node.op == "call_module":
        module = modules[node.target]  # type: ignore[index]
        act = module_activation(module)
        if act is not None:
            return act
        if isinstance(module, _PASS_MODULES) or (
            is_norm_module(module) and not _has_own_weight(module)
        ):
            return "pass"
        return measured_activation(module)
    if node.op == "call_function":
        act = function_activation(node.target, "", node.args, dict(node.kwargs))
        if act is not None:
            return act
        return "pass" if node.target in _PASS_FUNCTIONS else None
    if node.op == "call_method":
        if node.target in _METHODS:
            return (_METHODS[node.target], None)  # type: ignore[index]
        return "pass" if node.target in _PASS_METHODS else None
    return None


def _fx_trace(model: nn.Module) -> dict[str, Activation] | None:
    if type(model).forward is nn.Module.forward:  # ModuleList, ModuleDict: no forward to trace
        return None
    try:
        # symbolic tracing runs the Python of modules that are not torch.nn leaves, buffer
        # updates included (a BatchNorm subclass's num_batches_tracked += 1): restore them
        with _restored_state(model):
            graph = fx.symbolic_trace(model).graph
    except Exception:  # tracing fails on data-dependent control flow and most HF models
        return None
    modules = dict(model.named_modules())
    found: dict[str, Activation] = {}
    for node in graph.nodes:
        if node.op != "call_module" or not _has_own_weight(modules[node.target]):
            continue
        frontier, seen, acts = list(node.users), set(), []
        while frontier:
            user = frontier.pop()
            if user in seen:
                continue
            seen.add(user)
            kind = _node_activation(user, modules)
            if kind == "pass":
                frontier.extend(user.users)
            elif kind is not None:
                acts.append(kind)
        # Several branches: take the first found; none: linear.
        found[node.target] = acts[0] if acts else _LINEAR  # type: ignore[assignment]
    return found


def _by_order(model: nn.Module) -> dict[str, Activation]:
    found: dict[str, Activation] = {}
    pending: list[str] = []
    for name, module in model.named_modules():
        if _has_own_weight(module):
            for p in pending:
                found[p] = _LINEAR
            pending = [name]
            continue
        act = module_activation(module)
        if act is None and pending and next(module.children(), None) is None:
            act = measured_activation(module)
        if act is not None and pending:
            for p in pending:
                found[p] = act
            pending = []
    for p in pending:
        found[p] = _LINEAR
    return found


def _transformer_layers(model: nn.Module) -> dict[str, FoundActivation]:
    """``linear1`` of PyTorch's Transformer layers is followed by their ``activation``
    attribute (a function such as ``F.relu`` or a module), which neither fx (the layers are
    single calls to it) nor the registration order can see, and which a traced forward pass
    does not call as a module in eval mode (the layers' fused fast path).
    """
    found: dict[str, FoundActivation] = {}
    layer_types = (nn.TransformerEncoderLayer, nn.TransformerDecoderLayer)
    for name, module in model.named_modules():
        if isinstance(module, layer_types) and isinstance(module.linear1, nn.Linear):
            act = module.activation
            if isinstance(act, nn.Module):
                activation = module_activation(act)
            else:
                activation = function_activation(act, getattr(act, "__name__", ""))
            if activation is not None:
                found[f"{name}.linear1" if name else "linear1"] = FoundActivation(
                    activation, "layer"
                )
    return found


def _plain_sequential(model: nn.Module) -> bool:
    """An ``nn.Sequential`` tree of stock ``torch.nn`` leaves that are weight layers, known
    activations or transparent layers: its order is its data flow, and reading it gives exactly
    what tracing gives."""
    if not isinstance(model, nn.Sequential):
        return False
    for module in model.modules():
        has_children = next(iter(module.children()), None) is not None
        if has_children and not isinstance(module, nn.Sequential):
            return False
        if has_children:
            continue
        if not type(module).__module__.startswith("torch.nn"):
            return False
        if isinstance(module, nn.RNNBase | nn.MultiheadAttention):
            return False
        if not (
            _has_own_weight(module)
            or module_activation(module) is not None
            or isinstance(module, _PASS_MODULES)
        ):
            return False
    return True


def _found(by_order: dict[str, Activation], source: str) -> dict[str, FoundActivation]:
    none = FoundActivation(_LINEAR, "none")  # shared: models of many layers are mostly linear
    return {
        k: none if v == _LINEAR else FoundActivation(v, source) for k, v in by_order.items() if k
    }


def _nearest_ancestor(name: str, found: dict[str, FoundActivation]) -> FoundActivation | None:
    parts = name.split(".")
    for i in range(len(parts) - 1, 0, -1):
        ancestor = ".".join(parts[:i])
        if ancestor in found:
            return found[ancestor]
    return None


def _traced(model: nn.Module, flow: DataFlow) -> dict[str, FoundActivation]:
    found: dict[str, FoundActivation] = {}
    for name, _ in model.named_modules():
        if not flow.called(name) or not name:
            continue
        following = flow.following(name)
        if following is None:
            continue
        source = {"module": "trace", "function": "trace"}.get(following.how, following.how)
        found[name] = FoundActivation(following.activation, source)
    layers = _transformer_layers(model)
    result: dict[str, FoundActivation] = {}
    for name, module in model.named_modules():
        if not name or not _has_own_weight(module):
            continue
        if name in found:
            result[name] = found[name]
        elif name in layers:
            result[name] = layers[name]
        else:
            # never called as a module: inside a call that uses its weight directly
            # (MultiheadAttention's out_proj), or unused on this input
            result[name] = _nearest_ancestor(name, found) or FoundActivation(_LINEAR, "none")
    return result


def following_activations(
    model: nn.Module, example: Any = None, *, warn: bool = False
) -> dict[str, FoundActivation]:
    """Map each module that owns a >= 2-D parameter (by qualified name) to the activation
    that follows it, and how it was found (see the module docstring).

    ``example``: an input the model accepts (a tensor, a tuple of positional arguments or a
    dict of keyword arguments); with it, the answer comes from one real forward pass. Without
    it: plain ``Sequential`` order, ``torch.fx``, or, when fx fails, registration order: a guess,
    with a warning when ``warn`` is true.

    The model's own parameters (a lone ``nn.Linear`` given to ``init_model``) have no entry:
    nothing inside the model follows them, so schemes use their standalone defaults there
    (``init_model(nn.Linear(...), "he_normal")`` equals ``get("he_normal")(weight)``).
    """
    if _plain_sequential(model):
        # Registration order is the execution order: no need to trace (saves milliseconds per
        # call, which matter next to filling a model on a GPU).
        return _found(_by_order(model), "sequential")
    if example is not None:
        return _traced(model, example if isinstance(example, DataFlow) else trace(model, example))
    order = _found(_by_order(model), "order")
    order.update(_transformer_layers(model))
    traced = _fx_trace(model)
    if traced is None:
        guessed = [k for k, v in order.items() if v.source == "order"]
        if warn and guessed:
            warnings.warn(
                f"initlab could not trace {type(model).__name__} with torch.fx, so the "
                f"activation after each layer was guessed from the order in which modules are "
                f"registered ({len(guessed)} layer(s) got an activation that way); give an "
                "example input (init_model(model, ..., example=batch)) to follow the real "
                "data flow",
                stacklevel=3,
            )
        return order
    found = {k: FoundActivation(v, "fx" if v != _LINEAR else "none") for k, v in traced.items()}
    for name, by_order in order.items():
        if name in found:
            continue
        # Not called in the traced graph: inside a module fx does not look into (torch.nn
        # modules such as MultiheadAttention, whose out_proj is followed by what follows the
        # attention), or not called at all. Take the nearest traced ancestor's, else the order.
        ancestor = _nearest_ancestor(name, {k: found[k] for k in traced})
        found[name] = ancestor or by_order
    return found


@dataclass
class Discovery:
    """What initlab knows about a model's structure, shared by ``init_model`` and the doctor.

    ``activations``: :func:`following_activations`' answer; ``source``: how it was found for
    the model as a whole (``trace``, ``sequential``, ``fx`` or ``order``); ``flow``: the traced
    data flow (residual streams, execution order, layer shapes) when the model was run, else
    ``None``; ``example_source``: the input it was run on: ``given`` (the caller's),
    ``hugging face config``, ``timm input_size`` or ``first layer`` (made from the model by
    :mod:`initlab.initializers.examples`), ``sequential`` (not run: order is the data flow) or
    ``None`` (no input ran: fx or registration order).
    """

    activations: dict[str, FoundActivation]
    source: str
    flow: DataFlow | None = None
    example_source: str | None = None

    def residual(self) -> list[str]:
        """Layers whose output is added to a residual stream (needs an example)."""
        return [] if self.flow is None else self.flow.residual_modules()


def _traced_in_both_modes(
    model: nn.Module, flow: DataFlow, example: Any
) -> dict[str, FoundActivation]:
    """The activations of a trace; weight layers it never called (skipped by a layer drop, as
    wav2vec2's in training mode; run only in eval mode) take the answer of a second trace in
    the other mode, when that one calls them."""
    found = following_activations(model, flow)
    missing = [
        name
        for name, module in model.named_modules()
        if name and _has_own_weight(module) and not flow.called(name)
    ]
    if not missing:
        return found
    was_training = model.training
    try:
        model.train(not was_training)
        other = trace(model, example)
    except ValueError:  # the other mode does not run on this input: keep the first answer
        return found
    finally:
        model.train(was_training)
    again = following_activations(model, other)
    for name in missing:
        if other.called(name) and name in again:
            found[name] = again[name]
    return found


def discover(model: nn.Module, example: Any = None) -> Discovery:
    """One discovery of a model's data flow and activations, for every caller.

    A plain ``nn.Sequential`` is read in order. Otherwise the model is run once
    (:func:`~initlab.initializers.trace.trace`) on ``example`` (tensor, tuple of positional args
    or dict of keyword args) or, without one, on an input made from the model itself
    (:func:`~initlab.initializers.examples.candidate_examples`: a Hugging Face config, timm's
    ``input_size``, the first layer's shape). Only when no such input runs: fx, then
    registration order, warning once when that guess decided an activation.
    """
    if _plain_sequential(model):
        return Discovery(following_activations(model), "sequential", example_source="sequential")
    if example is not None:
        flow = trace(model, example)
        return Discovery(_traced_in_both_modes(model, flow, example), "trace", flow, "given")
    for made in candidate_examples(model):
        try:
            flow = trace(model, made.value)
        except ValueError:  # not an input this model takes: try the next candidate
            continue
        found = _traced_in_both_modes(model, flow, made.value)
        return Discovery(found, "trace", flow, made.source)
    found = following_activations(model, example, warn=True)
    sources = {f.source for f in found.values()}
    if _plain_sequential(model):
        source = "sequential"
    elif "order" in sources:
        source = "order"
    elif "fx" in sources or not sources - {"none", "layer"}:
        source = "fx"
    else:
        source = "order"
    return Discovery(found, source)
