"""Recording one forward pass: every module call (forward hooks) and every torch function
(a ``TorchFunctionMode``) as a :class:`Call`, with the tensor *values* each consumed and
produced. :func:`~initlab.initializers.trace.trace` drives it; the walks over the record are in
:mod:`initlab.initializers.flow_walk`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from initlab.initializers.model_calls import _tensors

Kind = Literal["module", "function"]


@dataclass
class Call:
    """One module call or torch function call of the traced forward pass."""

    index: int
    kind: Kind
    name: str  # qualified module name ("" for the model) or function name ("gelu", "add_")
    target: Any  # the nn.Module or the function
    parent: int | None  # index of the innermost module call this call ran inside
    inputs: tuple[int, ...] = ()  # value ids consumed
    outputs: tuple[int, ...] = ()  # value ids produced
    args: tuple[Any, ...] = ()  # non-tensor arguments (activation parameters), tensors as None
    kwargs: dict[str, Any] = field(default_factory=dict)


def _plain(value: Any) -> Any:
    """Non-tensor arguments kept for reading parameters (``negative_slope``); tensors dropped."""
    return value if isinstance(value, int | float | bool | str | type(None)) else None


def _function_name(func: Any) -> str:
    return getattr(func, "__name__", None) or type(func).__name__


# Tensor methods whose output is unused by the data flow (shape queries etc.) are skipped by
# recording only calls that produce a tensor.
_IGNORED_FUNCTIONS = frozenset({"_set_grad_enabled", "__get__", "__set__", "size", "dim"})


class _Recorder(TorchFunctionMode):
    def __init__(self, flow: _Recording) -> None:
        super().__init__()
        self.flow = flow

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = _function_name(func)
        if name in _IGNORED_FUNCTIONS:
            return func(*args, **kwargs)
        flow = self.flow
        inputs = flow._values_of(args, kwargs)
        index = len(flow.calls)
        call = Call(
            index, "function", name, func, flow._stack[-1] if flow._stack else None,
            inputs, (), tuple(_plain(a) for a in args),
            {k: _plain(v) for k, v in kwargs.items()},
        )  # fmt: skip
        flow.calls.append(call)
        out = func(*args, **kwargs)
        call.outputs = flow._produce(out, index)
        if not call.outputs:
            flow.calls.pop()
            for value in inputs:
                flow._consumers[value].pop()
        return out


class _Recording:
    """The recorded calls and the values they exchange, and the plain queries on them;
    :class:`~initlab.initializers.trace.DataFlow` adds the walks."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.calls: list[Call] = []
        self.names = {id(m): n for n, m in model.named_modules()}
        self._producer: list[int] = []  # value id -> index of the call that produced it
        self._floating: list[bool] = []  # value id -> whether it is a floating-point tensor
        self._shapes: list[tuple[int, ...]] = []  # value id -> shape
        self._consumers: list[list[int]] = []  # value id -> indices of calls that consumed it
        self._continues: dict[int, list[int]] = {}  # inner value -> module output value
        self._continued_from: dict[int, int] = {}  # module output value -> inner value
        self._value_of: dict[int, int] = {}  # id(tensor object) -> its latest value id
        self._keep: list[torch.Tensor] = []  # keep tensors alive so their ids stay unique
        self._stack: list[int] = []
        self._module_calls: dict[str, list[int]] = {}

    # ------------------------------------------------------------------ recording
    def _values_of(self, *objs: Any) -> tuple[int, ...]:
        values: list[int] = []
        for obj in objs:
            for tensor in _tensors(obj):
                value = self._value_of.get(id(tensor))
                if value is not None and value not in values:
                    values.append(value)
        index = len(self.calls)
        for value in values:
            self._consumers[value].append(index)
        return tuple(values)

    def _produce(self, out: Any, index: int) -> tuple[int, ...]:
        values: list[int] = []
        done: set[int] = set()
        for tensor in _tensors(out):
            if id(tensor) in done:
                continue
            done.add(id(tensor))
            value = len(self._producer)
            self._producer.append(index)
            self._floating.append(tensor.is_floating_point())
            self._shapes.append(tuple(tensor.shape))
            self._consumers.append([])
            self._value_of[id(tensor)] = value
            self._keep.append(tensor)
            values.append(value)
        return tuple(values)

    def _pre_hook(self, module: nn.Module, args: Any, kwargs: Any) -> None:
        name = self.names.get(id(module), type(module).__name__)
        index = len(self.calls)
        inputs = self._values_of(args, kwargs)
        self.calls.append(
            Call(index, "module", name, module, self._stack[-1] if self._stack else None, inputs)
        )
        self._module_calls.setdefault(name, []).append(index)
        self._stack.append(index)

    def _post_hook(self, module: nn.Module, args: Any, kwargs: Any, out: Any) -> None:
        index = self._stack.pop()
        call = self.calls[index]
        before = {id(t): self._value_of.get(id(t)) for t in _tensors(out)}
        call.outputs = self._produce(out, index)
        for tensor, value in zip(_tensors(out), call.outputs, strict=False):
            inner = before.get(id(tensor))
            producer = None if inner is None else self._producer[inner]
            if producer is not None and producer >= 0 and self._inside(producer, index):
                self._continues.setdefault(inner, []).append(value)
                self._continued_from[value] = inner

    def _inside(self, call_index: int, module_index: int) -> bool:
        parent = self.calls[call_index].parent
        while parent is not None:
            if parent == module_index:
                return True
            parent = self.calls[parent].parent
        return False

    # ------------------------------------------------------------------ queries
    @property
    def order(self) -> list[str]:
        """Qualified names of the leaf modules (no children), in the order of their first call."""
        seen: dict[str, None] = {}
        for call in self.calls:
            if call.kind == "module" and next(call.target.children(), None) is None:
                seen.setdefault(call.name, None)
        return list(seen)

    def module_calls(self, name: str) -> list[Call]:
        """Every call of the module ``name``, in execution order (empty if never called)."""
        return [self.calls[i] for i in self._module_calls.get(name, [])]

    def called(self, name: str) -> bool:
        return name in self._module_calls

    def shape(self, value: int) -> tuple[int, ...]:
        """The shape of a recorded value (as it was produced)."""
        return self._shapes[value]

    def consumers(self, value: int) -> list[Call]:
        return [self.calls[i] for i in self._consumers[value]]
