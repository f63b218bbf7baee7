"""The doctor's probe: hooks that record per-layer statistics of a forward and backward pass.

:class:`_Probe` hooks every leaf module (and every module that owns a weight) and records, per
module call in forward order:

- ``mean``, ``std`` (population, over every element of the output) and ``rms =
  sqrt(mean^2 + std^2)``, the scale of the signal;
- ``zeros``: the fraction of output elements that are exactly 0;
- ``saturated``: for ``Sigmoid`` the fraction of outputs within ``sigmoid_margin`` (0.01) of 0
  or 1, for ``Tanh`` the fraction with ``|a| > tanh_level`` (0.99); ``None`` for other modules;
- ``dead``: for the ReLU family (ReLU, ReLU6, RReLU, LeakyReLU, PReLU) the number of units whose
  output is ``<= 0`` for the whole batch (they pass no gradient, or only the leaky slope), out of
  ``units``. A unit is a feature of a ``(batch, features)`` output and a channel (dim 1) of a
  ``(batch, channels, ...)`` one;
- ``grad_output``: ``||dL/dy||``, the norm of the gradient of the loss with respect to the output;
- for modules that own a weight ``W`` (>= 2 dims): ``weight_norm = ||W||``, ``grad_weight =
  ||dL/dW||``, ``grad_ratio = ||dL/dW|| / ||W||`` (the relative size of an SGD step with lr 1) and
  ``identical``: the number of units (rows of ``W`` reshaped to ``(out, -1)``) equal to another
  row within ``identical_rtol`` times the rms row norm, the signature of zero or constant init;
- the data flow, read from the autograd graph: ``chain`` (weight layers joined through
  activations, dropout, pooling and reshapes, see :meth:`_Probe._flow`), the call that produced
  a weight layer's or a ReLU's input, and ``forks`` (the output read by more than one op, see
  :meth:`_Probe._mark_forks`).

The statistics stay on the device until one host sync (:meth:`_Probe.sync`, helpers in
:mod:`initlab.doctor.pending`); :func:`initlab.doctor.rows._build_rows` turns the recorded
calls into :class:`~initlab.diagnosis.LayerStats` rows. Used by :func:`initlab.diagnose`
(one pass) and :class:`initlab.Monitor` (every ``k`` iterations).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from initlab.doctor.diagnosis import Thresholds
from initlab.doctor.modules import (
    _first_input,
    _first_tensor,
    _identity,
    _plan,
    _Role,
    _unit_rows,
    _weight_of,
)
from initlab.doctor.pending import (
    _add_scalars,
    _identical_rows,
    _Pending,
    _queue_norms,
    _Repairs,
    _Slot,
    _sync,
)
from initlab.doctor.recurrent import _unroll

# Keys per row of the random projections used to find identical weight rows.
_PROJECTIONS = 4
_PROJECTION_SEED = 0x5EED

__all__ = [
    "_Call",
    "_Probe",
    "_identical_rows",
    "_queue_norms",
    "_sync",
    "_unit_rows",
    "_weight_of",
]


@dataclass
class _Call:
    """One recorded module call: the output (until its stats are computed), its gradient
    (until its norm is), and the statistics as Python numbers after the one host sync."""

    name: str
    module: nn.Module
    kind: str | None
    shape: tuple[int, ...] | None
    numel: int
    output: torch.Tensor | None = None
    grad: torch.Tensor | None = None
    samples: torch.Tensor | None = None
    values: dict[str, float] = field(default_factory=dict)
    # Data flow (see _Probe._flow): the chain of weight layers this call belongs to (no
    # normalization or functional op in between), and for weight layers the call whose output
    # was this call's input (its statistics give the input rms), if one was recorded.
    chain: int | None = None
    source: _Call | None = None
    axis: int = 1
    # The output's place in the autograd graph, (grad_fn, output_nr), while the pass runs, and
    # whether more than one op consumes it (see _Probe._mark_forks).
    node: tuple[Any, int] | None = None
    forks: bool = False


# Most elements stacked at once when computing output statistics (bounds the extra memory).
_STACK_ELEMENTS = 1 << 25
# CPUs reduce each output in its hook; tests set this to run the accelerator path on a CPU.
_STACK_ON_CPU = False


class _Probe:
    """Forward hooks that record statistics of module outputs and their gradients with a few
    reductions each and no host sync until :func:`_sync`.

    On CPUs each output is reduced in its hook; on accelerators outputs of the same kind and
    shape are stacked and reduced together when the root module's forward returns (cloned
    first when the model has in-place modules, which would overwrite them). Gradient and
    weight norms use ``torch._foreach_norm``. ``arm()`` switches recording on for the next
    root forward pass only (an evaluation pass in the same step is ignored).
    """

    def __init__(
        self, model: nn.Module, thresholds: Thresholds, samples: int, *, exact: bool = True
    ) -> None:
        self.model = model
        # exact: sums of squares in float64 (no under- or overflow); else in the output's
        # float32, about 3x cheaper on CPUs, and exact to ~1e-8 unless squares under- or
        # overflow, which needs_exact() detects after the sync (diagnose then measures again).
        # The plan (modules, weights, roles) is shared by every probe of this model: read-only.
        self.exact = exact
        self.thresholds = thresholds
        self.samples = samples
        plan = _plan(model)
        self.modules: list[tuple[str, nn.Module]] = plan.modules
        self.weights: dict[int, tuple[nn.Module, torch.Tensor]] = plan.weights
        self.roles: dict[int, _Role] = plan.roles
        self.clone = plan.clone
        self.calls: list[_Call] = []
        self.pending: _Pending = []
        self.repairs: _Repairs = []
        self.scalars: list[torch.Tensor] = []
        self.slots: list[_Slot] = []
        self.armed = False
        self._handles: list[Any] = []
        self._projections: dict[tuple[Any, ...], torch.Tensor] = {}
        self._flow_reset()

    def _flow_reset(self) -> None:
        # Data flow of the armed pass (see _flow): the current chain's id, the outputs its
        # calls produced (by _flow_key), and the feature axis of the last weight layer (1:
        # conv channels, -1: last).
        self._chain = 0
        self._chain_outputs: dict[tuple[Any, ...], tuple[_Call, Any]] = {}
        self._axis = 1
        # Every output recorded in this pass by _flow_key: a weight layer whose input is one
        # of them takes its input rms from that call's statistics.
        self._produced: dict[tuple[Any, ...], tuple[_Call, Any]] = {}

    # -- lifetime
    def attach(self) -> None:
        for name, module in self.modules:
            self._handles.append(
                module.register_forward_hook(partial(self._record, name), with_kwargs=True)
            )
        self._handles.append(self.model.register_forward_hook(self._root_done))

    def detach(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def arm(self) -> None:
        self.calls = []
        self.pending = []
        self.repairs = []
        self.scalars = []
        self.slots = []
        self.armed = True
        self._flow_reset()

    def needs_exact(self) -> bool:
        """After :meth:`sync` of a pass that was not ``exact``: whether a float32 sum of squares
        may have under- or overflowed, so the pass must be measured again with ``exact``. An
        output whose largest ``|x|`` is below ``1e-12`` (its squares, below ``1e-24``, lose
        the elements under ``1e-19``) or whose sum of squares is not finite; an output gradient
        whose sum of squares is below ``1e-30`` (exact zeros included: from one number, an
        underflow cannot be told from a zero gradient) or not finite. Vanishing and exploding
        signals, zero-initialized layers: the cases where the doctor measures twice."""
        if self.exact:
            return False
        for call in self.calls:
            v = call.values
            if "sumsq" in v:
                peak = max(abs(v["low"]), abs(v["high"]))
                if (
                    math.isfinite(peak)
                    and peak > 0
                    and (peak < 1e-12 or not math.isfinite(v["sumsq"]))
                ):
                    return True
            g = v.get("grad_sumsq")
            if g is not None and (not math.isfinite(g) or g < 1e-30):
                return True
        return False

    def sync(self) -> None:
        """Copy every queued statistic to the host (one copy per device) into its slot."""
        if self.scalars:
            # On the CPU .item() is a read, not a device sync, and cheaper than stacking
            # hundreds of 0-d tensors; elsewhere they are stacked and copied once.
            others, other_slots = [], []
            for value, (target, key) in zip(self.scalars, self.slots, strict=True):
                if value.device.type == "cpu":
                    target[key] = value.item()
                else:
                    others.append(value)
                    other_slots.append((target, key))
            if others:
                _add_scalars(self.pending, others, other_slots)
        _sync(self.pending, self.repairs)
        self.pending, self.repairs, self.scalars, self.slots = [], [], [], []

    # -- hooks
    def _record(self, name: str, module: nn.Module, args: Any, kwargs: Any, output: Any) -> None:
        if not self.armed:
            return
        # The statistics are plain tensor ops: no torch-function mode (diagnose's dropout
        # switch) or subclass needs to see them, and skipping that dispatch saves ~10 us an op.
        with torch._C.DisableTorchFunction():
            self._record_call(name, module, args, kwargs, output)

    def _record_call(
        self, name: str, module: nn.Module, args: Any, kwargs: Any, output: Any
    ) -> None:
        out = _first_tensor(output)
        if out is None or not out.is_floating_point() or out.numel() == 0:
            self.calls.append(_Call(name, module, None, None, 0))
            return
        role = self.roles[id(module)]
        call = _Call(name, module, role.kind, tuple(out.shape), out.numel())
        self._flow(call, role, _first_input(args, kwargs), out)
        self.calls.append(call)
        kept = out.detach()
        self._produced[_flow_key(out)] = (call, _alive(out, kept))
        if kept.device.type == "cpu" and not _STACK_ON_CPU:
            # CPUs: reduce now, one output at a time (before any in-place op changes it).
            with torch.no_grad():
                self._queue_call(call, kept)
        else:
            # Accelerators: stack outputs of the same shape and reduce them together when the
            # root forward returns (a few kernel launches instead of several per module).
            call.output = kept.clone() if self.clone else kept
        if out.requires_grad and torch.is_grad_enabled():
            out.register_hook(partial(self._grad, call))
            if out.grad_fn is not None:
                call.node = (out.grad_fn, out.output_nr)
        if role.recurrent:  # inside LSTM/GRU/RNN: gates and time (recurrent.py)
            th = self.thresholds
            inside = _unroll(module, args, kwargs or {}, th.tanh_level, th.sigmoid_margin)  # type: ignore[arg-type]
            for key, value in (inside or {}).items():
                if isinstance(value, torch.Tensor):
                    self.scalars.append(value)
                    self.slots.append((call.values, key))
                else:
                    call.values[key] = value

    def _flow(self, call: _Call, role: _Role, inp: torch.Tensor | None, out: torch.Tensor) -> None:
        """Follow the data flow between module calls. A weight layer whose input was produced
        by the current chain (through activation, dropout and pooling modules, and reshapes)
        continues it; any other starts a new chain. Normalization layers and functional ops (a
        residual add, in place too, a gate's product, attention) break chains, so a residual
        branch is judged against its own input (the skip path), not layer after layer along
        the stream. A call that is neither a weight layer nor linked to the current chain
        belongs to no chain (``chain`` None). Weight layers also record the rms of their input
        (their own gain); ReLU-family calls the call that produced their input (also in
        place), whose statistics say whether that input was all zeros.

        Tensors are matched by :func:`_flow_key`: their autograd node, which the pass holds,
        so a tensor allocated where a freed one lived is never taken for it."""
        in_place = role.inplace and inp is out  # not nn.Identity: its output is its input
        linked = inp is not None and _lookup(self._chain_outputs, inp, in_place) is not None
        if role.weighted:
            if not linked:
                self._chain += 1
            self._chain_outputs = {_flow_key(out): (call, _alive(out, out))}
            self._axis = role.axis
            if inp is not None and inp.is_floating_point() and inp.numel() > 0:
                # The input's rms: from the call that produced it when one was recorded
                # (no extra reduction), else one norm of the input itself.
                found = _lookup(self._produced, inp, in_place)
                call.source = None if found is None else found[0]
                if call.source is None:
                    with torch.no_grad():
                        norm = torch.linalg.vector_norm(inp.detach(), dtype=torch.float64)
                    self.scalars.append(norm)
                    self.slots.append((call.values, "in_norm"))
                call.values["in_numel"] = float(inp.numel())
        elif role.norm:
            self._chain_outputs.pop(_flow_key(out), None)
        elif linked:
            self._chain_outputs[_flow_key(out)] = (call, _alive(out, out))
        if role.kind == "relu" and inp is not None:
            found = _lookup(self._produced, inp, in_place)
            call.source = None if found is None else found[0]
        call.chain = self._chain if role.weighted or linked else None
        call.axis = self._axis

    def _grad(self, call: _Call, grad: torch.Tensor) -> None:
        if grad.device.type == "cpu" and not _STACK_ON_CPU:
            # CPUs: reduce now, so the gradient's memory is reused at once (keeping every
            # gradient alive until the end of the pass slows the backward pass down).
            # sum g^2: float32 unless exact (see needs_exact), float64 from one copy if exact.
            flat = grad.detach().reshape(-1)
            if self.exact or flat.dtype not in (torch.float32, torch.float64):
                flat = flat.to(torch.float64)
            self.scalars.append(_sumsq(flat))
            self.slots.append((call.values, "grad_sumsq"))
        else:
            call.grad = grad.detach()

    def _root_done(self, module: nn.Module, args: Any, output: Any) -> None:
        if self.armed:
            self.armed = False
            with torch.no_grad():
                self._stacked_stats()
            self._mark_forks(output)
            self._chain_outputs, self._produced = {}, {}  # hold no graph node past the pass

    def _mark_forks(self, output: Any) -> None:
        """Mark the calls whose output more than one op consumes (``forks``): a residual
        stream feeding both a branch and the skip path, or a tensor read by two branches. The
        gradient there is the sum over its consumers, so it cannot be compared with the
        gradient inside one of them. Read from the autograd graph of the root's output (one
        walk over its nodes, about a microsecond each); a consumer that only reshapes
        (view, permute, ...) is looked through. Each output tensor counts as used once."""
        uses = _uses(list(_all_tensors(output)))
        for call in self.calls:
            if call.node is not None:
                call.forks = _forks(call.node, uses)
                call.node = None  # hold no graph node past the pass

    # -- statistics
    def _stacked_stats(self) -> None:
        groups: dict[tuple[Any, ...], list[_Call]] = {}
        for call in self.calls:
            if call.output is not None:
                out = call.output
                key = (call.kind, call.shape, call.axis, out.dtype, out.device)
                groups.setdefault(key, []).append(call)
        for members in groups.values():
            per_chunk = max(1, _STACK_ELEMENTS // max(1, members[0].numel))
            for start in range(0, len(members), per_chunk):
                chunk = members[start : start + per_chunk]
                stacked = torch.stack([c.output for c in chunk])  # type: ignore[misc]
                self._queue(chunk, stacked)
                for call in chunk:
                    call.output = None

    def _queue_call(self, call: _Call, out: torch.Tensor) -> None:
        """Queue the statistics of one output (CPUs, in its hook) as 0-d tensors, stacked only
        at the sync: ``sum`` and ``sumsq`` (``sum x^2``; in float64 from one float64 copy when
        ``exact``, else by :func:`_sum` and :func:`_sumsq`, see :meth:`needs_exact`),
        ``low``/``high`` (``aminmax``), ``nonzero``, and by kind ``saturated`` or ``alive``
        (ReLU units > 0 for some sample). Full reductions: on CPUs several times faster than
        reductions along a dimension of a stacked group."""
        th = self.thresholds
        if out.dtype not in (torch.float32, torch.float64):
            out = out.float()
        flat = out.reshape(-1)
        wide = flat.to(torch.float64) if self.exact else flat
        low, high = torch.aminmax(flat)
        stats = {
            "sum": wide.sum() if self.exact else _sum(flat),
            "sumsq": wide.square().sum() if self.exact else _sumsq(flat),
            "low": low,
            "high": high,
            "nonzero": _nonzero(flat),
        }
        del wide
        if call.kind == "tanh":
            stats["saturated"] = (flat.abs() > th.tanh_level).sum()
        elif call.kind == "sigmoid":
            stats["saturated"] = ((flat - 0.5).abs() > 0.5 - th.sigmoid_margin).sum()
        elif call.kind == "relu" and out.dim() >= 2:
            ndim = out.dim()
            # Channels (dim 1), or (batch, features); else (batch, tokens, features): last dim.
            channels = call.axis == 1 or ndim == 2
            dims = (0, *range(2, ndim)) if channels else tuple(range(ndim - 1))
            stats["alive"] = (out.amax(dim=dims) > 0).sum()
        if self.samples > 0:
            call.samples = flat[: self.samples].clone()
        values = call.values
        for key, value in stats.items():
            self.scalars.append(value)
            self.slots.append((values, key))

    def _queue(self, chunk: list[_Call], stacked: torch.Tensor) -> None:
        """Queue the statistics of ``k`` outputs of one kind and shape stacked as ``(k,
        *shape)`` (accelerators): ``sum``, ``norm`` (``sqrt(sum x^2)``), ``low``/``high``,
        ``nonzero``, and by kind ``saturated`` or ``alive``, each reduced along dim 1 of the
        ``(k, numel)`` view: a few kernel launches for the whole group."""
        th = self.thresholds
        if stacked.dtype not in (torch.float32, torch.float64):
            stacked = stacked.float()
        k = stacked.shape[0]
        flat = stacked.reshape(k, -1)
        kind, shape = chunk[0].kind, chunk[0].shape
        stats = {
            "sum": flat.sum(dim=1, dtype=torch.float64),
            "norm": torch.linalg.vector_norm(flat, dim=1, dtype=torch.float64),
            "low": flat.amin(dim=1),
            "high": flat.amax(dim=1),
            "nonzero": flat.bool().sum(dim=1),
        }
        if kind == "tanh":
            stats["saturated"] = (flat.abs() > th.tanh_level).sum(dim=1)
        elif kind == "sigmoid":
            stats["saturated"] = ((flat - 0.5).abs() > 0.5 - th.sigmoid_margin).sum(dim=1)
        elif kind == "relu" and shape is not None and len(shape) >= 2:
            # Units are features: channels (dim 1) after a conv, the last dim after a linear
            # layer or attention ((batch, tokens, features) outputs); alive if > 0 anywhere.
            ndim = len(shape)
            if chunk[0].axis == 1 or ndim == 2:
                dims = (1, *range(3, ndim + 1))
            else:
                dims = tuple(range(1, ndim))
            stats["alive"] = (stacked.amax(dim=dims) > 0).sum(dim=1)
        if self.samples > 0:
            kept = flat[:, : self.samples].clone()
            for j, call in enumerate(chunk):
                call.samples = kept[j]
        # One pending entry: (statistic, output) ordered, float64 by type promotion.
        keys = list(stats)
        block = torch.stack([stats[key].to(torch.float64) for key in keys], dim=1)
        targets = [(c.values, key) for c in chunk for key in keys]
        self.pending.append((block.reshape(-1), targets))

    def gradient_stats(self) -> None:
        """Queue the norms of the recorded output gradients (one fused call)."""
        with_grad = [c for c in self.calls if c.grad is not None]
        if with_grad:
            grads = [c.grad for c in with_grad]
            targets = [(c.values, "grad_output") for c in with_grad]
            _queue_norms(self.pending, self.repairs, grads, targets)  # type: ignore[arg-type]
            for call in with_grad:
                call.grad = None

    def weight_stats(self, into: dict[int, dict[str, float]]) -> None:
        """Queue ``weight_norm`` and ``identical`` for every weight (a few fused calls)."""
        entries = list(self.weights.items())
        if not entries:
            return
        with torch.no_grad():
            weights = [w.detach() for _, (_, w) in entries]
            units = [_unit_rows(m, w) for w, (_, (m, _)) in zip(weights, entries, strict=True)]
            targets = [into.setdefault(key, {}) for key, _ in entries]
            norms = torch._foreach_norm(weights)
            _add_scalars(self.pending, norms, [(t, "weight_norm") for t in targets])
            self.repairs.extend(
                (w, t, "weight_norm") for w, t in zip(weights, targets, strict=True)
            )
            by_rows: dict[tuple[Any, ...], list[int]] = {}
            for i, w in enumerate(units):
                if w.shape[0] >= 2:
                    by_rows.setdefault((w.shape[0], w.dtype, w.device), []).append(i)
            for members in by_rows.values():
                keys, scales = [], []
                for i in members:
                    rows = units[i]
                    # (P, in) x (out, in)^T as a GEMM: much faster than rows @ (in, P).
                    keys.append(F.linear(self._projection(rows), rows).T)
                    scales.append(norms[i] / math.sqrt(rows.shape[0]))  # float32: fine here
                counts = _identical_rows(
                    torch.stack(keys), torch.stack(scales), self.thresholds.identical_rtol
                )
                self.pending.append((counts, [(targets[i], "identical") for i in members]))

    def _projection(self, rows: torch.Tensor) -> torch.Tensor:
        """A fixed ``(P, in)`` matrix of Gaussian rows scaled to unit norm."""
        key = (rows.shape[1], rows.dtype, rows.device)
        if key not in self._projections:
            generator = torch.Generator().manual_seed(_PROJECTION_SEED)
            projection = torch.randn(_PROJECTIONS, rows.shape[1], generator=generator)
            projection /= torch.linalg.vector_norm(projection, dim=1, keepdim=True)
            self._projections[key] = projection.to(device=rows.device, dtype=rows.dtype)
        return self._projections[key]


# Elements per row of the float32 norms that _sumsq combines.
_ROW = 1 << 12


def _sumsq(flat: torch.Tensor) -> torch.Tensor:
    """``sum x^2`` of a vector as a 0-d float64 tensor, without a temporary of its size:
    the norms of its rows of ``_ROW`` elements (in its own dtype), then theirs in float64.
    As accurate as a cascade sum of squares in float32 (relative error about 1e-8; one float32
    norm of a million elements is off by 5e-5), and several times cheaper inside a forward or
    backward pass than ``square().sum()``, whose full-size temporary costs fresh pages each time
    (50 ms of a 540 ms ResNet-50 backward pass). Float32 squares may under- or overflow (see
    :meth:`_Probe.needs_exact`)."""
    n = flat.numel()
    flat = flat.contiguous()  # a strided view reduces along rows less accurately
    if flat.dtype == torch.float64 or n <= _ROW:
        return torch.linalg.vector_norm(flat, dtype=torch.float64).square()
    cut = n - n % _ROW
    parts = torch.linalg.vector_norm(flat[:cut].reshape(-1, _ROW), dim=1)
    if cut < n:
        parts = torch.cat([parts, torch.linalg.vector_norm(flat[cut:]).reshape(1)])
    return torch.linalg.vector_norm(parts, dtype=torch.float64).square()


def _sum(flat: torch.Tensor) -> torch.Tensor:
    """``sum x`` of a vector as a 0-d float64 tensor: in float64 up to ``_ROW`` elements, else
    float32 sums of its rows of ``_ROW`` elements added in float64. The float32 total of a
    cascade sum is itself rounded to float32 (6e-8 relative), which the ``std`` of an output
    whose mean is ten times its std (a sigmoid near 0.5) multiplies by ``(mean / std)^2``: 1e-5
    off, while the sum of squares was exact. Above ``_ROW`` elements the float32 row totals (of
    this sum and of :func:`_sumsq`) leave such a std about ``1e-8 (mean / std)^2`` off."""
    n = flat.numel()
    flat = flat.contiguous()
    if flat.dtype == torch.float64 or n <= _ROW:
        return flat.sum(dtype=torch.float64)
    cut = n - n % _ROW
    total = flat[:cut].reshape(-1, _ROW).sum(dim=1).sum(dtype=torch.float64)
    return total + flat[cut:].sum(dtype=torch.float64) if cut < n else total


# Bools per block of _nonzero: 255 int64 words of 8 bools, so no byte of their sum passes 255.
_BLOCK = 8 * 255


def _nonzero(flat: torch.Tensor) -> torch.Tensor:
    """The number of non-zero elements of a vector, as a 0-d integer tensor. Summing bools is
    not vectorized on CPUs (``count_nonzero`` is ~10x slower, ``bool().sum()`` 0.8 ms a million
    elements); for large vectors the bools are viewed as int64 words and summed 255 words at a
    time, each byte of a sum then counting at most 255 ones, and those bytes summed: ~3x
    faster."""
    mask = flat.bool()
    n = mask.numel()
    if n < 1 << 16:
        return mask.sum(dtype=torch.int32)
    cut = n - n % _BLOCK
    words = mask[:cut].view(torch.uint8).view(torch.int64).view(-1, 255).sum(dim=1)
    return words.view(torch.uint8).sum(dtype=torch.int64) + mask[cut:].sum()


def _flow_key(t: torch.Tensor) -> tuple[Any, ...]:
    """What identifies a tensor in the data flow: its autograd node ``(grad_fn, output_nr)``
    when it has one (an object the probe holds while the pass runs), else its identity
    (memory, size, dtype, version: see :func:`~initlab.doctor.modules._identity`)."""
    if t.grad_fn is not None:
        return (t.grad_fn, t.output_nr)
    return _identity(t)


def _alive(out: torch.Tensor, kept: torch.Tensor) -> torch.Tensor | None:
    """What a table of outputs holds beside a key: nothing for an autograd node (the key
    itself holds it), else the tensor, whose memory no later tensor may then take."""
    return None if out.grad_fn is not None else kept


# Backward nodes of ops that only reshape or copy their one input: the data flow (and a fork
# behind them) is that of the tensor before them.
_SHAPE_NODES = frozenset({
    "ViewBackward", "UnsafeViewBackward", "ReshapeAliasBackward", "PermuteBackward",
    "TransposeBackward", "TBackward", "CloneBackward", "ExpandBackward", "SqueezeBackward",
    "UnsqueezeBackward", "ToCopyBackward", "AliasBackward",
})  # fmt: skip


def _reshapes(node: Any) -> bool:
    return node.name().rstrip("0123456789") in _SHAPE_NODES and bool(node.next_functions)


def _lookup(table: dict[tuple[Any, ...], Any], t: torch.Tensor, in_place: bool) -> Any:
    """``table``'s entry for the tensor ``t``, looking through reshapes (view, permute, ...)
    back to the tensor they were made from; ``in_place``: ``t`` is also the module's output,
    so what the module read is the tensor before its in-place op (the node's input, or the
    version before), unless ``t`` is itself in the table (``nn.Identity``)."""
    if t.grad_fn is None:
        key = _identity(t)
        if in_place and key not in table:
            key = (*key[:3], key[3] - 1)
        return table.get(key)
    node, nr = t.grad_fn, t.output_nr
    if in_place and (node, nr) not in table and node.next_functions:
        node, nr = node.next_functions[0]
    while node is not None:
        found = table.get((node, nr))
        if found is not None or not _reshapes(node):
            return found
        node, nr = node.next_functions[0]
    return None


def _all_tensors(value: Any) -> Iterator[torch.Tensor]:
    """Every tensor in a module's output (nested tuples, lists, dicts, ``ModelOutput``)."""
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _all_tensors(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _all_tensors(item)


_OUTPUT = object()  # the consumer of the root's outputs: the loss, outside the graph


def _uses(outputs: list[torch.Tensor]) -> dict[tuple[Any, int], list[Any]]:
    """The consumers of every ``(node, output_nr)`` of the autograd graph behind
    ``outputs``: one walk, each node visited once."""
    uses: dict[tuple[Any, int], list[Any]] = {}
    stack = []
    for t in outputs:
        if t.grad_fn is not None:
            uses.setdefault((t.grad_fn, t.output_nr), []).append(_OUTPUT)
            stack.append(t.grad_fn)
    seen = set(stack)
    while stack:
        node = stack.pop()
        for child, nr in node.next_functions:
            if child is None:
                continue
            uses.setdefault((child, nr), []).append(node)
            if child not in seen:
                seen.add(child)
                stack.append(child)
    return uses


def _forks(key: tuple[Any, int], uses: dict[tuple[Any, int], list[Any]]) -> bool:
    """Whether the tensor at ``key`` (or the reshaped copy its only consumer makes) has
    more than one consumer."""
    while True:
        consumers = uses.get(key, ())
        if len(consumers) != 1:
            return len(consumers) > 1
        node = consumers[0]
        if node is _OUTPUT or not _reshapes(node):
            return False
        key = (node, 0)
