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

import contextlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

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


def _plain(value: Any) -> Any:
    """Non-tensor arguments kept for reading parameters (``negative_slope``); tensors dropped."""
    return value if isinstance(value, int | float | bool | str | type(None)) else None


def _function_name(func: Any) -> str:
    return getattr(func, "__name__", None) or type(func).__name__


# Tensor methods whose output is unused by the data flow (shape queries etc.) are skipped by
# recording only calls that produce a tensor.
_IGNORED_FUNCTIONS = frozenset({"_set_grad_enabled", "__get__", "__set__", "size", "dim"})


class _Recorder(TorchFunctionMode):
    def __init__(self, flow: DataFlow) -> None:
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


class DataFlow:
    """The recorded calls and the values they exchange; built by :func:`trace`."""

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


# ---------------------------------------------------------------------- known activations
Activation = tuple[Any, Any]  # (name or MeasuredActivation, parameter), as schemes.Activation

_LINEAR: Activation = ("linear", None)


def module_activation(module: nn.Module) -> Activation | None:
    """The activation a module applies, as ``(name, param)``, or ``None`` if it is not a known
    one (``nn.Identity`` and dropout are transparent, not activations)."""
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
    ((nn.Softmax, nn.LogSoftmax, nn.Hardtanh), "linear"),
)

_FUNCTIONS = {
    F.relu: "relu", torch.relu: "relu", F.relu6: "relu", F.tanh: "tanh", torch.tanh: "tanh",
    F.sigmoid: "sigmoid", torch.sigmoid: "sigmoid", F.selu: "selu", torch.selu: "selu",
    F.gelu: "gelu", F.silu: "silu", F.mish: "mish", F.elu: "elu", F.softplus: "softplus",
    F.leaky_relu: "leaky_relu", F.softmax: "linear", F.log_softmax: "linear",
    torch.softmax: "linear", F.relu_: "relu", F.elu_: "elu", F.leaky_relu_: "leaky_relu",
    F.hardswish: "silu", F.hardsigmoid: "sigmoid",
}  # fmt: skip
# Tensor methods (x.relu(), x.relu_()) and the names torch functions report in a trace.
_METHODS = {"relu": "relu", "relu_": "relu", "tanh": "tanh", "tanh_": "tanh",
            "sigmoid": "sigmoid", "sigmoid_": "sigmoid", "softmax": "linear",
            "log_softmax": "linear"}  # fmt: skip
# Other elementwise activation functions: gain measured from the function itself.
_MEASURED_FUNCTIONS = {F.celu: "celu", F.softsign: "softsign", F.logsigmoid: "logsigmoid",
                       F.tanhshrink: "tanhshrink", F.softshrink: "softshrink",
                       F.hardshrink: "hardshrink", F.hardtanh: "hardtanh"}  # fmt: skip
_DEFAULT_PARAM = {"leaky_relu": ("negative_slope", 1, 0.01), "elu": ("alpha", 1, 1.0),
                  "softplus": ("beta", 1, 1.0)}  # fmt: skip


def function_activation(
    func: Any, name: str, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None
) -> Activation | None:
    """The activation a torch function or tensor method applies (``F.gelu``, ``x.relu_()``),
    with its parameter read from ``args``/``kwargs`` (the tensor first), or ``None``."""
    kwargs = kwargs or {}
    try:
        known = _FUNCTIONS.get(func)
        measured = _MEASURED_FUNCTIONS.get(func)
    except TypeError:  # unhashable callables
        known = measured = None
    if known is None and measured is None:
        known = _METHODS.get(name)
    if measured is not None:
        extra = args[1:]
        return (MeasuredActivation(measured, lambda x: func(x, *extra, **kwargs)), None)
    if known is None:
        return None
    param = None
    if known in _DEFAULT_PARAM:
        key, position, default = _DEFAULT_PARAM[known]
        param = kwargs.get(key, args[position] if len(args) > position else default)
        param = float(param) if isinstance(param, int | float) else default
    return (known, param)


# ---------------------------------------------------------------------- classification
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


_NORM_MODULES = (
    nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm,
    *((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ()),
)  # fmt: skip


def is_norm_module(module: nn.Module) -> bool:
    """A normalization layer, by type or by name: a torch norm, or a class whose name contains
    ``Norm`` (``LlamaRMSNorm``, ``T5LayerNorm``, timm's ``LayerNorm2d``)."""
    return isinstance(module, _NORM_MODULES) or "norm" in type(module).__name__.lower()


def _has_own_weight(module: nn.Module) -> bool:
    return any(p is not None and p.dim() >= 2 for p in module._parameters.values())


@dataclass(frozen=True)
class Step:
    """What one call does to the signal, for the walks below."""

    kind: Literal["activation", "pass", "stop", "descend"]
    activation: Any = None  # (name or callable, param) for "activation"
    how: str = ""  # "module", "function", "measured"


@dataclass(frozen=True)
class Following:
    """The activation after a layer and how it was found.

    ``activation`` is ``(name, param)`` (``("linear", None)`` when the walk found none) where
    ``name`` may be a :class:`MeasuredActivation` for an unknown elementwise module;
    ``how`` is ``"module"``, ``"function"``, ``"measured"`` or ``"none"``; ``path`` lists the
    calls the signal passed through to reach it.
    """

    activation: Any
    how: str
    path: tuple[str, ...] = ()


class MeasuredActivation:
    """An activation initlab has no name for, called on float64 tensors to measure its gain.

    ``str()`` is the class name; calling it applies the module (or function) elementwise.
    """

    def __init__(self, name: str, fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self.name = name
        self._fn = fn

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self._fn(x)

    def __str__(self) -> str:
        return self.name

    __repr__ = __str__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MeasuredActivation) and other.name == self.name

    def __hash__(self) -> int:
        return hash(self.name)


def _elementwise_kind(module: nn.Module) -> Literal["identity", "elementwise", "other"]:
    """Call a parameter-free module on probes: identity, elementwise nonlinearity, or other."""
    probe = torch.linspace(-3, 3, 24, dtype=torch.float64).reshape(2, 3, 4)
    try:
        with torch.no_grad(), _restored_state(module):
            out = module(probe)
            if not isinstance(out, torch.Tensor) or out.shape != probe.shape:
                return "other"
            flat = module(probe.reshape(-1))
            perm = torch.randperm(24, generator=torch.Generator().manual_seed(0))
            shuffled = module(probe.reshape(-1)[perm])
    except Exception:  # not callable on a plain tensor: not an elementwise activation
        return "other"
    if not isinstance(flat, torch.Tensor) or flat.shape != (24,):
        return "other"
    out64 = out.double().reshape(-1)
    if not (
        torch.allclose(flat.double(), out64) and torch.allclose(shuffled.double(), out64[perm])
    ):
        return "other"
    return "identity" if torch.allclose(out64, probe.reshape(-1)) else "elementwise"


def classify(flow: DataFlow, call: Call) -> Step:
    """What ``call`` does to a signal it consumes."""
    if call.kind == "function":
        act = function_activation(call.target, call.name, call.args, call.kwargs)
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
        if kind == "identity":
            return Step("pass")
        if kind == "elementwise":
            return Step(
                "activation", (MeasuredActivation(type(module).__name__, module), None), "measured"
            )
    return Step("descend")


def _walk(flow: DataFlow, start: Call) -> Iterator[tuple[Call, Step, int]]:
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
        step = classify(flow, call)
        steps[index] = step
        yield call, step, value
        if step.kind == "pass":
            for out in call.outputs:
                push(out)


def _walk_activation(flow: DataFlow, start: Call) -> Following:
    path: list[str] = []
    for call, step, _ in _walk(flow, start):
        if step.kind == "activation":
            return Following(step.activation, step.how, (*path, call.name))
        if step.kind == "pass":
            path.append(call.name)
    return Following(("linear", None), "none", tuple(path))


_ADDS = frozenset({"add", "add_", "__add__", "__radd__", "__iadd__"})


def _ancestors(flow: DataFlow, values: tuple[int, ...]) -> set[int]:
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


def _feeds_residual(flow: DataFlow, start: Call) -> bool:
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


def _derived_from(flow: DataFlow, value: int, start: Call) -> bool:
    return bool(set(start.outputs) & _ancestors(flow, (value,)))


# ---------------------------------------------------------------------- running the model
@contextlib.contextmanager
def _restored_state(model: nn.Module) -> Iterator[None]:
    """Restore every buffer (running statistics) and the RNG after running ``model``."""
    buffers = [(b, b.detach().clone()) for b in model.buffers() if b.device.type != "meta"]
    devices = sorted(
        {b.device.index or 0 for b, _ in buffers if b.device.type == "cuda"}
        | {p.device.index or 0 for p in model.parameters() if p.device.type == "cuda"}
    )
    try:
        with torch.random.fork_rng(devices=devices):
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
