"""Kinks of piecewise-linear functions met by the forward pass: where they sit, which entries
move a unit that sits exactly on one, and how far a step may go before it crosses one.

A central difference ``(L(w + h d) - L(w - h d)) / (2 h)`` in float64 is exact up to
``O(h^2)`` as long as no pre-activation crosses a kink between ``w - h d`` and ``w + h d``:
then every ReLU, ReLU6, hardswish and max-pool stays on one linear piece and the loss is
smooth along the segment. :class:`KinkWatch` is a ``TorchFunctionMode`` that sees the inputs
of these functions. Each kink is a *switching value* ``s`` whose sign picks the piece, signed
so that ``s = 0`` is the piece PyTorch's backward uses there (``relu'(0) = 0``):

=========================  =============================================  =================
function                   switching values ``s`` (piece ``s > 0``)        ``s = 0`` means
=========================  =============================================  =================
relu, leaky_relu           ``x``                                           slope 0 / slope
threshold(x, t, v)         ``x - t``                                       passes ``v``
hardtanh, relu6, clamp     ``x - lo``, ``hi - x`` (clamp: ``lo - x``,      inside (clamp:
                           ``x - hi``: its backward passes at the bounds)  clamped)
hardswish                  ``-(x + 3)``, ``x - 3``                         middle piece
hardsigmoid                ``x + 3``, ``3 - x``                            outside
abs                        ``x``, ``-x``                                   neither side
max_pool2d                 ``max(other entries) - chosen entry``           chosen entry
=========================  =============================================  =================

At the base point the watch *records* every switching value (with its autograd graph).
A unit is **on** a kink where ``|s| <= 1e-9 max|x|`` over its call's input ``x`` (exact
zeros, or closer than a step of ``1e-10`` could resolve: a ReLU6
after a depthwise convolution of an all-zero channel, a zero-initialised residual branch
added to a dead unit): any step moving it lands on a piece the backward did not use, on one
side or the other, so a central difference there is wrong by ``O(1)`` however small the
step. :func:`pins` finds the entries that move such units at first order, with one backward
pass of ``sum(rho * s)`` over them (``rho`` in ``[0.5, 1.5]``, a private seeded generator):
an entry with a non-zero derivative moves one, and is left out of the directions.

During every later evaluation the watch measures, for each unit, the fraction of its margin
the step used: ``r = delta_s / |s|`` towards the other piece (``|s|`` at least ``1e-14
max|x|``, above round-off), and keeps the largest ``r`` of the evaluation. ``r < 1``: no
unit changed piece. ``r >= 1``: some unit crossed, and a step ``h / (2 r)`` would keep all
of them on their side (the switching values move linearly with the step to first order). A
unit on a kink that the step moves (``delta_s`` above round-off) gives ``r`` far above 1:
no step avoids it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

_TOLERANCE = 1e-9  # on a kink: |s| below this fraction of the call's largest input |x|
_FLOOR = 1e-14  # margins count as at least this fraction of it (round-off is below)
_HUGE = 1e300


# -- switching values: each takes the call's arguments and returns a list of tensors s whose
#    sign picks the piece; ``None``: arguments this module does not understand (unwatched).


def _relu(x: torch.Tensor, *args: Any, **kwargs: Any) -> list[torch.Tensor]:
    return [x]


def _threshold(x: torch.Tensor, threshold: float, *args: Any, **kwargs: Any) -> list[Any]:
    return [x - threshold]


def _hardtanh(
    x: torch.Tensor, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False
) -> list[torch.Tensor]:
    return [x - min_val, max_val - x]


def _relu6(x: torch.Tensor, inplace: bool = False) -> list[torch.Tensor]:
    return [x, 6.0 - x]


def _hardswish(x: torch.Tensor, inplace: bool = False) -> list[torch.Tensor]:
    return [-(x + 3.0), x - 3.0]


def _hardsigmoid(x: torch.Tensor, inplace: bool = False) -> list[torch.Tensor]:
    return [x + 3.0, 3.0 - x]


def _abs(x: torch.Tensor) -> list[torch.Tensor]:
    return [x, -x]


def _clamp(x: torch.Tensor, min: Any = None, max: Any = None) -> list[Any]:
    return [s for s in (None if min is None else min - x, None if max is None else x - max)
            if s is not None]  # fmt: skip


def _clamp_min(x: torch.Tensor, min: Any) -> list[Any]:
    return [min - x]


def _clamp_max(x: torch.Tensor, max: Any) -> list[Any]:
    return [x - max]


def _pair(value: Any) -> tuple[int, int] | None:
    if isinstance(value, int):
        return value, value
    if isinstance(value, tuple | list) and len(value) in (1, 2):
        return (int(value[0]), int(value[-1]))
    return None


def _windows(x: torch.Tensor, kernel: Any, stride: Any = None, padding: Any = 0,
             dilation: Any = 1, ceil_mode: bool = False, return_indices: bool = False,
             ) -> torch.Tensor | None:  # fmt: skip
    """The pooling windows of ``max_pool2d`` as ``(..., out_h, out_w, kh * kw)``, padding
    ``-inf``; ``None`` for dilated pooling (not watched)."""
    k, p = _pair(kernel), _pair(padding)
    s = _pair(stride) if stride not in (None, (), []) else k
    if k is None or s is None or p is None or _pair(dilation) != (1, 1) or x.dim() < 3:
        return None
    pads = []
    for size, kk, ss, pp in zip(x.shape[-2:], k, s, p, strict=True):
        out = (size + 2 * pp - kk + (ss - 1 if ceil_mode else 0)) // ss + 1
        if ceil_mode and (out - 1) * ss >= size + pp:
            out -= 1
        pads.append((pp, max(pp, (out - 1) * ss + kk - size - pp), out))
    (top, bottom, rows), (left, right, cols) = pads
    padded = F.pad(x, (left, right, top, bottom), value=-math.inf)
    found = padded.unfold(-2, k[0], s[0]).unfold(-2, k[1], s[1])[..., :rows, :cols, :, :]
    return found.flatten(-2)


def _max_pool2d(x: torch.Tensor, *args: Any, chosen: torch.Tensor | None = None,
                **kwargs: Any) -> tuple[list[torch.Tensor], torch.Tensor] | None:  # fmt: skip
    windows = _windows(x, *args, **kwargs)
    if windows is None or windows.shape[-1] < 2:
        return None
    if chosen is None:  # the entry the forward kernel picks: the first maximum in scan order
        chosen = windows.argmax(-1, keepdim=True)
    picked = windows.gather(-1, chosen.expand(*windows.shape[:-1], 1))
    others = windows.scatter(-1, chosen.expand(*windows.shape[:-1], 1), -math.inf)
    return [(others.amax(-1) - picked.squeeze(-1)).clamp_min(-_HUGE)], chosen


# functions whose kinks sit at fixed values of their first argument ("elementwise"): the
# watch measures them from x alone; the others (tensor bounds, max-pool) recompute s
_ELEMENTWISE: dict[Callable[..., Any], Callable[..., list[Any]]] = {
    F.relu: _relu, torch.relu: _relu, torch.relu_: _relu, torch.Tensor.relu: _relu,
    torch.Tensor.relu_: _relu, F.leaky_relu: _relu, F.leaky_relu_: _relu,
    F.threshold: _threshold, F.threshold_: _threshold,
    F.hardtanh: _hardtanh, F.hardtanh_: _hardtanh, F.relu6: _relu6,
    F.hardswish: _hardswish, F.hardsigmoid: _hardsigmoid,
    torch.abs: _abs, torch.Tensor.abs: _abs, torch.abs_: _abs, torch.Tensor.abs_: _abs,
}  # fmt: skip
_CLAMPS: dict[Callable[..., Any], Callable[..., list[Any]]] = {
    torch.clamp: _clamp, torch.clip: _clamp, torch.Tensor.clamp: _clamp,
    torch.Tensor.clip: _clamp, torch.Tensor.clamp_: _clamp, torch.Tensor.clip_: _clamp,
    torch.clamp_: _clamp, torch.clamp_min: _clamp_min, torch.Tensor.clamp_min: _clamp_min,
    torch.clamp_max: _clamp_max, torch.Tensor.clamp_max: _clamp_max,
}  # fmt: skip
_POOLS = (F.max_pool2d, F.max_pool2d_with_indices, torch.max_pool2d)
WATCHED = sorted({getattr(f, "__name__", str(f)) for f in (*_ELEMENTWISE, *_CLAMPS, *_POOLS)})


class _Kinks:
    """One watched call at the base point: the input ``x`` (elementwise kinks) or the
    switching values, and the weights ``w`` with ``r = delta * w`` (see the module
    docstring). ``on``: units on a kink."""

    def __init__(self, func: Any, elementwise: bool, values: list[torch.Tensor],
                 x: torch.Tensor, chosen: torch.Tensor | None) -> None:  # fmt: skip
        self.func, self.elementwise, self.chosen = func, elementwise, chosen
        self.x = x.detach().clone()
        finite = [v.detach() for v in values]
        scale = float(self.x.abs().max()) if self.x.numel() else 0.0
        self.on = [v.abs() <= max(_TOLERANCE * scale, 1e-300) for v in finite]
        # r = delta_s * sign / max(|s|, floor), sign = -1 on the piece s > 0, else +1
        floor = max(_FLOOR * scale, 1e-300)
        weights = [torch.where(v > 0, -1.0, 1.0).to(v) / v.abs().clamp_min(floor)
                   for v in finite]  # fmt: skip
        if elementwise:  # s_j = +-x + c: delta_s_j = +-delta_x; keep max and min of +-w_j
            signed = [w * _slope(i, func) for i, w in enumerate(weights)]
            self.high = torch.stack(signed).amax(0) if len(signed) > 1 else signed[0]
            self.low = torch.stack(signed).amin(0) if len(signed) > 1 else signed[0]
            self.values: list[torch.Tensor] = []
        else:
            self.values, self.weights = finite, weights
        self.graph = values  # with their autograd graph, for :func:`pins`
        self.module: nn.Module | None = None  # the leaf module whose forward this call is
        self.rest: tuple = ()
        self.kwargs: dict = {}

    def ratio(self, values: list[torch.Tensor] | None, x: torch.Tensor) -> torch.Tensor:
        """The largest fraction of a margin used, at the perturbed input ``x``."""
        if self.elementwise:
            delta = x - self.x
            return torch.maximum(delta * self.high, delta * self.low).amax()
        assert values is not None
        parts = [((v - b) * w).amax() for v, b, w in zip(values, self.values, self.weights,
                                                          strict=True)]  # fmt: skip
        return torch.stack(parts).amax() if len(parts) > 1 else parts[0]

    def count(self, values: list[torch.Tensor] | None, x: torch.Tensor) -> torch.Tensor:
        """How many units changed piece at the perturbed input."""
        if self.elementwise:
            delta = x - self.x
            return (torch.maximum(delta * self.high, delta * self.low) >= 1).sum()
        assert values is not None
        pairs = zip(values, self.values, self.weights, strict=True)
        return sum(((v - b) * w >= 1).sum() for v, b, w in pairs)


def _slope(index: int, func: Any) -> float:
    """d s_index / d x for the elementwise switching values (their order in the builders)."""
    builder = _ELEMENTWISE[func]
    if builder in (_hardtanh, _relu6, _hardsigmoid, _abs):
        return 1.0 if index == 0 else -1.0
    if builder is _hardswish:
        return -1.0 if index == 0 else 1.0
    return 1.0


class _Frame:
    """A module running during the recording forward: its input, and whether a watched
    call already ran inside it."""

    def __init__(self, module: nn.Module, x: Any) -> None:
        self.module, self.x, self.used = module, x, False


class KinkWatch(torch.overrides.TorchFunctionMode):
    """Watches the kinked functions of a forward pass (see the module docstring).

    ``recording()``: the base forward; every watched call is kept, in call order.
    ``evaluating(count)``: a perturbed forward (also under ``torch.func.vmap``); afterwards
    ``result()`` is the largest margin fraction ``r`` (a tensor, batched under vmap) and, with
    ``count``, how many units changed piece. A forward whose watched calls do not match the
    recorded ones (data-dependent control flow) sets ``mismatch``: its ``r`` is ``inf``.

    With the ``model`` whose forward this is, calls that are the whole forward of a leaf
    module (``nn.ReLU``, ``nn.ReLU6``, ``nn.MaxPool2d``, ...: the module's input is the
    function's input, the other arguments are not tensors) are watched by forward pre-hooks
    on those modules after the recording; only where some call is not, every later forward
    runs under this mode, which costs a Python call per torch function. ``close()`` removes
    the hooks.
    """

    def __init__(self, model: nn.Module | None = None) -> None:
        super().__init__()
        self.model = model
        self.calls: list[_Kinks] = []
        self.state = "off"
        self.mismatch = False
        self.hooked = False
        self._index = 0
        self._count = False
        self._r: Any = None
        self._n: Any = None
        self._stack: list[_Frame] = []
        self._handles: list[Any] = []

    @contextmanager
    def recording(self) -> Iterator[None]:
        self.calls, self.state = [], "record"
        frames = [] if self.model is None else self._frames()
        try:
            with self:
                yield
        finally:
            self.state = "off"
            for handle in frames:
                handle.remove()
        self.hooked = bool(self.calls) and all(c.module is not None for c in self.calls)

    def _frames(self) -> list[Any]:
        assert self.model is not None

        def push(module: nn.Module, args: tuple) -> None:
            self._stack.append(_Frame(module, args[0] if args else None))

        def pop(module: nn.Module, args: tuple, output: Any) -> None:
            if self._stack and self._stack[-1].module is module:
                self._stack.pop()

        handles = []
        for m in self.model.modules():
            handles.append(m.register_forward_pre_hook(push))
            handles.append(m.register_forward_hook(pop, always_call=True))
        return handles

    @contextmanager
    def evaluating(self, count: bool = False) -> Iterator[None]:
        self.state, self._index, self._count = "watch", 0, count
        self._r, self._n = torch.zeros((), dtype=torch.float64), torch.zeros((), dtype=torch.long)
        if self.hooked and not self._handles:
            for module in {id(c.module): c.module for c in self.calls}.values():
                self._handles.append(module.register_forward_pre_hook(self._hook))
        try:
            if self.hooked:
                yield
            else:
                with self:
                    yield
            if self._index != len(self.calls):
                self.mismatch = True
                self._r = self._r + math.inf
        finally:
            self.state = "off"

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def result(self) -> tuple[Any, Any]:
        return self._r, self._n

    @property
    def on_kinks(self) -> int:
        """Units sitting on a kink at the base point."""
        return sum(int(m.sum()) for c in self.calls for m in c.on)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if self.state != "off" and args and isinstance(args[0], torch.Tensor):
            self._see(func, args, kwargs)
        return func(*args, **kwargs)

    def _hook(self, module: nn.Module, args: tuple) -> None:
        if self.state != "watch":
            return
        if self._index >= len(self.calls) or self.calls[self._index].module is not module:
            self._lost()
            return
        call = self.calls[self._index]
        self._see(call.func, (args[0], *call.rest), call.kwargs)

    def _lost(self) -> None:
        self.mismatch = True
        self._r = self._r + math.inf

    def _see(self, func: Any, args: tuple, kwargs: dict) -> None:
        x = args[0]
        if not x.is_floating_point():
            return
        elementwise = func in _ELEMENTWISE
        if not (elementwise or func in _CLAMPS or func in _POOLS):
            return
        if self.state == "record":
            values, chosen = self._values(func, args, kwargs, None, record=True)
            if values is not None:  # clone: an in-place function overwrites x next
                call = _Kinks(func, elementwise, values, x, chosen)
                call.module, call.rest, call.kwargs = self._owner(args, kwargs), args[1:], kwargs
                self.calls.append(call)
            return
        if self._index >= len(self.calls) or self.calls[self._index].func is not func:
            self._lost()
            return
        call = self.calls[self._index]
        self._index += 1
        values = None
        if not elementwise:
            values, _ = self._values(func, args, kwargs, call.chosen)
            if values is None or len(values) != len(call.values):
                self._lost()
                return
        if x.shape != call.x.shape:
            self._lost()
            return
        self._r = torch.maximum(self._r, call.ratio(values, x))
        if self._count:
            self._n = self._n + call.count(values, x)

    def _owner(self, args: tuple, kwargs: dict) -> nn.Module | None:
        """The leaf module whose whole forward this call is, if any (see the class)."""
        frame = self._stack[-1] if self._stack else None
        if frame is None or frame.used or frame.x is not args[0]:
            return None
        frame.used = True
        constant = not any(isinstance(v, torch.Tensor) for v in (*args[1:], *kwargs.values()))
        leaf = next(iter(frame.module.children()), None) is None
        return frame.module if constant and leaf else None

    @staticmethod
    def _values(
        func: Any, args: tuple, kwargs: dict, chosen: torch.Tensor | None, record: bool = False
    ) -> tuple[list[torch.Tensor] | None, torch.Tensor | None]:
        if record:  # from a copy: an in-place function overwrites x next
            args = (args[0].clone(), *args[1:])
        try:
            if func in _POOLS:
                found = _max_pool2d(*args, chosen=chosen, **kwargs)
                return (None, None) if found is None else found
            builder = _ELEMENTWISE.get(func) or _CLAMPS[func]
            values = [v if isinstance(v, torch.Tensor) else torch.as_tensor(v)
                      for v in builder(*args, **kwargs)]  # fmt: skip
        except (TypeError, RuntimeError):  # an argument pattern this module does not know
            return None, None
        x = args[0]
        return [v.expand(x.shape) if v.shape != x.shape else v for v in values], None


def pins(
    watch: KinkWatch, leaves: Mapping[str, torch.Tensor], seed: int = 0
) -> dict[str, torch.Tensor]:
    """For each tensor, the derivative ``v`` of ``sum(rho * s)`` over the units on a kink
    (recorded with their graph by ``watch.recording()``), ``rho`` in ``[0.5, 1.5]`` from a
    private generator: entries with ``v != 0`` move such a unit (pinned); ``-sign(v)`` moves
    every unit whose switching values all grow with ``v`` onto the piece the backward used
    (see :func:`one_sided`). Tensors no such unit depends on are left out."""
    generator = torch.Generator().manual_seed(seed)
    total: Any = 0.0
    for call in watch.calls:
        for value, on in zip(call.graph, call.on, strict=True):
            if bool(on.any()) and value.requires_grad:
                rho = torch.rand(int(on.sum()), generator=generator, dtype=torch.float64)
                total = total + (value[on] * (rho + 0.5).to(value)).sum()
    if not isinstance(total, torch.Tensor) or not total.requires_grad:
        return {}
    names = list(leaves)
    grads = torch.autograd.grad(total, [leaves[n] for n in names], allow_unused=True,
                                retain_graph=True)  # fmt: skip
    return {n: g.detach() for n, g in zip(names, grads, strict=True)
            if g is not None and bool((g != 0).any())}  # fmt: skip


def release(watch: KinkWatch) -> None:
    """Drop the recorded autograd graphs once :func:`pins` has run."""
    for call in watch.calls:
        call.graph = []
