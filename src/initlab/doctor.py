"""The doctor: measure signal propagation through a model and name what is wrong with its init.

:func:`diagnose` runs one forward and one backward pass on a batch with hooks on every leaf
module (and every module that owns a weight) and records, per module call in forward order:

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
  row within ``identical_rtol`` times the rms row norm, the signature of zero or constant init.

Without ``targets`` the loss is a fixed random projection of the output, ``L = sum(P * y) / B``
with ``P ~ N(0, 1)`` of the output's shape drawn from ``seed`` (never the global RNG) and ``B``
the batch size, so that ``dL/dy = P / B`` has the scale of a mean loss.

The verdicts (:class:`Verdict`) compare layers along depth, using the outputs of the weight
layers (``Linear``, ``Conv``, ...) in forward order, numbered from 1:

- **vanishing** / **exploding** (activations): ``rms_l / rms_1`` falls below ``vanishing`` or
  rises above ``exploding`` for some layer ``l``, or non-finite values appear (exploding);
- **vanishing** / **exploding** (gradients): ``||dL/dy_l|| / ||dL/dy_L||`` for the layers before
  the last one ``L`` (the gradient norm is preserved by a good init, the per-element rms is not
  when widths change);
- **saturated**: at least ``saturated`` of a tanh/sigmoid layer's outputs are saturated;
- **dead**: at least ``dead`` of a ReLU-family layer's units are dead on the batch (layers whose
  weights are symmetric are left to that verdict);
- **symmetric**: at least ``symmetric`` of a layer's units are identical to another unit;
- **healthy**: none of the above.

Every threshold is a field of :class:`Thresholds`. Recommendations follow the activation that
comes after each weight layer in forward order: He (``he_normal``, gain of the activation) for
the ReLU family and other rectifiers (GELU, SiLU, ELU, ...), Glorot (gain 1) for tanh and
sigmoid, LeCun for SELU and for layers followed by no activation. :func:`fix`
re-initializes with them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from functools import cache, partial
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from ._table import format_table, format_value
from ._validation import check_number
from .activations import _PASS_MODULES, following_activations, module_activation
from .apply import InitReport, init_model
from .fans import fan_in_fan_out
from .registry import get
from .schemes import Activation

VerdictKind = Literal["symmetric", "dead", "saturated", "exploding", "vanishing", "healthy"]
KINDS: tuple[str, ...] = ("symmetric", "dead", "saturated", "exploding", "vanishing", "healthy")
"""Verdict kinds, most fundamental first (the order of :attr:`Diagnosis.verdicts`)."""

_RELU_FAMILY = (nn.ReLU, nn.ReLU6, nn.RReLU, nn.LeakyReLU, nn.PReLU)
_DROPOUT = (
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
    nn.AlphaDropout,
    nn.FeatureAlphaDropout,
)
# Keys per row of the random projections used to find identical weight rows.
_PROJECTIONS = 4
_PROJECTION_SEED = 0x5EED


# ---------------------------------------------------------------------- results
@dataclass(frozen=True)
class Thresholds:
    """When a statistic becomes a finding. Ratios compare layers along depth.

    - ``vanishing`` (1e-2): activation rms of some layer below this fraction of layer 1's, or
      a gradient norm below this fraction of the last layer's;
    - ``exploding`` (1e2): the same ratios above this;
    - ``saturated`` (0.3): fraction of a tanh/sigmoid layer's outputs that are saturated;
    - ``dead`` (0.75): fraction of a ReLU-family layer's units dead on the batch (deep ReLU
      nets at He init already lose a quarter to two fifths of their units on one batch at
      depth 50, as the samples' representations become correlated);
    - ``symmetric`` (0.5): fraction of a layer's units identical to another unit;
    - ``identical_rtol`` (1e-5): rows count as equal when they differ (in norm) by at most this
      times the rms row norm of the weight;
    - ``sigmoid_margin`` (0.01) and ``tanh_level`` (0.99): what counts as saturated.
    """

    vanishing: float = 1e-2
    exploding: float = 1e2
    saturated: float = 0.3
    dead: float = 0.75
    symmetric: float = 0.5
    identical_rtol: float = 1e-5
    sigmoid_margin: float = 0.01
    tanh_level: float = 0.99

    def __post_init__(self) -> None:
        check_number("vanishing", self.vanishing, minimum=0.0, maximum=1.0, strict_minimum=True)
        check_number("exploding", self.exploding, minimum=1.0)
        for name in ("saturated", "dead", "symmetric"):
            check_number(name, getattr(self, name), minimum=0.0, maximum=1.0, strict_minimum=True)
        check_number("identical_rtol", self.identical_rtol, minimum=0.0)
        check_number("sigmoid_margin", self.sigmoid_margin, minimum=0.0, maximum=0.5)
        check_number("tanh_level", self.tanh_level, minimum=0.0, maximum=1.0)

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass
class LayerStats:
    """Statistics of one module call (one row of :class:`Diagnosis`); ``None`` = not applicable."""

    index: int
    name: str
    module: str
    layer: int
    shape: tuple[int, ...] | None = None
    mean: float | None = None
    std: float | None = None
    zeros: float | None = None
    saturated: float | None = None
    dead: int | None = None
    units: int | None = None
    grad_output: float | None = None
    weight_norm: float | None = None
    grad_weight: float | None = None
    identical: int | None = None
    weight_rows: int | None = None
    weighted: bool = False
    samples: torch.Tensor | None = field(default=None, repr=False, compare=False)

    @property
    def rms(self) -> float | None:
        """``sqrt(mean^2 + std^2)``: the scale of the output."""
        if self.mean is None or self.std is None:
            return None
        return math.hypot(self.mean, self.std)

    @property
    def grad_ratio(self) -> float | None:
        """``||dL/dW|| / ||W||``."""
        if self.grad_weight is None or not self.weight_norm:
            return None
        return self.grad_weight / self.weight_norm

    @property
    def dead_fraction(self) -> float | None:
        return None if self.dead is None or not self.units else self.dead / self.units

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "samples"}
        data["shape"] = None if self.shape is None else list(self.shape)
        data["rms"] = self.rms
        data["grad_ratio"] = self.grad_ratio
        return {k: _json_number(v) for k, v in data.items()}


@dataclass
class Verdict:
    """A finding: its ``kind``, the modules involved, a sentence and the numbers behind it."""

    kind: str
    layers: list[str]
    message: str
    numbers: dict[str, float] = field(default_factory=dict)
    signal: str | None = None

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["numbers"] = {k: _json_number(v) for k, v in self.numbers.items()}
        return data


@dataclass
class Recommendation:
    """The init a weight layer should get for the activation that follows it."""

    parameter: str
    activation: str
    scheme: str
    family: str
    expected_std: float
    current_rms: float | None

    def to_dict(self) -> dict[str, Any]:
        return {k: _json_number(v) for k, v in asdict(self).items()}


@dataclass
class Diagnosis:
    """The result of :func:`diagnose`: rows in forward order, verdicts, recommendations."""

    layers: list[LayerStats]
    verdicts: list[Verdict]
    recommendations: list[Recommendation]
    thresholds: Thresholds
    loss: float | None = None
    label: str = "model"
    iteration: int | None = None

    _HEADERS = (
        "#",
        "layer",
        "module",
        "mean",
        "std",
        "zeros",
        "saturated",
        "dead",
        "grad out",
        "grad W",
        "grad/W",
        "identical",
    )

    @property
    def kinds(self) -> list[str]:
        """The verdict kinds, most fundamental first."""
        return [v.kind for v in self.verdicts]

    @property
    def healthy(self) -> bool:
        return self.kinds == ["healthy"]

    @property
    def primary(self) -> Verdict:
        """The most fundamental finding (symmetric > dead > saturated > exploding > vanishing)."""
        return self.verdicts[0]

    @property
    def weighted(self) -> list[LayerStats]:
        """Rows of the weight layers' calls, in forward order (layer 1, 2, ...)."""
        return [row for row in self.layers if row.weighted]

    def table(self) -> str:
        rows = []
        for r in self.layers:
            dead = None if r.dead is None else f"{r.dead}/{r.units}"
            identical = None if r.identical is None else f"{r.identical}/{r.weight_rows}"
            rows.append(
                (
                    r.index,
                    r.name,
                    r.module,
                    r.mean,
                    r.std,
                    r.zeros,
                    r.saturated,
                    dead,
                    r.grad_output,
                    r.grad_weight,
                    r.grad_ratio,
                    identical,
                )
            )
        return format_table(self._HEADERS, rows)

    def __str__(self) -> str:
        lines = [self.table(), "", f"verdicts ({self.label}):"]
        lines += [f"  - {v}" for v in self.verdicts]
        if not self.healthy and self.recommendations:
            lines += ["", "recommended init (initlab.fix applies it):"]
            lines.append(
                format_table(
                    ["parameter", "activation", "scheme", "expected std", "current rms"],
                    [
                        (r.parameter, r.activation, r.scheme, r.expected_std, r.current_rms)
                        for r in self.recommendations
                    ],
                )
            )
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "iteration": self.iteration,
            "loss": _json_number(self.loss),
            "thresholds": self.thresholds.to_dict(),
            "verdicts": [v.to_dict() for v in self.verdicts],
            "recommendations": [r.to_dict() for r in self.recommendations],
            "layers": [r.to_dict() for r in self.layers],
        }

    def plot(self, path: str | Path, *others: Diagnosis) -> Path:
        """Write a PNG: activation rms and gradient norm per layer (log scale; ``others``
        overlaid, each labelled by its ``label``) and histograms of this diagnosis's outputs
        at a few layers. Atomic write; returns the path."""
        from .report.signal import plot_signal  # matplotlib is imported only when plotting

        return plot_signal([self, *others], path)


def _json_number(value: Any) -> Any:
    """JSON has no inf/nan: write them as strings."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    return value


@dataclass
class Fix:
    """The result of :func:`fix`: diagnoses before and after, and what was re-initialized."""

    before: Diagnosis
    after: Diagnosis
    init: InitReport
    rules: dict[str, str]

    def __str__(self) -> str:
        rows = [
            (b.layer, b.name, b.rms, a.rms, b.grad_output, a.grad_output)
            for b, a in zip(self.before.weighted, self.after.weighted, strict=False)
        ]
        lines = ["before:"]
        lines += [f"  - {v}" for v in self.before.verdicts]
        weights = sum(1 for name in self.rules if not name.endswith("bias"))
        lines += ["", f"re-initialized {weights} weight layers (biases to zero):"]
        lines.append(
            format_table(
                ["parameter", "scheme", "target std"],
                [
                    (r.parameter, r.scheme, r.target_std)
                    for r in self.init.rows
                    if r.action == "rule" and r.parameter.endswith("weight")
                ],
            )
        )
        lines += ["", "after:"]
        lines += [f"  - {v}" for v in self.after.verdicts]
        lines += [
            "",
            format_table(
                ["layer", "module", "rms before", "rms after", "grad before", "grad after"], rows
            ),
        ]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "before": self.before.to_dict(),
            "after": self.after.to_dict(),
            "rules": dict(self.rules),
            "init": self.init.to_dict(),
        }


# ---------------------------------------------------------------------- the probe
def _first_tensor(value: Any) -> torch.Tensor | None:
    """The first tensor in a module's output (itself, or the first in a tuple/list/dict)."""
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, list | tuple):
        for item in value:
            found = _first_tensor(item)
            if found is not None:
                return found
    if isinstance(value, dict):
        for item in value.values():
            found = _first_tensor(item)
            if found is not None:
                return found
    return None


def _weight_of(module: nn.Module) -> torch.Tensor | None:
    """The weight whose rows are the module's units: ``module.weight`` if >= 2-D, else the
    first >= 2-D parameter the module owns."""
    weight = getattr(module, "weight", None)
    if isinstance(weight, torch.Tensor) and weight.dim() >= 2:
        return weight
    for param in module.parameters(recurse=False):
        if param.dim() >= 2:
            return param
    return None


def _kind(module: nn.Module) -> str | None:
    if isinstance(module, nn.Tanh):
        return "tanh"
    if isinstance(module, nn.Sigmoid | nn.Hardsigmoid):
        return "sigmoid"
    if isinstance(module, _RELU_FAMILY):
        return "relu"
    return None


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


# Pending statistics: 1-D tensors on the device and, per element, where its value goes.
_Pending = list[tuple[torch.Tensor, list[tuple[dict[str, float], str]]]]
# Most elements stacked at once when computing output statistics (bounds the extra memory).
_STACK_ELEMENTS = 1 << 25
# CPUs reduce each output in its hook; tests set this to run the accelerator path on a CPU.
_STACK_ON_CPU = False


def _add_scalars(
    pending: _Pending, scalars: Sequence[torch.Tensor], targets: list[tuple[dict, str]]
) -> None:
    """Queue 0-d tensors, stacked per (dtype, device) so that the sync is one copy."""
    groups: dict[tuple[torch.dtype, torch.device], list[int]] = {}
    for i, t in enumerate(scalars):
        groups.setdefault((t.dtype, t.device), []).append(i)
    for members in groups.values():
        pending.append((torch.stack([scalars[i] for i in members]), [targets[i] for i in members]))


def _queue_norms(
    pending: _Pending,
    repairs: list[tuple[torch.Tensor, dict[str, float], str]],
    tensors: Sequence[torch.Tensor],
    targets: list[tuple[dict[str, float], str]],
) -> None:
    """Euclidean norms of many tensors in one fused float32 call. Those that come back 0 or
    non-finite (the float32 sum of squares under- or overflows beyond about 1e19 or below
    1e-19 per element) are recomputed in float64 after the sync, see :func:`_sync`."""
    tensors = list(tensors)
    _add_scalars(pending, torch._foreach_norm(tensors), targets)
    repairs.extend((t, target, key) for t, (target, key) in zip(tensors, targets, strict=True))


def _sync(
    pending: _Pending, repairs: Sequence[tuple[torch.Tensor, dict[str, float], str]] = ()
) -> None:
    """Copy every pending statistic to the host at once and store it where it belongs; then
    recompute in float64 the norms in ``repairs`` that came back 0 or non-finite (rare: a
    vanishing or exploding signal; one more sync each)."""
    _sync_pending(pending)
    for tensor, target, key in repairs:
        value = target.get(key)
        if value is not None and (value == 0 or not math.isfinite(value)):
            target[key] = float(torch.linalg.vector_norm(tensor, dtype=torch.float64))


def _sync_pending(pending: _Pending) -> None:
    if not pending:
        return
    by_device: dict[torch.device, list[int]] = {}
    for i, (tensor, _) in enumerate(pending):
        by_device.setdefault(tensor.device, []).append(i)
    for members in by_device.values():
        # Concatenate on the device (float64 by type promotion: a float64 zero leads), then one
        # copy to the host per device.
        device = pending[members[0]][0].device
        lead = torch.zeros(1, dtype=torch.float64, device=device)
        merged = torch.cat([lead, *(pending[i][0].reshape(-1) for i in members)])[1:]
        values = merged.cpu().tolist()
        position = 0
        for i in members:
            tensor, targets = pending[i]
            if tensor.numel() != len(targets):  # pragma: no cover - internal invariant
                raise RuntimeError("statistics and their slots are out of step")
            for target, key in targets:
                target[key] = values[position]
                position += 1


class _Probe:
    """Forward hooks that record statistics of module outputs and their gradients with a few
    reductions each and no host sync until :func:`_sync`.

    On CPUs each output is reduced in its hook; on accelerators outputs of the same kind and
    shape are stacked and reduced together when the root module's forward returns (cloned
    first when the model has in-place modules, which would overwrite them). Gradient and
    weight norms use ``torch._foreach_norm``. ``arm()`` switches recording on for the next
    root forward pass only (an evaluation pass in the same step is ignored).
    """

    def __init__(self, model: nn.Module, thresholds: Thresholds, samples: int) -> None:
        self.model = model
        self.thresholds = thresholds
        self.samples = samples
        self.modules: list[tuple[str, nn.Module]] = []
        for name, module in model.named_modules():
            leaf = next(module.children(), None) is None
            if leaf or _weight_of(module) is not None:
                self.modules.append((name or type(module).__name__, module))
        self.weights: dict[int, tuple[nn.Module, torch.Tensor]] = {}
        for _, module in self.modules:
            weight = _weight_of(module)
            if weight is not None and weight.is_floating_point():
                self.weights.setdefault(id(module), (module, weight))
        self.clone = any(getattr(m, "inplace", False) is True for m in model.modules())
        self.calls: list[_Call] = []
        self.pending: _Pending = []
        self.repairs: list[tuple[torch.Tensor, dict[str, float], str]] = []
        self.armed = False
        self._handles: list[Any] = []
        self._projections: dict[tuple[Any, ...], torch.Tensor] = {}

    # -- lifetime
    def attach(self) -> None:
        for name, module in self.modules:
            self._handles.append(module.register_forward_hook(partial(self._record, name)))
        self._handles.append(self.model.register_forward_hook(self._root_done))

    def detach(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def arm(self) -> None:
        self.calls = []
        self.pending = []
        self.repairs = []
        self.armed = True

    # -- hooks
    def _record(self, name: str, module: nn.Module, args: Any, output: Any) -> None:
        if not self.armed:
            return
        out = _first_tensor(output)
        if out is None or not out.is_floating_point() or out.numel() == 0:
            self.calls.append(_Call(name, module, None, None, 0))
            return
        call = _Call(name, module, _kind(module), tuple(out.shape), out.numel())
        self.calls.append(call)
        kept = out.detach()
        if kept.device.type == "cpu" and not _STACK_ON_CPU:
            # CPUs: reduce now, one output at a time (before any in-place op changes it).
            with torch.no_grad():
                self._queue([call], kept.unsqueeze(0), per_call=True)
        else:
            # Accelerators: stack outputs of the same shape and reduce them together when the
            # root forward returns (a few kernel launches instead of several per module).
            call.output = kept.clone() if self.clone else kept
        if out.requires_grad and torch.is_grad_enabled():
            out.register_hook(partial(self._grad, call))

    def _grad(self, call: _Call, grad: torch.Tensor) -> None:
        if grad.device.type == "cpu" and not _STACK_ON_CPU:
            # CPUs: reduce now, so the gradient's memory is reused at once (keeping every
            # gradient alive until the end of the pass slows the backward pass down).
            norm = torch.linalg.vector_norm(grad.detach(), dtype=torch.float64)
            self.pending.append((norm.reshape(1), [(call.values, "grad_output")]))
        else:
            call.grad = grad.detach()

    def _root_done(self, module: nn.Module, args: Any, output: Any) -> None:
        if self.armed:
            self.armed = False
            with torch.no_grad():
                self._stacked_stats()

    # -- statistics
    def _stacked_stats(self) -> None:
        groups: dict[tuple[Any, ...], list[_Call]] = {}
        for call in self.calls:
            if call.output is not None:
                out = call.output
                groups.setdefault((call.kind, call.shape, out.dtype, out.device), []).append(call)
        for members in groups.values():
            per_chunk = max(1, _STACK_ELEMENTS // max(1, members[0].numel))
            for start in range(0, len(members), per_chunk):
                chunk = members[start : start + per_chunk]
                stacked = torch.stack([c.output for c in chunk])  # type: ignore[misc]
                self._queue(chunk, stacked, per_call=False)
                for call in chunk:
                    call.output = None

    def _queue(self, chunk: list[_Call], stacked: torch.Tensor, *, per_call: bool) -> None:
        """Queue the statistics of ``k`` outputs stacked as ``(k, *shape)``: ``sum``, ``norm``
        (``sqrt(sum x^2)``), ``low``/``high`` (min and max), ``nonzero``, and by kind
        ``saturated`` or ``alive`` (ReLU units > 0 for some sample). With ``per_call`` (k = 1,
        CPUs) full reductions are used: on CPUs they are several times faster than reductions
        along a dimension."""
        th = self.thresholds
        if stacked.dtype not in (torch.float32, torch.float64):
            stacked = stacked.float()
        k = stacked.shape[0]
        flat = stacked.reshape(k, -1)
        kind, shape = chunk[0].kind, chunk[0].shape
        if per_call:
            x = flat[0]
            low, high = torch.aminmax(x)
            stats = {
                "sum": x.sum(dtype=torch.float64),
                "norm": torch.linalg.vector_norm(x, dtype=torch.float64),  # no underflow
                "low": low,
                "high": high,
                "nonzero": x.bool().sum(),  # count_nonzero is ~10x slower on CPUs
            }
        else:
            stats = {
                "sum": flat.sum(dim=1, dtype=torch.float64),
                "norm": torch.linalg.vector_norm(flat, dim=1, dtype=torch.float64),
                "low": flat.amin(dim=1),
                "high": flat.amax(dim=1),
                "nonzero": flat.bool().sum(dim=1),
            }

        def count(mask: torch.Tensor) -> torch.Tensor:
            return mask.sum() if per_call else mask.sum(dim=1)

        if kind == "tanh":
            stats["saturated"] = count(flat.abs() > th.tanh_level)
        elif kind == "sigmoid":
            stats["saturated"] = count((flat - 0.5).abs() > 0.5 - th.sigmoid_margin)
        elif kind == "relu" and shape is not None and len(shape) >= 2:
            dims = (1,) if len(shape) == 2 else (1, *range(3, len(shape) + 1))
            stats["alive"] = (stacked.amax(dim=dims) > 0).sum(dim=1)
        if self.samples > 0:
            kept = flat[:, : self.samples].clone()
            for j, call in enumerate(chunk):
                call.samples = kept[j]
        # One pending entry: (statistic, output) ordered, float64 by type promotion.
        keys = list(stats)
        block = torch.stack([stats[key].reshape(k).to(torch.float64) for key in keys], dim=1)
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
            targets = [into.setdefault(key, {}) for key, _ in entries]
            norms = torch._foreach_norm(weights)
            _add_scalars(self.pending, norms, [(t, "weight_norm") for t in targets])
            self.repairs.extend(
                (w, t, "weight_norm") for w, t in zip(weights, targets, strict=True)
            )
            by_rows: dict[tuple[Any, ...], list[int]] = {}
            for i, w in enumerate(weights):
                if w.shape[0] >= 2:
                    by_rows.setdefault((w.shape[0], w.dtype, w.device), []).append(i)
            for members in by_rows.values():
                keys, scales = [], []
                for i in members:
                    rows = weights[i].reshape(weights[i].shape[0], -1)
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


def _identical_rows(keys: torch.Tensor, scale: torch.Tensor, rtol: float) -> torch.Tensor:
    """How many rows of each weight equal another row, in O(n log n).

    ``keys`` ``(layers, rows, P)`` are the rows projected on ``P`` fixed random unit directions,
    ``scale`` ``(layers,)`` the rms row norm ``||W|| / sqrt(rows)``. Rows are sorted by the first
    key; neighbours whose keys all agree within ``rtol * scale`` count as identical. Rows that
    differ by at most that much (in norm) always pass; two rows that differ by more pass all
    ``P = 4`` random directions with negligible probability.
    """
    order = keys[:, :, 0].argsort(dim=1)
    ordered = keys.gather(1, order[:, :, None].expand_as(keys))
    gaps = (ordered[:, 1:] - ordered[:, :-1]).abs()
    same = (gaps <= rtol * scale[:, None, None]).all(dim=2)
    flags = torch.zeros(keys.shape[:2], dtype=torch.bool, device=keys.device)
    flags[:, 1:] |= same
    flags[:, :-1] |= same
    return flags.sum(dim=1)


def _build_rows(
    calls: Sequence[_Call], per_weight: dict[int, dict[str, float]]
) -> list[LayerStats]:
    rows: list[LayerStats] = []
    seen: dict[str, int] = {}
    layer = 0
    for index, call in enumerate(calls):
        seen[call.name] = seen.get(call.name, 0) + 1
        name = call.name if seen[call.name] == 1 else f"{call.name}#{seen[call.name]}"
        weight = per_weight.get(id(call.module))
        weighted = weight is not None and "weight_norm" in weight
        if weighted:
            layer += 1
        row = LayerStats(
            index=index + 1,
            name=name,
            module=type(call.module).__name__,
            layer=layer,
            shape=call.shape,
            weighted=weighted,
            samples=call.samples,
        )
        values = call.values
        if "sum" in values:
            n = call.numel
            row.mean = values["sum"] / n
            if values["low"] == values["high"]:
                row.std = 0.0  # constant output: exact, whatever the rounding of the sums
            else:
                row.std = math.sqrt(max(values["norm"] ** 2 / n - row.mean**2, 0.0))
            row.zeros = 1.0 - values["nonzero"] / n
            if "saturated" in values:
                row.saturated = values["saturated"] / n
            if "alive" in values and call.shape is not None:
                row.units = call.shape[1]
                row.dead = row.units - int(values["alive"])
        row.grad_output = values.get("grad_output")
        if weighted:
            row.weight_norm = weight["weight_norm"]  # type: ignore[index]
            row.grad_weight = weight.get("grad_weight")  # type: ignore[union-attr]
            if "identical" in weight:  # type: ignore[operator]
                row.identical = int(weight["identical"])  # type: ignore[index]
            row.weight_rows = _weight_of(call.module).shape[0]  # type: ignore[union-attr]
        rows.append(row)
    return rows


# ---------------------------------------------------------------------- verdicts
def _fmt(value: float) -> str:
    return format_value(float(value)) if math.isfinite(value) else str(value)


def _where(row: LayerStats) -> str:
    return f"layer {row.layer} ({row.name})"


def _ratio_verdicts(
    series: list[tuple[LayerStats, float]],
    reference: LayerStats,
    ref_value: float,
    th: Thresholds,
    what: str,
    signal: str,
    backward: bool,
) -> list[Verdict]:
    found: list[Verdict] = []
    others = [(row, v) for row, v in series if row is not reference]
    if not others:
        return found
    low_row, low = min(others, key=lambda rv: rv[1])
    high_row, high = max(others, key=lambda rv: rv[1])
    steps = lambda row: max(1, abs(row.layer - reference.layer))  # noqa: E731
    for kind, row, value, bad in (
        ("vanishing", low_row, low, lambda r: r < th.vanishing),
        ("exploding", high_row, high, lambda r: r > th.exploding),
    ):
        ratio = value / ref_value
        if not bad(ratio):
            continue
        verb = "falls" if kind == "vanishing" else "grows"
        per_layer = _rate(series, reference, row, ref_value, value, steps(row))
        involved = [r.name for r, v in others if bad(v / ref_value)]
        direction = " (going backward)" if backward else ""
        limit = th.vanishing if kind == "vanishing" else th.exploding
        message = (
            f"{what} {verb} from {_fmt(ref_value)} at {_where(reference)} to {_fmt(value)} at "
            f"{_where(row)}{direction}: x{_fmt(ratio)}, about x{_fmt(per_layer)} per layer "
            f"({len(involved)} layer{'s' if len(involved) != 1 else ''} beyond x{_fmt(limit)})"
        )
        numbers = {
            "reference": ref_value,
            "value": value,
            "ratio": ratio,
            "per_layer": per_layer,
            "reference_layer": reference.layer,
            "layer": row.layer,
        }
        found.append(Verdict(kind, involved, message, numbers, signal))
    return found


def _rate(
    series: list[tuple[LayerStats, float]],
    reference: LayerStats,
    row: LayerStats,
    ref_value: float,
    value: float,
    steps: int,
) -> float:
    """Factor per layer between ``reference`` and ``row``: ``exp(slope)`` of a least-squares
    fit of ``log(value)`` against the distance from ``reference``, over the layers in between
    with a positive finite value (robust to one odd layer and to values flushed to zero);
    the plain ``(value / ref) ** (1 / steps)`` when fewer than three such layers."""
    low, high = sorted((reference.layer, row.layer))
    points = [
        (abs(r.layer - reference.layer), math.log(v))
        for r, v in series
        if low <= r.layer <= high and v > 0 and math.isfinite(v)
    ]
    if len(points) >= 3:
        n = len(points)
        mx = sum(p[0] for p in points) / n
        my = sum(p[1] for p in points) / n
        sxx = sum((p[0] - mx) ** 2 for p in points)
        if sxx > 0:
            return math.exp(sum((p[0] - mx) * (p[1] - my) for p in points) / sxx)
    return (value / ref_value) ** (1 / steps) if value > 0 else 0.0


def _signal_verdicts(weighted: list[LayerStats], th: Thresholds) -> list[Verdict]:
    found: list[Verdict] = []
    forward = [(row, row.rms) for row in weighted if row.rms is not None]
    forward_broken = False
    if len(forward) >= 2:
        bad = [row for row, v in forward if not math.isfinite(v)]
        if bad:
            forward_broken = True
            first = bad[0]
            ref_row, ref = forward[0]
            finite = [(r, v) for r, v in forward if math.isfinite(v)]
            top_row, top = max(finite, key=lambda rv: rv[1]) if finite else (ref_row, ref)
            found.append(
                Verdict(
                    "exploding",
                    [r.name for r in bad],
                    f"activations overflow: rms grows from {_fmt(ref)} at {_where(ref_row)} to "
                    f"{_fmt(top)} at {_where(top_row)}, and outputs are non-finite (inf/nan) from "
                    f"{_where(first)} on ({len(bad)} layers)",
                    {
                        "reference": ref,
                        "value": top,
                        "layer": top_row.layer,
                        "first_nonfinite_layer": first.layer,
                    },
                    "activations",
                )
            )
        elif forward[0][1] > 0:
            found += _ratio_verdicts(
                forward,
                forward[0][0],
                forward[0][1],
                th,
                "activation rms",
                "activations",
                backward=False,
            )
    backward = [(row, row.grad_output) for row in weighted if row.grad_output is not None]
    if len(backward) >= 2 and not forward_broken:
        bad = [row for row, v in backward if not math.isfinite(v)]
        ref_row, ref = backward[-1]
        if bad:
            found.append(
                Verdict(
                    "exploding",
                    [r.name for r in bad],
                    f"gradients are non-finite (inf/nan) at {len(bad)} layers, first going "
                    f"backward at {_where(bad[-1])}",
                    {"layers": len(bad)},
                    "gradients",
                )
            )
        elif ref > 0:
            found += _ratio_verdicts(
                backward, ref_row, ref, th, "gradient norm ||dL/dy||", "gradients", backward=True
            )
    return found


def _verdicts(rows: list[LayerStats], th: Thresholds) -> list[Verdict]:
    found: list[Verdict] = []
    weighted = [row for row in rows if row.weighted]

    symmetric = [
        row
        for row in weighted
        if row.identical is not None and row.identical >= th.symmetric * row.weight_rows
    ]  # type: ignore[operator]
    if symmetric:
        worst = max(symmetric, key=lambda r: r.identical / r.weight_rows)  # type: ignore[operator]
        names = _unique([r.name for r in symmetric])
        found.append(
            Verdict(
                "symmetric",
                names,
                f"{len(names)} of {len(_unique([r.name for r in weighted]))} weight layers have "
                f"identical units (e.g. {worst.identical} of {worst.weight_rows} rows of "
                f"{worst.name}'s weight are equal): zero or constant init; identical units "
                f"compute the same function and get the same gradient, so training never "
                f"tells them apart",
                {"layers": len(names), "max_fraction": worst.identical / worst.weight_rows},  # type: ignore[operator]
            )
        )
    symmetric_layers = {r.layer for r in symmetric}

    dead = [
        row
        for row in rows
        if row.dead_fraction is not None
        and row.dead_fraction >= th.dead
        and row.layer not in symmetric_layers
        and _finite(row)  # inf/nan outputs are the exploding verdict's
    ]
    if dead:
        fractions = [r.dead_fraction for r in dead]
        worst = max(dead, key=lambda r: r.dead_fraction)  # type: ignore[arg-type,return-value]
        total = sum(1 for r in rows if r.dead_fraction is not None)
        found.append(
            Verdict(
                "dead",
                [r.name for r in dead],
                f"in {len(dead)} of {total} ReLU-family layers at least {_pct(th.dead)} of the "
                f"units output <= 0 for the whole batch "
                f"(mean {_pct(sum(fractions) / len(fractions))}, "  # type: ignore[arg-type]
                f"{worst.dead} of {worst.units} in {worst.name}): they pass no gradient; look for "
                f"large negative biases or too large weights",
                {
                    "layers": len(dead),
                    "mean_fraction": sum(fractions) / len(fractions),  # type: ignore[arg-type]
                    "max_fraction": worst.dead_fraction,
                },  # type: ignore[dict-item]
            )
        )

    saturated = [
        row
        for row in rows
        if row.saturated is not None and row.saturated >= th.saturated and _finite(row)
    ]
    if saturated:
        fractions = [r.saturated for r in saturated]
        worst = max(saturated, key=lambda r: r.saturated)  # type: ignore[arg-type,return-value]
        total = sum(1 for r in rows if r.saturated is not None)
        found.append(
            Verdict(
                "saturated",
                [r.name for r in saturated],
                f"in {len(saturated)} of {total} tanh/sigmoid layers at least {_pct(th.saturated)} "
                f"of the outputs are saturated (mean {_pct(sum(fractions) / len(fractions))}, "  # type: ignore[arg-type]
                f"max {_pct(worst.saturated)} in {worst.name}): their local gradient is near 0; "  # type: ignore[arg-type]
                f"the weights are too large for the activation",
                {
                    "layers": len(saturated),
                    "mean_fraction": sum(fractions) / len(fractions),  # type: ignore[arg-type]
                    "max_fraction": worst.saturated,
                },  # type: ignore[dict-item]
            )
        )

    found += _signal_verdicts(weighted, th)
    found.sort(key=lambda v: KINDS.index(v.kind))
    if not found:
        found.append(_healthy(weighted, th))
    return found


def _healthy(weighted: list[LayerStats], th: Thresholds) -> Verdict:
    parts = []
    forward = [r.rms for r in weighted if r.rms is not None]
    if len(forward) >= 2 and forward[0]:
        parts.append(
            f"activation rms stays within x{_fmt(min(forward) / forward[0])} to "
            f"x{_fmt(max(forward) / forward[0])} of layer 1's {_fmt(forward[0])}"
        )
    grads = [r.grad_output for r in weighted if r.grad_output is not None]
    if len(grads) >= 2 and grads[-1]:
        parts.append(
            f"gradient norm within x{_fmt(min(grads) / grads[-1])} to "
            f"x{_fmt(max(grads) / grads[-1])} of the last layer's"
        )
    parts.append("no saturated, dead or identical units beyond the thresholds")
    numbers = {}
    if len(forward) >= 2 and forward[0]:
        numbers["min_ratio"] = min(forward) / forward[0]
        numbers["max_ratio"] = max(forward) / forward[0]
    return Verdict("healthy", _unique([r.name for r in weighted]), "; ".join(parts), numbers)


def _finite(row: LayerStats) -> bool:
    return row.mean is not None and math.isfinite(row.mean) and math.isfinite(row.std or 0.0)


def _pct(value: float) -> str:
    return f"{100 * value:.0f}%"


def _unique(names: list[str]) -> list[str]:
    return list(dict.fromkeys(names))


# ---------------------------------------------------------------------- recommendations
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


@cache
def _scheme(spec: str) -> Any:
    return get(spec)


def _recommendations(
    model: nn.Module, calls: Sequence[_Call], per_weight: dict[int, dict[str, float]]
) -> list[Recommendation]:
    """Per weight module: the activation that follows its first call in forward order (skipping
    dropout, normalization, pooling and reshapes); ``torch.fx`` tracing when the model has no
    activation modules (functional activations)."""
    qualified = {id(m): n for n, m in model.named_modules()}
    by_module: dict[int, Activation] = {}
    has_modules = any(
        module_activation(c.module) is not None and not isinstance(c.module, nn.Identity)
        for c in calls
    )
    traced = None if has_modules else following_activations(model)
    for i, call in enumerate(calls):
        if _weight_of(call.module) is None or id(call.module) in by_module:
            continue
        found: Activation = ("linear", None)
        if traced is not None:
            entry = traced.get(qualified.get(id(call.module), ""))
            if entry is not None:
                found = entry.activation
        else:
            for later in calls[i + 1 :]:
                if _weight_of(later.module) is not None:
                    break
                if isinstance(later.module, (*_PASS_MODULES, nn.Identity)):
                    continue
                act = module_activation(later.module)
                if act is not None:
                    found = act
                break
        by_module[id(call.module)] = found
    result = []
    for call in calls:
        if id(call.module) not in by_module:
            continue
        activation = by_module.pop(id(call.module))
        weight = _weight_of(call.module)
        prefix = qualified.get(id(call.module), "")
        weight_name = next(n for n, p in call.module.named_parameters(recurse=False) if p is weight)
        scheme, family = recommend(activation)
        fans = fan_in_fan_out(weight.shape)  # type: ignore[union-attr]
        expected = _scheme(scheme).target_std(tuple(weight.shape), fans, activation)  # type: ignore[union-attr]
        norm = per_weight.get(id(call.module), {}).get("weight_norm")
        current = None if norm is None else norm / math.sqrt(weight.numel())  # type: ignore[union-attr]
        result.append(
            Recommendation(
                f"{prefix}.{weight_name}" if prefix else weight_name,
                activation[0],
                scheme,
                family,
                expected,
                current,
            )
        )
    return result


# ---------------------------------------------------------------------- public API
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _default_loss(model: nn.Module, targets: torch.Tensor) -> LossFn:
    if not targets.is_floating_point():
        return F.cross_entropy
    if getattr(model, "output", None) == "sigmoid":
        return F.binary_cross_entropy_with_logits
    return F.mse_loss


def _check_inputs(inputs: Any) -> tuple[torch.Tensor, ...]:
    args = (inputs,) if isinstance(inputs, torch.Tensor) else inputs
    if (
        not isinstance(args, tuple | list)
        or not args
        or not all(isinstance(a, torch.Tensor) for a in args)
    ):
        raise TypeError(
            f"inputs must be a tensor or a tuple of tensors (the model's positional arguments); "
            f"got {type(inputs).__name__}"
        )
    return tuple(args)


def _shapes(args: Sequence[torch.Tensor]) -> str:
    return ", ".join(str(tuple(a.shape)) for a in args)


def diagnose(
    model: nn.Module,
    inputs: torch.Tensor | Sequence[torch.Tensor],
    targets: torch.Tensor | None = None,
    loss_fn: LossFn | None = None,
    *,
    seed: int = 0,
    thresholds: Thresholds | None = None,
    label: str = "model",
    samples: int = 2048,
) -> Diagnosis:
    """Run one forward and backward pass of ``model`` on ``inputs`` and diagnose its init.

    ``inputs``: a tensor ``(batch, ...)`` or a tuple of the model's positional arguments.
    ``targets``/``loss_fn``: the loss is ``loss_fn(output, targets)`` (default: cross-entropy
    for integer targets, BCE-with-logits for an :class:`initlab.MLP` with sigmoid output,
    MSE otherwise); without targets, ``sum(P * y) / batch`` with a fixed ``P ~ N(0, 1)`` drawn
    from ``seed``. ``samples``: output values kept per layer for histograms (0: none).

    The model runs in training mode with dropout off (dropout would hide the init's effect);
    every module's training flag, the buffers (BatchNorm statistics), the parameters' ``.grad``
    and the global RNG are as before when it returns, and all hooks are removed.

    >>> import initlab, torch
    >>> net = initlab.mlp([64] * 20 + [1])
    >>> _ = initlab.init_model(net, "he_normal", seed=0)
    >>> x = torch.randn(128, 64, generator=torch.Generator().manual_seed(0))
    >>> initlab.diagnose(net, x).kinds
    ['healthy']
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"diagnose needs a torch.nn.Module; got {type(model).__name__}")
    args = _check_inputs(inputs)
    thresholds = Thresholds() if thresholds is None else thresholds
    if not isinstance(thresholds, Thresholds):
        raise TypeError(f"thresholds must be an initlab.Thresholds; got {thresholds!r}")
    if targets is not None and not isinstance(targets, torch.Tensor):
        raise TypeError(f"targets must be a tensor or None; got {type(targets).__name__}")
    samples = int(check_number("samples", samples, minimum=0, integer=True))

    probe = _Probe(model, thresholds, samples)
    flags = [(m, m.training) for m in model.modules()]
    buffers = [(b, b.clone()) for b in model.buffers()]
    devices = sorted({a.device.index or 0 for a in args if a.device.type == "cuda"})
    per_weight: dict[int, dict[str, float]] = {}
    scalars: dict[str, float] = {}
    try:
        model.train()
        for m in model.modules():
            if isinstance(m, _DROPOUT):
                m.eval()
        probe.attach()
        probe.arm()
        with torch.random.fork_rng(devices=devices), torch.enable_grad():
            try:
                output = model(*args)
            except (RuntimeError, ValueError, TypeError, IndexError) as error:
                first = str(error).strip().splitlines()[0] if str(error).strip() else ""
                raise ValueError(
                    f"the model rejected inputs of shape {_shapes(args)}: "
                    f"{type(error).__name__}: {first}"
                ) from error
            out = _first_tensor(output)
            if out is None or not out.is_floating_point():
                raise TypeError("the model's output has no floating-point tensor to diagnose")
            if targets is None:
                generator = torch.Generator(device=out.device).manual_seed(int(seed))
                projection = torch.randn(
                    out.shape, generator=generator, device=out.device, dtype=out.dtype
                )
                loss = (out * projection).sum() / (out.shape[0] if out.dim() else 1)
            else:
                fn = loss_fn or _default_loss(model, targets)
                try:
                    loss = fn(out, targets)
                except (RuntimeError, ValueError, TypeError, IndexError) as error:
                    raise ValueError(
                        f"the loss rejected output {tuple(out.shape)} and targets "
                        f"{tuple(targets.shape)}: {str(error).splitlines()[0]}"
                    ) from error
            probe.pending.append((loss.detach().reshape(1), [(scalars, "loss")]))
            probe.weight_stats(per_weight)
            wanted = [(key, w) for key, (_, w) in probe.weights.items() if w.requires_grad]
            if loss.requires_grad and wanted:
                grads = torch.autograd.grad(loss, [w for _, w in wanted], allow_unused=True)
                found = [
                    (key, g) for (key, _), g in zip(wanted, grads, strict=True) if g is not None
                ]
                if found:
                    _queue_norms(
                        probe.pending,
                        probe.repairs,
                        [g for _, g in found],
                        [(per_weight[key], "grad_weight") for key, _ in found],
                    )
            probe.gradient_stats()
    finally:
        probe.detach()
        probe.armed = False
        for m, flag in flags:
            m.training = flag
        with torch.no_grad():
            for b, saved in buffers:
                b.copy_(saved)
    _sync(probe.pending, probe.repairs)
    probe.repairs = []
    return _assemble(model, probe.calls, per_weight, thresholds, label, loss=scalars.get("loss"))


def _assemble(
    model: nn.Module,
    calls: Sequence[_Call],
    per_weight: dict[int, dict[str, float]],
    thresholds: Thresholds,
    label: str,
    *,
    loss: float | None = None,
    iteration: int | None = None,
) -> Diagnosis:
    rows = _build_rows(calls, per_weight)
    return Diagnosis(
        layers=rows,
        verdicts=_verdicts(rows, thresholds),
        recommendations=_recommendations(model, calls, per_weight),
        thresholds=thresholds,
        loss=loss,
        label=label,
        iteration=iteration,
    )


def fix(
    model: nn.Module,
    inputs: torch.Tensor | Sequence[torch.Tensor],
    targets: torch.Tensor | None = None,
    loss_fn: LossFn | None = None,
    *,
    seed: int = 0,
    thresholds: Thresholds | None = None,
) -> Fix:
    """Diagnose, re-initialize every weight layer with its :class:`Recommendation` (biases to
    zero, other parameters kept) through :func:`initlab.init_model`, and diagnose again.

    ``seed`` seeds both the re-initialization and the diagnoses' random projection.
    """
    before = diagnose(
        model, inputs, targets, loss_fn, seed=seed, thresholds=thresholds, label="before"
    )
    rules: dict[str, str] = {}
    for rec in before.recommendations:
        rules[rec.parameter] = rec.scheme
        module_name = rec.parameter.rpartition(".")[0]
        module = model.get_submodule(module_name) if module_name else model
        if isinstance(getattr(module, "bias", None), torch.Tensor):
            rules[f"{module_name}.bias" if module_name else "bias"] = "zeros"
    rules_with_keep: dict[str, str] = {**rules, "*": "keep"}
    report = init_model(model, "he_normal", rules=rules_with_keep, seed=seed)
    after = diagnose(
        model, inputs, targets, loss_fn, seed=seed, thresholds=thresholds, label="after"
    )
    return Fix(before, after, report, rules)
