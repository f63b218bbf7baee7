"""Walks over a recorded forward pass (:mod:`initlab.initializers.flow_record`): what each call
does to a signal (:func:`classify`: an activation, transparent, a stop, or look inside), the
activation after a layer (:func:`_walk_activation`), and whether a layer's output joins a
residual stream (:func:`_feeds_residual`). The rules are in
:mod:`initlab.initializers.trace`'s docstring.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from torch import nn

from initlab.initializers.flow_record import Call, _Recording
from initlab.initializers.known_activations import (
    MeasuredActivation,
    _elementwise_kind,
    _has_own_weight,
    function_activation,
    is_norm_module,
    match_activation,
    module_activation,
    module_function,
)

_PASS_FUNCTIONS = frozenset({
    # shape and indexing
    "view", "reshape", "flatten", "unflatten", "permute", "transpose", "t", "contiguous",
    "squeeze", "unsqueeze", "expand", "expand_as", "__getitem__", "cat", "concat", "stack",
    "chunk", "split", "unbind", "narrow", "select", "movedim", "view_as", "reshape_as", "clone",
    "repeat", "tile", "roll", "pad",
    # dtype and device
    "to", "float", "half", "bfloat16", "double", "type", "type_as", "detach",
    # elementwise arithmetic: residual adds, scalings, layer scale, gates
    "add", "add_", "__add__", "__radd__", "__iadd__", "sub", "__sub__", "mul", "mul_",
    "__mul__", "__rmul__", "__imul__", "div", "div_", "__truediv__", "__itruediv__",
    # dropout and normalization
    "dropout", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout", "feature_alpha_dropout",
    "layer_norm", "batch_norm", "group_norm", "instance_norm", "rms_norm", "local_response_norm",
    # pooling
    "max_pool1d", "max_pool2d", "max_pool3d", "avg_pool1d", "avg_pool2d", "avg_pool3d",
    "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d", "adaptive_max_pool1d",
    "adaptive_max_pool2d", "adaptive_max_pool3d", "mean",
})  # fmt: skip
_PASS_MODULES = (
    nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout,
    nn.Identity, nn.Flatten, nn.Unflatten, nn.modules.pooling._MaxPoolNd,
    nn.modules.pooling._AvgPoolNd, nn.modules.pooling._AdaptiveAvgPoolNd,
    nn.modules.pooling._AdaptiveMaxPoolNd, nn.modules.batchnorm._NormBase, nn.LayerNorm,
    nn.GroupNorm, nn.LocalResponseNorm, *((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ()),
)  # fmt: skip


@dataclass(frozen=True)
class Step:
    """What one call does to the signal, for the walks below."""

    kind: Literal["activation", "pass", "stop", "descend"]
    activation: Any = None  # (name or callable, param) for "activation"
    how: str = ""  # "module", "function", "matched", "measured"


@dataclass(frozen=True)
class Following:
    """The activation after a layer and how it was found.

    ``activation`` is ``(name, param)`` (``("linear", None)`` when the walk found none) where
    ``name`` may be a :class:`MeasuredActivation` for an unknown elementwise module;
    ``how`` is ``"module"``, ``"function"``, ``"matched"`` (a module recognised by what it
    computes), ``"measured"`` or ``"none"``; ``path`` lists the
    calls the signal passed through to reach it.
    """

    activation: Any
    how: str
    path: tuple[str, ...] = ()


_SCALINGS = {"div": -1, "div_": -1, "__truediv__": -1, "__itruediv__": -1, "mul": 1, "mul_": 1,
             "__mul__": 1, "__rmul__": 1, "__imul__": 1}  # fmt: skip
# A saturating activation whose input was scaled down by at least this much acts in its linear
# range for unit-scale signals: tanh(z / 30) * 30 (Gemma 2's logit soft-cap) is the identity
# there (tanh(0.25 * 3) is 0.635 against 0.75 at three standard deviations).
_SOFT_CAP_SCALE = 0.25


def _input_scale(flow: _Recording, value: int | None) -> float | None:
    """The constant a value was multiplied by in the call that produced it (``x / 30``:
    1/30), or ``None`` when it was not produced by a scaling with a Python number."""
    if value is None or value >= len(flow._producer):
        return None
    producer = flow._producer[value]
    if producer < 0:
        return None
    call = flow.calls[producer]
    power = _SCALINGS.get(call.name)
    if call.kind != "function" or power is None or len(call.inputs) != 1:
        return None
    numbers = [a for a in call.args if isinstance(a, int | float) and not isinstance(a, bool)]
    if len(numbers) != 1 or numbers[0] == 0:
        return None
    return float(numbers[0]) ** power


def classify(flow: _Recording, call: Call, value: int | None = None) -> Step:
    """What ``call`` does to a signal it consumes (``value``, when known)."""
    if call.kind == "function":
        act = function_activation(call.target, call.name, call.args, call.kwargs)
        if act is not None and act[0] == "tanh":
            scale = _input_scale(flow, value)
            if scale is not None and abs(scale) <= _SOFT_CAP_SCALE:
                return Step("pass")  # a soft-cap: the identity at the signal's scale
        if act is not None:
            return Step("activation", act, "function")
        return Step("pass") if call.name in _PASS_FUNCTIONS else Step("stop")
    module = call.target
    act = module_activation(module)
    if act is not None:
        return Step("activation", act, "module")
    leaf = next(module.children(), None) is None
    if isinstance(module, _PASS_MODULES) and (leaf or not _has_own_weight(module)):
        # torch's own norms with children (timm's BatchNormAct2d) are looked into
        return Step("pass") if leaf else Step("descend")
    if _has_own_weight(module):
        return Step("stop")
    if is_norm_module(module) and leaf:
        return Step("pass")
    if leaf and next(module.buffers(), None) is None:
        kind = _elementwise_kind(module)
        if kind in ("identity", "stochastic"):
            return Step("pass")
        if kind == "elementwise":
            act = match_activation(module_function(module))
            if act is not None:
                return Step("pass") if act[0] == "linear" else Step("activation", act, "matched")
            return Step(
                "activation", (MeasuredActivation(type(module).__name__, module), None), "measured"
            )
    return Step("descend")


def _walk(flow: _Recording, start: Call) -> Iterator[tuple[Call, Step, int]]:
    """Calls reached from ``start``'s outputs through transparent steps, in execution order,
    with their step and the value they consumed (activations and stops end their branch)."""
    import heapq

    heap: list[tuple[int, int]] = []  # (call index, value)
    seen_values: set[int] = set()
    steps: dict[int, Step] = {}

    def push(value: int) -> None:
        if value in seen_values:
            return
        seen_values.add(value)
        for consumer in flow._consumers[value]:
            heapq.heappush(heap, (consumer, value))
        for later in flow._continues.get(value, []):
            push(later)

    for value in start.outputs:
        push(value)
    done: set[int] = set()
    while heap:
        index, value = heapq.heappop(heap)
        if index in done or flow._inside(index, start.index) or index == start.index:
            continue
        call = flow.calls[index]
        # inside a consumer already classified as a whole: skip
        parent = call.parent
        atomic = False
        while parent is not None:
            if parent in steps and steps[parent].kind != "descend":
                atomic = True
                break
            parent = flow.calls[parent].parent
        if atomic:
            continue
        done.add(index)
        step = classify(flow, call, value)
        steps[index] = step
        yield call, step, value
        if step.kind == "pass":
            for out in call.outputs:
                push(out)


def _walk_activation(flow: _Recording, start: Call) -> Following:
    path: list[str] = []
    for call, step, _ in _walk(flow, start):
        if step.kind == "activation":
            return Following(step.activation, step.how, (*path, call.name))
        if step.kind == "pass":
            path.append(call.name)
    return Following(("linear", None), "none", tuple(path))


_ADDS = frozenset({"add", "add_", "__add__", "__radd__", "__iadd__"})


def _ancestors(flow: _Recording, values: tuple[int, ...]) -> set[int]:
    seen: set[int] = set()
    stack = list(values)
    while stack:
        value = stack.pop()
        if value in seen:
            continue
        seen.add(value)
        producer = flow._producer[value]
        if producer >= 0:
            stack.extend(flow.calls[producer].inputs)
        if value in flow._continued_from:  # a module's output is the value made inside it
            stack.append(flow._continued_from[value])
    return seen


def _feeds_residual(flow: _Recording, start: Call) -> bool:
    upstream: set[int] | None = None
    derived: set[int] = set()
    for call, step, value in _walk(flow, start):
        derived.add(value)
        if call.kind == "function" and call.name in _ADDS and len(call.inputs) == 2:
            other = call.inputs[1] if call.inputs[0] == value else call.inputs[0]
            if other not in derived:
                if upstream is None:
                    upstream = _ancestors(flow, start.inputs)
                # the other operand comes from a value upstream of the layer's input
                # The other operand is upstream of the layer (the stream itself) or computed
                # from a floating-point value upstream of it (a projected shortcut), and not
                # from the layer's output. Integer ancestors (token ids) do not count: two
                # embeddings of the same ids are summed, not a stream and a branch.
                shared = upstream & _ancestors(flow, (other,))
                if (other in upstream or any(flow._floating[v] for v in shared)) and not (
                    _derived_from(flow, other, start)
                ):
                    return True
        if step.kind != "pass" or call.name in _ADDS:
            continue
        derived.update(call.outputs)
    return False


def _derived_from(flow: _Recording, value: int, start: Call) -> bool:
    return bool(set(start.outputs) & _ancestors(flow, (value,)))
