"""Finite-difference gradient checks for whole models and for plain functions.

Back-propagation gives ``g = dL/dw``; the check compares it with central differences

    g_num[i] = (L(w + h e_i) - L(w - h e_i)) / (2 h),        h = eps

and reports the relative difference ``||g_num - g|| / (||g_num|| + ||g||)`` over all checked
entries and per parameter tensor, the worst entries with their indices, and a verdict:

* below ``thresholds[0]`` (default ``1e-7``): correct;
* above ``thresholds[1]`` (default ``1e-3``): almost surely a bug in the backward pass;
* in between: look closer (often a kink of ReLU/max-pool crossed by the step, see below).

Differences at the level of floating-point noise count as correct whatever their relative
size (a tensor whose gradient is ~0 would otherwise get a meaningless ratio): noise means
``|g_num - g| <= atol`` per entry (the norm over ``n`` entries ``<= atol * sqrt(n)``), where by
default ``atol = 16 * eps_float64 * max(|L|, 1) / h`` (about ``3.6e-8`` for ``h = 1e-7``), the
round-off of ``L`` divided by the step.

Choosing ``eps`` (= ``h``). The central difference has truncation error ``h^2 |L'''| / 6`` and
round-off error about ``eps_machine |L| / h``. Everything runs in float64 (``eps_machine =
2.2e-16``), so at the default ``h = 1e-7`` round-off is ~1e-9 and truncation ~1e-14 for losses
of order one: far below the ``1e-7`` threshold. The error is smallest near ``h ~
eps_machine^(1/3) ~ 6e-6`` for smooth losses, but a larger step crosses more kinks (a ReLU
whose input is within ``h |x|`` of 0), which makes single entries wrong by O(1); in float32
(``eps_machine = 1.2e-7``) no step works, which is why the check always uses a float64 copy.

Modes (``P`` parameters in ``T`` tensors):

* ``"full"``: every entry, ``2 P`` loss evaluations. Evaluations are batched with
  ``torch.func.vmap`` over many perturbed copies of one tensor (the layers before it are
  computed once); models that vmap cannot run (custom ``autograd.Function`` without vmap
  support, ``.item()`` in the loss, ...) fall back to a plain loop, with the same numbers.
* ``"sample"``: ``samples`` random entries per tensor (a seeded generator), ``2 T samples``
  evaluations.
* ``"fast"``: directional derivatives. For each tensor separately, and for all tensors at
  once, ``directions`` random sign vectors ``d`` (entries +-1, so each entry moves by ``h``
  as in the full check) compare ``(L(w + h d) - L(w - h d)) / (2 h)`` with ``g . d``: a
  backward pass wrong by a factor ``c`` in one tensor gives relative error ``|c - 1| / (c +
  1)`` in *every* direction of that tensor, whatever its size. Per tensor, the relative error
  ``|num - ana| / (|num| + |ana|)`` is aggregated over the directions by the *median*, so one
  direction that crosses a kink does not fail a correct model. ``2 (T + 1) directions``
  evaluations: the cost does not grow with the parameter count.

Kinks: the one-sided differences ``(L(w + h) - L(w)) / h`` and ``(L(w) - L(w - h)) / h`` come
for free. Where they disagree and keep disagreeing at ``h / 10``, the loss has a kink *at* the
point (a ReLU input exactly 0), the derivative does not exist, and the analytic value is
compared with the range between the two (see :func:`_at_kinks`). Kink directions are left
out of the fast-mode median; a tensor with mostly kink directions is checked entry by entry.

Stochastic layers and state: the check works on a float64 deep copy of the model, so the
model, its gradients and its buffers are never modified. Dropout (and RReLU) in training mode
makes the loss random, so the check refuses it unless ``dropout="off"``, which puts those
layers in eval mode *in the copy*. Batch norm in training mode is checked as it trains, with
the statistics of the batch; its running statistics are not updated (not even in the copy).
A loss that still changes between two evaluations at the same point is refused.
"""

from __future__ import annotations

import copy
import inspect
import math
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from initlab._core.rng import make_generator
from initlab._core.table import format_table, format_value
from initlab._core.validation import check_choice, check_number, unknown_name_error

Mode = Literal["full", "sample", "fast"]
MODES = ("full", "sample", "fast")
VERDICTS = ("correct", "look closer", "bug")
LOSSES = ("bce", "cross_entropy", "mse")

# Largest number of perturbed parameter elements held at once by one vmap call (float64:
# 8 bytes each, so 8 MiB: cache-friendly), and the most perturbed settings per call.
_CHUNK_ELEMENTS = 1 << 20
_CHUNK_SETTINGS = 256


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class TensorCheck:
    """The check of one parameter tensor (or input of a function).

    ``checked``: entries (full/sample) or directions (fast) compared. ``rel``: relative
    difference (norm ratio in full/sample, median over directions in fast). ``max_diff``: the
    largest ``|g_num - g|`` over the checked entries (directional derivatives in fast).
    ``noise``: the difference is at the level of round-off (then the verdict is ``correct``).
    ``kinks``: entries (directions) at a kink, compared with the one-sided range.
    """

    name: str
    shape: tuple[int, ...]
    checked: int
    grad_norm: float
    rel: float
    max_diff: float
    noise: bool
    verdict: str
    kinks: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "kinks": self.kinks,
            "name": self.name,
            "shape": list(self.shape),
            "checked": self.checked,
            "grad_norm": self.grad_norm,
            "rel": self.rel,
            "max_diff": self.max_diff,
            "noise": self.noise,
            "verdict": self.verdict,
        }


@dataclass(frozen=True)
class Entry:
    """One compared derivative: an entry ``index`` of ``tensor`` (full/sample) or the
    derivative along random direction number ``direction`` (fast). ``numeric``: the value
    compared with (at a ``kink``, the point of the one-sided range closest to ``analytic``)."""

    tensor: str
    index: tuple[int, ...] | None
    direction: int | None
    analytic: float
    numeric: float
    kink: bool = False

    @property
    def diff(self) -> float:
        return abs(self.numeric - self.analytic)

    @property
    def rel(self) -> float:
        scale = abs(self.numeric) + abs(self.analytic)
        return self.diff / scale if scale > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "tensor": self.tensor,
            "index": None if self.index is None else list(self.index),
            "direction": self.direction,
            "analytic": self.analytic,
            "numeric": self.numeric,
            "kink": self.kink,
            "diff": self.diff,
            "rel": self.rel,
        }


@dataclass(frozen=True)
class GradCheck:
    """The result of :func:`gradcheck` / :func:`gradcheck_function`.

    ``rel``: overall relative difference ``||g_num - g|| / (||g_num|| + ||g||)`` (fast mode:
    median over the joint directions). ``verdict``: the worst of the overall and per-tensor
    verdicts. ``passed``: no ``bug`` verdict (``look closer`` passes; use ``verdict ==
    "correct"`` to be strict). ``worst``: the entries (directions) with the largest
    ``|g_num - g|``. ``evaluations``: loss evaluations used.
    """

    mode: str
    eps: float
    loss: float
    rel: float
    overall_noise: bool
    verdict: str
    tensors: list[TensorCheck]
    worst: list[Entry]
    thresholds: tuple[float, float]
    atol: float
    evaluations: int
    seconds: float
    vectorized: bool
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.verdict != "bug"

    @property
    def worst_tensor(self) -> str:
        """The tensor with the largest relative difference among those above noise."""
        above = [t for t in self.tensors if not t.noise] or self.tensors
        return max(above, key=lambda t: t.rel).name

    def __getitem__(self, name: str) -> TensorCheck:
        for t in self.tensors:
            if t.name == name:
                return t
        raise unknown_name_error("tensor", name, [t.name for t in self.tensors])

    @property
    def summary(self) -> str:
        low, high = self.thresholds
        if self.verdict == "correct":
            return (
                f"correct: relative differences below {format_value(low)} (or at round-off "
                f"level) everywhere"
            )
        bad = [t for t in self.tensors if t.verdict == self.verdict]
        names = ", ".join(t.name for t in bad) or "overall"
        worst = max([t.rel for t in bad] + [self.rel if not bad else 0.0])
        if self.verdict == "bug":
            return (
                f"bug: relative difference {format_value(worst)} > {format_value(high)} in "
                f"{names}; the back-propagated gradient there is almost surely wrong"
            )
        return (
            f"look closer: relative difference {format_value(worst)} between "
            f"{format_value(low)} and {format_value(high)} in {names}; a kink (ReLU, max) "
            f"crossed by the step, or too large an eps, gives this too: retry with another "
            f"eps or seed"
        )

    def __str__(self) -> str:
        unit = "directions" if self.mode == "fast" else "entries"
        checked = sum(t.checked for t in self.tensors)
        head = (
            f"gradcheck ({self.mode}, eps={format_value(self.eps)}): {checked} {unit} in "
            f"{len(self.tensors)} tensors, {self.evaluations} loss evaluations, "
            f"{self.seconds:.3g} s{' (vmap)' if self.vectorized else ''}; loss {self.loss:.6g}"
        )
        low = self.thresholds[0]

        def shown(verdict: str, rel: float, noise: bool) -> str:
            return "correct (round-off)" if noise and not rel < low else verdict

        rows: list[tuple[Any, ...]] = [
            (t.name, t.shape, t.checked, t.kinks, t.grad_norm, t.rel, t.max_diff,
             shown(t.verdict, t.rel, t.noise))
            for t in self.tensors
        ]  # fmt: skip
        overall = _verdict(self.rel, self.overall_noise, self.thresholds)
        rows.append(("overall", "", "", "", "", self.rel, "",
                     shown(overall, self.rel, self.overall_noise)))  # fmt: skip
        table = format_table(
            ["tensor", "shape", "checked", "kinks", "|grad|", "rel diff", "max |diff|", "verdict"],
            rows,
        )
        where = "direction" if self.mode == "fast" else "index"
        worst = format_table(
            ["tensor", where, "analytic", "numeric", "|diff|", "rel", "kink"],
            [
                (e.tensor, e.direction if e.index is None else e.index, e.analytic, e.numeric,
                 e.diff, e.rel, "yes" if e.kink else "")
                for e in self.worst
            ],
        )  # fmt: skip
        parts = [head, table, "", f"worst {unit}:", worst, ""]
        parts += [f"note: {n}" for n in self.notes]
        parts.append(f"verdict: {self.summary}")
        return "\n".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "eps": self.eps,
            "loss": self.loss,
            "rel": self.rel,
            "overall_noise": self.overall_noise,
            "verdict": self.verdict,
            "passed": self.passed,
            "worst_tensor": self.worst_tensor,
            "summary": self.summary,
            "tensors": [t.to_dict() for t in self.tensors],
            "worst": [e.to_dict() for e in self.worst],
            "thresholds": list(self.thresholds),
            "atol": self.atol,
            "evaluations": self.evaluations,
            "seconds": self.seconds,
            "vectorized": self.vectorized,
            "notes": list(self.notes),
        }


# --------------------------------------------------------------------------- losses


class L2Loss(nn.Module):
    """``loss_fn(outputs, targets) + lam / (2 m) * sum_l ||W_l||_F^2`` (the course's L2 cost).

    ``m`` is the number of examples (``outputs.shape[0]``); the sum runs over the *weights*
    only, i.e. parameters with two or more dimensions (Linear/Conv weights), not biases or
    normalization scales. The gradient adds ``lam / m * W`` to each weight's gradient.
    Called with ``params`` (a dict of tensors by parameter name, as :func:`gradcheck` does
    for its perturbed float64 copies) the penalty is computed from those, else from the
    model's current parameters.
    """

    def __init__(self, loss_fn: Callable[..., torch.Tensor], model: nn.Module, lam: float):
        super().__init__()
        if not callable(loss_fn):
            raise TypeError(f"loss_fn must be callable; got {type(loss_fn).__name__}")
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
        self.loss_fn = resolve_loss(loss_fn)
        self.lam = float(check_number("lam", lam, minimum=0.0))
        self.weight_names = tuple(n for n, p in model.named_parameters() if p.dim() >= 2)
        self._model = [model]  # a list, so the model is not registered as a submodule

    def forward(
        self,
        outputs: torch.Tensor,
        targets: Any,
        params: Mapping[str, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        base = _call_loss(self.loss_fn, outputs, targets, params)
        if params is None:
            params = dict(self._model[0].named_parameters())
        m = outputs.shape[0] if outputs.dim() > 0 else 1
        penalty = sum(params[n].pow(2).sum() for n in self.weight_names)
        return base + self.lam / (2 * m) * penalty

    def extra_repr(self) -> str:
        return f"lam={self.lam}, weights={list(self.weight_names)}"


def with_l2(loss_fn: Callable[..., torch.Tensor] | str, model: nn.Module, lam: float) -> L2Loss:
    """``loss_fn`` plus the course's L2 term ``lam / (2 m) * sum ||W||^2`` over ``model``'s
    weights (parameters with >= 2 dims; biases are not penalized); ``m`` = batch size.

    ``loss_fn``: a callable ``(outputs, targets) -> scalar`` or one of ``"bce"`` (sigmoid
    cross-entropy on logits), ``"cross_entropy"``, ``"mse"``.

    >>> import torch
    >>> net = torch.nn.Linear(3, 1)
    >>> loss = with_l2("mse", net, lam=0.1)
    >>> x, y = torch.ones(4, 3), torch.zeros(4, 1)
    >>> bool(torch.isclose(loss(net(x), y), torch.nn.functional.mse_loss(net(x), y)
    ...      + 0.1 / 8 * net.weight.pow(2).sum()))
    True
    """
    return L2Loss(resolve_loss(loss_fn), model, lam)


def _bce(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(outputs, _like(targets, outputs))


def _mse(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(outputs, _like(targets, outputs))


def _cross_entropy(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    if targets.is_floating_point() and targets.shape != outputs.shape:
        targets = targets.reshape(-1).long()
    return F.cross_entropy(outputs, targets)


def _like(targets: torch.Tensor, outputs: torch.Tensor) -> torch.Tensor:
    targets = torch.as_tensor(targets).to(outputs.dtype)
    if targets.shape != outputs.shape and targets.numel() == outputs.numel():
        targets = targets.reshape(outputs.shape)
    return targets


_LOSS_FUNCTIONS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "bce": _bce,
    "cross_entropy": _cross_entropy,
    "mse": _mse,
}


def resolve_loss(loss_fn: Callable[..., torch.Tensor] | str) -> Callable[..., torch.Tensor]:
    """A loss callable from a callable or a name (``bce`` on logits, ``cross_entropy``, ``mse``)."""
    if isinstance(loss_fn, str):
        return _LOSS_FUNCTIONS[check_choice("loss_fn", loss_fn, LOSSES)]
    if not callable(loss_fn):
        raise TypeError(
            f"loss_fn must be a callable (outputs, targets) -> scalar or one of "
            f"{', '.join(LOSSES)}; got {type(loss_fn).__name__}"
        )
    return loss_fn


def _takes_params(loss_fn: Callable[..., Any]) -> bool:
    try:
        signature = inspect.signature(loss_fn)
    except (TypeError, ValueError):
        return False
    return "params" in signature.parameters


def _call_loss(
    loss_fn: Callable[..., torch.Tensor],
    outputs: Any,
    targets: Any,
    params: Mapping[str, torch.Tensor] | None,
) -> torch.Tensor:
    if params is not None and _takes_params(loss_fn):
        return loss_fn(outputs, targets, params=params)
    return loss_fn(outputs, targets)


# --------------------------------------------------------------------------- planted bugs


class _ScaleGrad(torch.autograd.Function):
    """Identity forward; backward multiplies the incoming gradient by ``factor`` (a bug)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, factor: float) -> torch.Tensor:
        ctx.factor = factor
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad * ctx.factor, None


def plant_bug(model: nn.Module, parameter: str, factor: float = -1.0) -> nn.Module:
    """A deep copy of ``model`` whose backward pass is wrong for one parameter, for demos.

    The layer owning ``parameter`` (a ``Linear`` or ``Conv1d/2d/3d`` weight or bias, e.g.
    ``"linear2.bias"``) computes the same forward pass, but routes that parameter through a
    custom ``autograd.Function`` whose backward multiplies its gradient by ``factor``:
    ``-1`` is a wrong sign, ``2`` a forgotten ``1/2``. :func:`gradcheck` should name it.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    names = [n for n, _ in model.named_parameters()]
    if parameter not in names:
        raise unknown_name_error("parameter", parameter, names)
    factor = float(check_number("factor", factor))
    layer_name, _, attr = parameter.rpartition(".")
    buggy = copy.deepcopy(model)
    layer = buggy.get_submodule(layer_name)
    # Conv1d/2d/3d, not _ConvNd: transposed convolutions have no _conv_forward to call
    if not isinstance(layer, nn.Linear | nn.Conv1d | nn.Conv2d | nn.Conv3d) or attr not in (
        "weight",
        "bias",
    ):
        raise ValueError(
            f"plant_bug works on the weight or bias of a Linear or Conv layer; "
            f"{parameter!r} belongs to a {type(layer).__name__}"
        )
    base = type(layer)

    def forward(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
        weight, bias = self.weight, self.bias
        if attr == "weight":
            weight = _ScaleGrad.apply(weight, factor)
        else:
            bias = _ScaleGrad.apply(bias, factor)
        if isinstance(self, nn.Linear):
            return F.linear(x, weight, bias)
        return self._conv_forward(x, weight, bias)  # type: ignore[operator]

    layer.__class__ = type(f"Buggy{base.__name__}", (base,), {"forward": forward})
    return buggy


# --------------------------------------------------------------------------- engine


class _Objective:
    """A scalar function of named tensors, evaluated at many perturbed settings at once."""

    def __init__(
        self,
        fn: Callable[[dict[str, torch.Tensor]], torch.Tensor],
        base: dict[str, torch.Tensor],
        vectorize: bool,
    ) -> None:
        self.fn = fn
        self.base = base
        self.vectorized: bool | None = None if vectorize else False
        self.evaluations = 0

    def _one(self, changes: Mapping[str, torch.Tensor]) -> torch.Tensor:
        value = self.fn({**self.base, **changes})
        if not isinstance(value, torch.Tensor) or value.numel() != 1:
            shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value)
            raise ValueError(f"the loss must be a scalar tensor; got {shape}")
        return value.reshape(())

    def values(self, batched: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """``L`` at ``B`` settings: ``batched[name]`` has shape ``(B, *shape)``; the other
        tensors stay at ``base``. Returns shape ``(B,)``."""
        count = next(iter(batched.values())).shape[0]
        per_setting = sum(v[0].numel() for v in batched.values())
        step = max(1, min(_CHUNK_SETTINGS, _CHUNK_ELEMENTS // max(per_setting, 1)))
        out = []
        with torch.no_grad():
            for start in range(0, count, step):
                chunk = {k: v[start : start + step] for k, v in batched.items()}
                out.append(self._chunk(chunk))
        self.evaluations += count
        return torch.cat(out)

    def _chunk(self, chunk: Mapping[str, torch.Tensor]) -> torch.Tensor:
        if self.vectorized is not False:
            try:
                with warnings.catch_warnings():
                    # vmap runs ops without a batching rule in a loop, and says so once per op
                    warnings.filterwarnings("ignore", message="There is a performance drop")
                    values = torch.func.vmap(self._one)(dict(chunk))
            except Exception:
                if self.vectorized:
                    raise
                self.vectorized = False
            else:
                self.vectorized = True
                return values
        count = next(iter(chunk.values())).shape[0]
        return torch.stack([self._one({k: v[i] for k, v in chunk.items()}) for i in range(count)])


def _run_check(
    fn: Callable[[dict[str, torch.Tensor]], torch.Tensor],
    base: dict[str, torch.Tensor],
    *,
    mode: str,
    eps: float,
    samples: int,
    directions: int,
    generator: torch.Generator,
    thresholds: tuple[float, float],
    atol: float | None,
    worst: int,
    vectorize: bool,
    notes: list[str],
    start: float,
) -> GradCheck:
    leaves = {k: v.detach().clone().requires_grad_(True) for k, v in base.items()}
    with torch.enable_grad():
        loss = fn(leaves)
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            shape = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
            raise ValueError(f"the loss must be a scalar tensor; got {shape}")
        if not loss.requires_grad:
            raise ValueError("the loss does not depend on any checked tensor (no gradient)")
        grads = torch.autograd.grad(loss.reshape(()), list(leaves.values()), allow_unused=True)
    grad = {
        k: (torch.zeros_like(v) if g is None else g.detach())
        for (k, v), g in zip(base.items(), grads, strict=True)
    }
    loss_value = float(loss.detach())
    objective = _Objective(fn, base, vectorize)
    again = objective.values({k: v.unsqueeze(0) for k, v in list(base.items())[:1]})
    if not math.isfinite(loss_value) or not torch.isfinite(again).all():
        raise ValueError(f"the loss is not finite ({loss_value}); check the inputs and model")
    if float(again[0]) != loss_value and abs(float(again[0]) - loss_value) > 1e-9 * max(
        1.0, abs(loss_value)
    ):
        raise ValueError(
            f"the loss is not deterministic: {loss_value!r} then {float(again[0])!r} at the same "
            "parameters (random layers such as functional dropout?); a gradient check needs "
            "a deterministic loss"
        )
    if atol is None:
        atol = 16 * torch.finfo(torch.float64).eps * max(abs(loss_value), 1.0) / eps

    zero = float(again[0])
    rows: list[TensorCheck] = []
    entries: list[Entry] = []
    all_num: list[torch.Tensor] = []
    all_ana: list[torch.Tensor] = []
    fallbacks: list[str] = []
    for name, value in base.items():
        index, how = None, mode
        if mode == "fast":
            num, kinks, ana = _fast(objective, {name: value}, {name: grad[name]}, eps,
                                    directions, generator, zero, atol)  # fmt: skip
            if 2 * int(kinks.sum()) > directions:
                # Directional derivatives across kinks of several entries that move in
                # opposite directions have no reference value: check single entries.
                how = "sample"
                fallbacks.append(name)
        if how != "fast":
            flat = value.reshape(-1)
            count = samples if mode == "sample" else max(samples, directions)
            if mode == "full" or count >= flat.numel():
                index = torch.arange(flat.numel())
            else:
                index = torch.randperm(flat.numel(), generator=generator)[:count].sort().values
            sides = _entries(objective, name, value, index, eps, zero)
            ana = grad[name].reshape(-1)[index]

            def refine(mask: torch.Tensor, name=name, value=value, index=index) -> Any:
                return _entries(objective, name, value, index[mask.cpu()], eps / 10, zero)[1:]

            num, kinks = _at_kinks(ana, *sides, atol, refine)
            if mode != "fast":
                all_num.append(num)
                all_ana.append(ana)
        keep = ~kinks if how == "fast" else torch.ones_like(kinks)
        rel, noise = _compare(num[keep], ana[keep], atol, how)
        diff = (num - ana).abs()
        rows.append(TensorCheck(
            name=name, shape=tuple(value.shape), checked=num.numel(),
            grad_norm=float(grad[name].norm()), rel=rel, max_diff=float(diff.max()),
            noise=noise, verdict=_verdict(rel, noise, thresholds), kinks=int(kinks.sum()),
        ))  # fmt: skip
        for i in diff.argsort(descending=True)[:worst].tolist():
            where = None if index is None else _unravel(int(index[i]), tuple(value.shape))
            entries.append(Entry(name, where, i if index is None else None,
                                 float(ana[i]), float(num[i]), bool(kinks[i])))  # fmt: skip
    if mode == "fast":
        num, kinks, ana = _fast(objective, base, grad, eps, directions, generator, zero, atol)
        for i in (num - ana).abs().argsort(descending=True)[:worst].tolist():
            entries.append(Entry("(all)", None, i, float(ana[i]), float(num[i]), bool(kinks[i])))
        if bool(kinks.all()):
            notes = [*notes, "every joint direction crosses a kink: the per-tensor checks "
                     "decide the verdict"]  # fmt: skip
        else:
            num, ana = num[~kinks], ana[~kinks]
    else:
        num, ana = torch.cat(all_num), torch.cat(all_ana)
    if fallbacks:
        notes = [*notes, f"{', '.join(fallbacks)}: most directions cross kinks, so "
                 f"{max(samples, directions)} single entries were checked instead"]  # fmt: skip
    rel, noise = _compare(num, ana, atol, mode)
    noise = noise or (mode == "fast" and bool(kinks.all()))
    verdicts = [_verdict(rel, noise, thresholds)] + [r.verdict for r in rows]
    verdict = max(verdicts, key=VERDICTS.index)
    entries.sort(key=lambda e: e.diff, reverse=True)
    kink_count = sum(r.kinks for r in rows)
    if kink_count:
        notes = [*notes, f"{kink_count} compared derivatives sit at kinks (one-sided "
                 "differences disagree): checked against the range between the one-sided "
                 "derivatives"]  # fmt: skip
    return GradCheck(
        mode=mode, eps=eps, loss=loss_value, rel=rel, overall_noise=noise, verdict=verdict,
        tensors=rows, worst=entries[:worst], thresholds=thresholds, atol=atol,
        evaluations=objective.evaluations, seconds=time.perf_counter() - start,
        vectorized=bool(objective.vectorized), notes=notes,
    )  # fmt: skip


def _at_kinks(
    ana: torch.Tensor,
    central: torch.Tensor,
    plus: torch.Tensor,
    minus: torch.Tensor,
    atol: float,
    refine: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
) -> tuple[torch.Tensor, torch.Tensor]:
    """The numeric derivatives to compare with, and which of them sit at a kink.

    ``plus``/``minus`` are the one-sided differences ``(L(w + h) - L(w)) / h`` and ``(L(w) -
    L(w - h)) / h``. For a smooth loss they differ by ``h |L''|``; at a kink (a ReLU input
    exactly 0, e.g. a zero bias after a layer that is all zeros for some example) by the
    jump of the slope, whatever ``h``. Where ``|plus - minus| > 1e-3 (|plus| + |minus|) +
    atol``, ``refine`` recomputes both at ``h / 10``: if the gap shrinks by less than half
    (it would shrink ten-fold if it came from curvature) the derivative does not exist there,
    any value between the two one-sided ones is a valid choice (PyTorch takes ``relu'(0) =
    0``), and the analytic value is compared with that range (the numeric value becomes the
    point of the range closest to it). Everywhere else: the central difference at ``h``.
    """
    gap = (plus - minus).abs()
    kinks = gap > 1e-3 * (plus.abs() + minus.abs()) + atol
    if bool(kinks.any()):
        plus2, minus2 = refine(kinks)
        still = (plus2 - minus2).abs() > 0.5 * gap[kinks]
        kinks = kinks.clone()
        kinks[kinks.clone()] = still
    low, high = torch.minimum(plus, minus), torch.maximum(plus, minus)
    return torch.where(kinks, torch.clamp(ana, low, high), central), kinks


def _entries(
    objective: _Objective,
    name: str,
    value: torch.Tensor,
    index: torch.Tensor,
    eps: float,
    zero: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Central differences ``(L(w + h e_i) - L(w - h e_i)) / (w_i^+ - w_i^-)`` for ``index``,
    and the one-sided ones ``(L^+ - L) / (w_i^+ - w_i)``, ``(L - L^-) / (w_i - w_i^-)``
    (``zero`` = ``L(w)``). Denominators are the steps actually taken after rounding."""
    flat = value.reshape(-1)
    count = index.numel()
    index = index.to(flat.device)
    rows = torch.arange(count, device=flat.device)
    here = flat[index]
    plus, minus = here + eps, here - eps
    # Build the perturbed settings a slice at a time, so memory stays bounded.
    step = max(1, _CHUNK_ELEMENTS // (2 * max(flat.numel(), 1)))
    up = torch.empty(count, dtype=flat.dtype, device=flat.device)
    down = torch.empty(count, dtype=flat.dtype, device=flat.device)
    for start in range(0, count, step):
        sl = slice(start, start + step)
        b = rows[sl].numel()
        settings = flat.repeat(2 * b, 1)
        settings[rows[:b], index[sl]] = plus[sl]
        settings[rows[:b] + b, index[sl]] = minus[sl]
        values = objective.values({name: settings.reshape(2 * b, *value.shape)})
        up[sl], down[sl] = values[:b], values[b:]
    central = (up - down) / (plus - minus)
    return central, (up - zero) / (plus - here), (zero - down) / (here - minus)


def _signs(
    base: Mapping[str, torch.Tensor], directions: int, generator: torch.Generator
) -> dict[str, torch.Tensor]:
    """``directions`` random sign vectors (entries +-1) per tensor."""
    return {
        name: (2 * torch.randint(0, 2, (directions, *v.shape), generator=generator) - 1).to(v)
        for name, v in base.items()
    }


def _directional(
    objective: _Objective,
    base: Mapping[str, torch.Tensor],
    grad: Mapping[str, torch.Tensor],
    eps: float,
    signs: Mapping[str, torch.Tensor],
    zero: float,
) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Derivatives along the sign vectors ``d``: analytic ``g . d_h`` with ``d_h = (w^+ -
    w^-) / (2 h)`` (the step after rounding), and numeric central ``(L(w + h d) - L(w - h
    d)) / (2 h)`` and one-sided ``(L^+ - L) / h``, ``(L - L^-) / h``."""
    count = next(iter(signs.values())).shape[0]
    plus = {k: base[k] + eps * d for k, d in signs.items()}
    minus = {k: base[k] - eps * d for k, d in signs.items()}
    analytic = torch.zeros(count, dtype=torch.float64, device=next(iter(base.values())).device)
    for k in signs:
        step = (plus[k] - minus[k]) / (2 * eps)
        analytic += (step * grad[k]).reshape(count, -1).sum(1).to(torch.float64)
    values = objective.values({k: torch.cat([plus[k], minus[k]]) for k in signs}).double()
    up, down = values[:count], values[count:]
    return analytic, ((up - down) / (2 * eps), (up - zero) / eps, (zero - down) / eps)


def _fast(
    objective: _Objective,
    base: Mapping[str, torch.Tensor],
    grad: Mapping[str, torch.Tensor],
    eps: float,
    directions: int,
    generator: torch.Generator,
    zero: float,
    atol: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Numeric derivatives, kink flags and analytic derivatives along random directions."""
    signs = _signs(base, directions, generator)
    ana, sides = _directional(objective, base, grad, eps, signs, zero)

    def refine(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        some = {k: d[mask] for k, d in signs.items()}
        _, (_, plus, minus) = _directional(objective, base, grad, eps / 10, some, zero)
        return plus, minus

    num, kinks = _at_kinks(ana, *sides, atol, refine)
    return num, kinks, ana


def _compare(num: torch.Tensor, ana: torch.Tensor, atol: float, mode: str) -> tuple[float, bool]:
    """Relative difference and whether it is at round-off level (see the module docstring)."""
    diff = num - ana
    if mode == "fast":
        scale = num.abs() + ana.abs()
        per = torch.where(scale > 0, diff.abs() / scale.clamp_min(1e-300), 0.0)
        return float(per.median()), bool(diff.abs().median() <= atol)
    scale = float(num.norm() + ana.norm())
    rel = float(diff.norm()) / scale if scale > 0 else 0.0
    return rel, bool(diff.norm() <= atol * math.sqrt(diff.numel()))


def _verdict(rel: float, noise: bool, thresholds: tuple[float, float]) -> str:
    if noise or rel < thresholds[0]:
        return "correct"
    return "bug" if rel > thresholds[1] or math.isnan(rel) else "look closer"


def _unravel(i: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    index = []
    for size in reversed(shape):
        index.append(i % size)
        i //= size
    return tuple(reversed(index))


# --------------------------------------------------------------------------- public API


def _check_options(
    mode: str,
    eps: float,
    samples: int,
    directions: int,
    thresholds: Sequence[float],
    atol: float | None,
    worst: int,
) -> tuple[float, float]:
    check_choice("mode", mode, MODES)
    check_number("eps", eps, minimum=0.0, strict_minimum=True, maximum=1.0)
    check_number("samples", samples, minimum=1, integer=True)
    check_number("directions", directions, minimum=1, integer=True)
    check_number("worst", worst, minimum=0, integer=True)
    if atol is not None:
        check_number("atol", atol, minimum=0.0)
    if isinstance(thresholds, str) or len(thresholds) != 2:
        raise ValueError(f"thresholds must be two numbers (correct, bug); got {thresholds!r}")
    low = check_number("thresholds[0]", thresholds[0], minimum=0.0, strict_minimum=True)
    high = check_number("thresholds[1]", thresholds[1], minimum=0.0, strict_minimum=True)
    if not low <= high:
        raise ValueError(f"thresholds must satisfy correct <= bug; got ({low}, {high})")
    return float(low), float(high)


def _to64(value: Any) -> Any:
    if isinstance(value, torch.Tensor) and value.is_floating_point():
        return value.detach().to(torch.float64)
    if isinstance(value, tuple | list):
        return type(value)(_to64(v) for v in value)
    return value


def gradcheck(
    model: nn.Module,
    loss_fn: Callable[..., torch.Tensor] | str,
    inputs: Any,
    targets: Any = None,
    *,
    eps: float = 1e-7,
    mode: Mode = "full",
    samples: int = 10,
    directions: int = 7,
    seed: int | torch.Generator | None = 0,
    dropout: Literal["refuse", "off"] = "refuse",
    thresholds: Sequence[float] = (1e-7, 1e-3),
    atol: float | None = None,
    worst: int = 5,
    vectorize: bool = True,
) -> GradCheck:
    """Compare ``model``'s back-propagated gradients with central differences.

    The loss is ``loss_fn(model(*inputs), targets)``, a scalar; ``loss_fn`` may also be
    ``"bce"`` (sigmoid cross-entropy on logits, the course's cost), ``"cross_entropy"`` or
    ``"mse"``, and a ``loss_fn`` with a ``params`` keyword receives the (perturbed, float64)
    parameters by name, so parameter terms are checked too (see :func:`with_l2`).
    ``inputs``: a tensor or a tuple of positional inputs. Every trainable parameter
    (``requires_grad``) of shape ``s`` is checked; the model and the data are copied to
    float64 first and the model is never modified.

    ``mode``: ``"full"`` (every entry, ``2 P`` evaluations), ``"sample"`` (``samples`` random
    entries per tensor) or ``"fast"`` (``directions`` random directional derivatives per
    tensor and overall; cost independent of ``P``). ``eps``: the step ``h``. ``seed``: for
    the random entries/directions. ``dropout``: ``"refuse"`` (a ``ValueError`` if dropout is
    active) or ``"off"`` (check the network with dropout switched off). ``thresholds``:
    ``(correct, bug)`` for the relative difference. ``atol``: round-off level per entry
    (default ``16 eps_64 max(|L|, 1) / h``). ``worst``: how many worst entries to keep.
    ``vectorize``: batch evaluations with ``torch.func.vmap`` (falls back to a loop when the
    model does not support it). The module docstring has the math.

    >>> import torch, initlab
    >>> net = initlab.mlp([2, 4, 1])
    >>> _ = initlab.init_model(net, seed=0)
    >>> x, y = torch.randn(8, 2, generator=torch.Generator().manual_seed(0)), torch.ones(8, 1)
    >>> initlab.gradcheck(net, "bce", x, y).verdict
    'correct'
    """
    start = time.perf_counter()
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    loss_fn = resolve_loss(loss_fn)
    check_choice("dropout", dropout, ("refuse", "off"))
    low_high = _check_options(mode, eps, samples, directions, thresholds, atol, worst)
    if not isinstance(inputs, tuple | list):
        inputs = (inputs,)
    if not any(isinstance(v, torch.Tensor) for v in inputs):
        raise TypeError(f"inputs must be a tensor or a tuple of tensors; got {inputs!r}")

    notes: list[str] = []
    work = copy.deepcopy(model)
    stochastic = [
        name
        for name, m in work.named_modules()
        if m.training
        and ((isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0) or isinstance(m, nn.RReLU))
    ]
    if stochastic and dropout == "refuse":
        raise ValueError(
            f"dropout is active (training mode) in {', '.join(stochastic)}: it makes the loss "
            "random and a gradient check meaningless; pass dropout='off' to check the network "
            "with dropout switched off (or call model.eval())"
        )
    for name in stochastic:
        work.get_submodule(name).eval()
    if stochastic:
        notes.append(f"dropout switched off for the check in {', '.join(stochastic)}")
    batch_norms = [
        name
        for name, m in work.named_modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training and m.track_running_stats
    ]
    for name in batch_norms:
        work.get_submodule(name).track_running_stats = False
    if batch_norms:
        notes.append(
            f"batch norm ({', '.join(batch_norms)}) checked in training mode with batch "
            "statistics; running statistics not updated"
        )
    work = work.to(torch.float64)
    for p in work.parameters():
        p.grad = None
    base = {n: p.detach() for n, p in work.named_parameters() if p.requires_grad}
    if not base:
        raise ValueError("the model has no trainable parameters (requires_grad) to check")
    inputs64, targets64 = _to64(tuple(inputs)), _to64(targets)
    takes_params = _takes_params(loss_fn)

    def objective(params: dict[str, torch.Tensor]) -> torch.Tensor:
        outputs = torch.func.functional_call(work, params, inputs64)
        if takes_params:
            return loss_fn(outputs, targets64, params=params)
        return loss_fn(outputs, targets64)

    generator = make_generator(seed)
    devices = sorted({v.device.index or 0 for v in base.values() if v.device.type == "cuda"})
    with torch.random.fork_rng(devices=devices):
        return _run_check(objective, base, mode=mode, eps=float(eps), samples=int(samples),
                          directions=int(directions), generator=generator,
                          thresholds=low_high, atol=atol, worst=int(worst),
                          vectorize=vectorize, notes=notes, start=start)  # fmt: skip


def gradcheck_function(
    fn: Callable[..., Any],
    *inputs: Any,
    eps: float = 1e-7,
    mode: Mode = "full",
    samples: int = 10,
    directions: int = 7,
    seed: int | torch.Generator | None = 0,
    thresholds: Sequence[float] = (1e-7, 1e-3),
    atol: float | None = None,
    worst: int = 5,
    vectorize: bool = True,
) -> GradCheck:
    """Check the backward pass of a plain function or a custom ``autograd.Function``.

    ``fn(*inputs)`` returns a tensor or a tuple of tensors. The checked inputs are the
    floating-point tensors with ``requires_grad`` (all floating-point tensors when none has
    it), copied to float64 and named ``input0``, ``input1``, ... by position. A non-scalar
    output ``y`` is reduced to ``L = sum(r * y)`` with a fixed random ``r ~ N(0, 1)`` (seeded),
    so the check compares the vector-Jacobian product ``J^T r`` that backward computes; a
    wrong backward passes only if its error is orthogonal to ``r`` (probability zero).
    Other options as in :func:`gradcheck`.

    >>> import torch
    >>> x = torch.randn(3, 4, generator=torch.Generator().manual_seed(0))
    >>> gradcheck_function(torch.tanh, x).verdict
    'correct'
    """
    start = time.perf_counter()
    if not callable(fn):
        raise TypeError(f"fn must be callable; got {type(fn).__name__}")
    low_high = _check_options(mode, eps, samples, directions, thresholds, atol, worst)
    tensors = [i for i, v in enumerate(inputs) if isinstance(v, torch.Tensor)
               and v.is_floating_point()]  # fmt: skip
    checked = [i for i in tensors if inputs[i].requires_grad] or tensors
    if not checked:
        raise TypeError("gradcheck_function needs at least one floating-point tensor input")
    args = [_to64(v) if isinstance(v, torch.Tensor) else v for v in inputs]
    base = {f"input{i}": args[i] for i in checked}
    generator = make_generator(seed)
    projections: list[torch.Tensor | None] = []

    def objective(values: dict[str, torch.Tensor]) -> torch.Tensor:
        call = list(args)
        for i in checked:
            call[i] = values[f"input{i}"]
        out = fn(*call)
        outs = out if isinstance(out, tuple | list) else (out,)
        if not projections:  # draw r once, from the first (unbatched) call's shapes
            for o in outs:
                floating = isinstance(o, torch.Tensor) and o.is_floating_point()
                r = (
                    torch.randn(o.shape, generator=generator, dtype=o.dtype).to(o.device)
                    if floating
                    else None
                )
                projections.append(None if r is None or o.numel() == 1 else r)
                if floating and o.numel() == 1:
                    projections[-1] = torch.ones((), dtype=o.dtype, device=o.device)
        total: Any = 0.0
        for o, r in zip(outs, projections, strict=True):
            if r is not None:
                total = total + (o * r).sum()
        return total

    devices = sorted({v.device.index or 0 for v in base.values() if v.device.type == "cuda"})
    with torch.random.fork_rng(devices=devices):
        return _run_check(objective, base, mode=mode, eps=float(eps), samples=int(samples),
                          directions=int(directions), generator=generator,
                          thresholds=low_high, atol=atol, worst=int(worst),
                          vectorize=vectorize, notes=[], start=start)  # fmt: skip
