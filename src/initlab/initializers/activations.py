"""Which nonlinearity follows each parameterized layer of a model.

Tried in order, each documented in :func:`following_activations`:

0. A plain ``nn.Sequential`` tree of stock ``torch.nn`` layers: registration order is the
   data flow, so it is read directly (no tracing).
1. ``torch.fx`` tracing: follow the data flow from each layer's output through
   shape-only and normalizing operations (dropout, reshape, batch/layer norm, residual adds)
   to the first activation (module, function or method). Layers inside a module that fx
   treats as one call (``nn.MultiheadAttention``'s ``out_proj``) take that module's answer.
2. Module registration order, when tracing fails (data-dependent control flow) or for layers
   the traced graph never calls: the first activation module registered after the layer and
   before the next parameterized layer.
3. Otherwise ``linear`` (no activation found).
"""

from __future__ import annotations

import operator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import fx, nn

from initlab.initializers.schemes import Activation


@dataclass(frozen=True)
class FoundActivation:
    """The activation after a layer and how it was found (``fx``, ``order`` or ``none``)."""

    activation: Activation
    source: str


_LINEAR: Activation = ("linear", None)


def module_activation(module: nn.Module) -> Activation | None:
    """The activation a module applies, as ``(name, param)``, or ``None`` if it is not one."""
    if isinstance(module, nn.LeakyReLU):
        return ("leaky_relu", float(module.negative_slope))
    if isinstance(module, nn.PReLU):
        return ("leaky_relu", float(module.weight.detach().float().mean()))
    if isinstance(module, nn.ELU | nn.CELU):
        return ("elu", float(module.alpha))
    if isinstance(module, nn.Softplus):
        return ("softplus", float(module.beta))
    for types, name in _MODULE_NAMES:
        if isinstance(module, types):
            return (name, None)
    return None


_MODULE_NAMES: tuple[tuple[type | tuple[type, ...], str], ...] = (
    ((nn.ReLU, nn.ReLU6, nn.RReLU), "relu"),
    (nn.Tanh, "tanh"),
    ((nn.Sigmoid, nn.Hardsigmoid), "sigmoid"),
    (nn.SELU, "selu"),
    (nn.GELU, "gelu"),
    ((nn.SiLU, nn.Hardswish), "silu"),
    (nn.Mish, "mish"),
    ((nn.Softmax, nn.LogSoftmax, nn.Identity, nn.Hardtanh), "linear"),
)

_FUNCTIONS = {
    F.relu: "relu", torch.relu: "relu", F.relu6: "relu", F.tanh: "tanh", torch.tanh: "tanh",
    F.sigmoid: "sigmoid", torch.sigmoid: "sigmoid", F.selu: "selu", torch.selu: "selu",
    F.gelu: "gelu", F.silu: "silu", F.mish: "mish", F.elu: "elu", F.softplus: "softplus",
    F.leaky_relu: "leaky_relu", F.softmax: "linear", F.log_softmax: "linear",
    torch.softmax: "linear",
}  # fmt: skip
_METHODS = {"relu": "relu", "tanh": "tanh", "sigmoid": "sigmoid", "softmax": "linear",
            "log_softmax": "linear"}  # fmt: skip
_DEFAULT_PARAM = {"leaky_relu": ("negative_slope", 1, 0.01), "elu": ("alpha", 1, 1.0),
                  "softplus": ("beta", 1, 1.0)}  # fmt: skip

# Operations that pass the signal on without a nonlinearity.
_PASS_FUNCTIONS = {operator.add, torch.add, operator.getitem, torch.flatten, torch.reshape,
                   F.dropout, torch.cat, operator.mul, torch.transpose, torch.permute,
                   F.layer_norm, F.batch_norm, F.group_norm, F.max_pool2d, F.avg_pool2d,
                   F.adaptive_avg_pool2d, torch.squeeze, torch.unsqueeze}  # fmt: skip
_PASS_METHODS = {"view", "reshape", "flatten", "permute", "transpose", "contiguous", "squeeze",
                 "unsqueeze", "add", "add_", "__getitem__", "float", "to", "type_as"}  # fmt: skip
_PASS_MODULES = (
    nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.Flatten,
    nn.Unflatten, nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm,
    nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AvgPoolNd,
    nn.modules.pooling._AdaptiveAvgPoolNd, nn.modules.pooling._AdaptiveMaxPoolNd,
)  # fmt: skip


def _has_own_weight(module: nn.Module) -> bool:
    return any(p.dim() >= 2 for p in module.parameters(recurse=False))


def _node_activation(node: fx.Node, modules: dict[str, nn.Module]) -> Activation | str | None:
    """An activation, ``"pass"`` for a transparent op, or ``None`` for anything else."""
    if node.op == "call_module":
        module = modules[node.target]  # type: ignore[index]
        act = module_activation(module)
        if act is not None:
            return act
        return "pass" if isinstance(module, _PASS_MODULES) else None
    if node.op == "call_function":
        if node.target in _FUNCTIONS:
            name = _FUNCTIONS[node.target]
            param = None
            if name in _DEFAULT_PARAM:
                key, position, default = _DEFAULT_PARAM[name]
                param = node.kwargs.get(
                    key, node.args[position] if len(node.args) > position else default
                )
                param = float(param) if isinstance(param, int | float) else default
            return (name, param)
        return "pass" if node.target in _PASS_FUNCTIONS else None
    if node.op == "call_method":
        if node.target in _METHODS:
            return (_METHODS[node.target], None)  # type: ignore[index]
        return "pass" if node.target in _PASS_METHODS else None
    return None


def _trace(model: nn.Module) -> dict[str, Activation] | None:
    try:
        graph = fx.symbolic_trace(model).graph
    except Exception:  # tracing fails on data-dependent control flow; fall back to order
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
    single calls to it) nor the registration order can see.
    """
    found: dict[str, FoundActivation] = {}
    layer_types = (nn.TransformerEncoderLayer, nn.TransformerDecoderLayer)
    for name, module in model.named_modules():
        if isinstance(module, layer_types) and isinstance(module.linear1, nn.Linear):
            act = module.activation
            if isinstance(act, nn.Module):
                activation = module_activation(act)
            else:
                activation = (_FUNCTIONS[act], None) if act in _FUNCTIONS else None
            if activation is not None:
                found[f"{name}.linear1" if name else "linear1"] = FoundActivation(
                    activation, "layer"
                )
    return found


def _plain_sequential(model: nn.Module) -> bool:
    """An ``nn.Sequential`` tree of stock ``torch.nn`` leaves: its order is its data flow."""
    if not isinstance(model, nn.Sequential):
        return False
    for module in model.modules():
        has_children = next(iter(module.children()), None) is not None
        if has_children and not isinstance(module, nn.Sequential):
            return False
        if not has_children and not type(module).__module__.startswith("torch.nn"):
            return False
    return True


def following_activations(model: nn.Module) -> dict[str, FoundActivation]:
    """Map each module that owns a >= 2-D parameter (by qualified name) to the activation
    that follows it. Plain ``nn.Sequential`` trees of ``torch.nn`` layers use their order
    (source ``"sequential"``), other traceable models ``torch.fx``; others fall back to
    registration order (see the module docstring).

    The model's own parameters (a lone ``nn.Linear`` given to ``init_model``) have no entry:
    nothing inside the model follows them, so schemes use their standalone defaults there
    (``init_model(nn.Linear(...), "he_normal")`` equals ``get("he_normal")(weight)``).
    """
    if _plain_sequential(model):
        # Registration order is the execution order: no need to trace (saves milliseconds per
        # call, which matter next to filling a model on a GPU).
        return {
            k: FoundActivation(v, "sequential" if v != _LINEAR else "none")
            for k, v in _by_order(model).items()
            if k
        }
    order = {
        k: FoundActivation(v, "order" if v != _LINEAR else "none")
        for k, v in _by_order(model).items()
        if k
    }
    order.update(_transformer_layers(model))
    traced = _trace(model)
    if traced is None:
        return order
    found = {k: FoundActivation(v, "fx" if v != _LINEAR else "none") for k, v in traced.items()}
    for name, by_order in order.items():
        if name in found:
            continue
        # Not called in the traced graph: inside a module fx does not look into (torch.nn
        # modules such as MultiheadAttention, whose out_proj is followed by what follows the
        # attention), or not called at all. Take the nearest traced ancestor's, else the order.
        parts = name.split(".")
        ancestors = (".".join(parts[:i]) for i in range(len(parts) - 1, 0, -1))
        found[name] = next((found[a] for a in ancestors if a in traced), by_order)
    return found
