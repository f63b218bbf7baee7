"""The numerics of a gradient check: batched loss evaluations, central and one-sided
differences over single entries, kinks met by them, and the relative difference (the
directions of fast mode are in :mod:`initlab.gradient_check.directions`).

See :mod:`initlab.gradient_check.check` for the math.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping

import torch

from initlab.gradient_check.kinks import KinkWatch

# Largest number of perturbed parameter elements held at once by one vmap call (float64:
# 8 bytes each, so 8 MiB: cache-friendly), and the most perturbed settings per call.
_CHUNK_ELEMENTS = 1 << 20
_CHUNK_SETTINGS = 256


_OUT_OF_PLACE = {torch.Tensor.add_: torch.add, torch.Tensor.sub_: torch.sub,
                 torch.Tensor.mul_: torch.mul, torch.Tensor.div_: torch.div}  # fmt: skip


class _OutOfPlace(torch.overrides.TorchFunctionMode):
    """Under vmap, ``a += b`` (``a.add_(b)``; also ``sub_``, ``mul_``, ``div_``) with ``b``
    batched and ``a`` not is computed out of place: vmap cannot write a batch of results into
    an unbatched tensor. Python rebinds ``a`` to what ``+=`` returns, so ``out += identity``
    (torchvision's ResNet blocks, the perturbed tensor in the downsample branch) gives the same
    numbers; a caller that kept another reference to ``a`` would not see the change, which is
    why :class:`_Objective` checks the first such call against the plain loop."""

    def __init__(self) -> None:
        super().__init__()
        self.rewritten = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _OUT_OF_PLACE and len(args) > 1 and isinstance(args[1], torch.Tensor):
            batched = torch._C._functorch.is_batchedtensor
            if batched(args[1]) and not batched(args[0]):
                self.rewritten += 1
                return _OUT_OF_PLACE[func](*args, **kwargs)
        return func(*args, **kwargs)


class _Objective:
    """A scalar function of named tensors, evaluated at many perturbed settings at once.

    Settings are batched with ``torch.func.vmap``. Where vmap fails on an in-place ``out +=
    identity`` whose right side is batched and left side is not (torchvision's ResNet, the
    perturbed tensor in the downsample branch), that group of tensors is evaluated by vmap with
    such updates made out of place (:class:`_OutOfPlace`), once checked against the plain loop
    at the first setting (``rewritten``). Where vmap still fails (a custom
    ``autograd.Function`` without a vmap rule, ``.item()``) or the check disagrees, that group
    is evaluated in a plain loop from then on, with the same numbers (``looped``); other groups
    keep vmap. ``vectorized``: whether any call used vmap.

    With a :class:`~initlab.gradient_check.kinks.KinkWatch` (``watch``), every evaluation also
    returns the largest fraction of a kink margin its step used (and, when asked, how many
    units changed piece): see :meth:`evaluate`.
    """

    def __init__(
        self,
        fn: Callable[[dict[str, torch.Tensor]], torch.Tensor],
        base: dict[str, torch.Tensor],
        vectorize: bool,
        watch: KinkWatch | None = None,
    ) -> None:
        self.fn = fn
        self.base = base
        self.vectorize = vectorize
        self.watch = watch
        self.vectorized = False
        self.looped: list[tuple[str, ...]] = []
        self.rewritten: list[tuple[str, ...]] = []
        self.evaluations = 0
        self._count = False

    def _value(self, changes: Mapping[str, torch.Tensor]) -> torch.Tensor:
        value = self.fn({**self.base, **changes})
        if not isinstance(value, torch.Tensor) or value.numel() != 1:
            shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value)
            raise ValueError(f"the loss must be a scalar tensor; got {shape}")
        return value.reshape(())

    def _one(self, changes: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
        if self.watch is None:
            return (self._value(changes),)
        with self.watch.evaluating(self._count):
            value = self._value(changes)
        ratio, count = self.watch.result()
        return value, ratio.to(value.dtype).reshape(()), count.reshape(())

    def values(self, batched: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """``L`` at ``B`` settings: ``batched[name]`` has shape ``(B, *shape)``; the other
        tensors stay at ``base``. Returns shape ``(B,)``."""
        return self.evaluate(batched)[0]

    def evaluate(
        self,
        batched: Mapping[str, torch.Tensor],
        count: bool = False,
        elements: int = _CHUNK_ELEMENTS,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """:meth:`values`, and with a watch the largest margin fraction ``r`` of each setting
        (``r >= 1``: a unit changed piece) and, with ``count``, how many units did.
        ``elements``: the most perturbed entries one batched call holds."""
        count_settings = next(iter(batched.values())).shape[0]
        per_setting = sum(v[0].numel() for v in batched.values())
        step = max(1, min(_CHUNK_SETTINGS, elements // max(per_setting, 1)))
        out = []
        self._count = count
        with torch.no_grad():
            for start in range(0, count_settings, step):
                chunk = {k: v[start : start + step] for k, v in batched.items()}
                out.append(self._chunk(chunk))
        self.evaluations += count_settings
        parts = [torch.cat(p) for p in zip(*out, strict=True)]
        if self.watch is None:
            return parts[0], None, None
        return parts[0], parts[1], parts[2]

    def _vmap(
        self, chunk: Mapping[str, torch.Tensor], out_of_place: bool
    ) -> tuple[torch.Tensor, ...]:
        with warnings.catch_warnings():
            # vmap runs ops without a batching rule in a loop, and says so once per op
            warnings.filterwarnings("ignore", message="There is a performance drop")
            if not out_of_place:
                return torch.func.vmap(self._one)(dict(chunk))
            with _OutOfPlace():
                return torch.func.vmap(self._one)(dict(chunk))

    def _chunk(self, chunk: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
        group = tuple(chunk)
        # a group with a tensor that vmap could not batch before goes straight to the loop
        # (fast mode batches varying groups of tensors together: each failed try costs)
        failed = {name for looped in self.looped for name in looped}
        if self.vectorize and not failed.intersection(group):
            try:
                values = self._vmap(chunk, out_of_place=group in self.rewritten)
            except Exception:
                values = self._rewrite(group, chunk)
            if values is not None:
                self.vectorized = True
                return values
        count = next(iter(chunk.values())).shape[0]
        ones = [self._one({k: v[i] for k, v in chunk.items()}) for i in range(count)]
        return tuple(torch.stack(p) for p in zip(*ones, strict=True))

    def _rewrite(
        self, group: tuple[str, ...], chunk: Mapping[str, torch.Tensor]
    ) -> tuple[torch.Tensor, ...] | None:
        """vmap with in-place updates out of place, checked against the loop at the first
        setting; ``None`` (and the group looped from then on) where that fails or disagrees."""
        if group not in self.rewritten:
            try:
                values = self._vmap(chunk, out_of_place=True)
                plain = self._one({k: v[0] for k, v in chunk.items()})[0]
            except Exception:
                values = plain = None
            agree = (
                values is not None
                and plain is not None
                and bool((values[0][0] - plain).abs() <= 1e-10 * max(1.0, float(plain.abs())))
            )
            if agree:
                self.rewritten.append(group)
                return values
        self.looped.append(group)  # a real error in the loss is raised by the loop
        return None


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
    atol``, ``refine`` recomputes both at ``h / 10``:

    * the gap shrinks by less than half (it would shrink ten-fold if it came from curvature):
      a kink *at* the point. The derivative does not exist there, any value between the two
      one-sided ones is a valid choice (PyTorch takes ``relu'(0) = 0``), and the analytic value
      is compared with that range (the numeric value becomes the point of the range closest
      to it);
    * the gap shrinks more: curvature, or a kink *near* the point, crossed by the step ``h``
      but not by ``h / 10`` (common in deep ReLU/max-pool networks, where a step moves
      thousands of pre-activations at once). The central difference at ``h / 10`` is used.

    Everywhere else: the central difference at ``h``.
    """
    gap = (plus - minus).abs()
    flagged = gap > 1e-3 * (plus.abs() + minus.abs()) + atol
    kinks = torch.zeros_like(flagged)
    numeric = central.clone()
    if bool(flagged.any()):
        plus2, minus2 = refine(flagged)
        still = (plus2 - minus2).abs() > 0.5 * gap[flagged]
        kinks[flagged.clone()] = still
        numeric[flagged] = torch.where(still, numeric[flagged], (plus2 + minus2) / 2)
    low, high = torch.minimum(plus, minus), torch.maximum(plus, minus)
    return torch.where(kinks, torch.clamp(ana, low, high), numeric), kinks


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


def _compare(
    num: torch.Tensor, ana: torch.Tensor, atol: float | torch.Tensor, mode: str
) -> tuple[float, bool]:
    """Relative difference and whether it is at round-off level (see the module docstring).

    Fast mode (directions): the median over directions of ``|num - ana| / (|num| + |ana|)``,
    and round-off where the median of ``|num - ana| / atol`` is at most 1 (``atol`` may be a
    tensor: one level per direction, for directions measured at their own step). Entries:
    the norm ratio, and round-off where ``||num - ana|| <= atol sqrt(n)``. Anything non-finite
    (a NaN numeric derivative when the step is lost in round-off, an infinite gradient) gives
    a NaN difference that is never at round-off level: never a pass.
    """
    if not (bool(torch.isfinite(num).all()) and bool(torch.isfinite(ana).all())):
        return math.nan, False
    diff = num - ana
    if mode == "fast":
        scale = num.abs() + ana.abs()
        per = torch.where(scale > 0, diff.abs() / scale.clamp_min(1e-300), 0.0)
        return float(per.median()), bool((diff.abs() / atol).median() <= 1)
    scale = float(num.norm() + ana.norm())
    if not math.isfinite(scale):  # finite entries whose norm overflows
        return math.nan, False
    rel = float(diff.norm()) / scale if scale > 0 else 0.0
    return rel, bool(diff.norm() <= float(atol) * math.sqrt(diff.numel()))


def _typical_diff(num: torch.Tensor, ana: torch.Tensor, mode: str) -> float:
    """The ``|num - ana|`` that :func:`_compare` holds against ``atol``: the median over
    directions (fast), the root mean square over entries (full, sample)."""
    if num.numel() == 0:
        return 0.0
    diff = (num - ana).abs()
    if mode == "fast":
        return float(diff.median())
    return float(diff.norm()) / math.sqrt(diff.numel())


def _unravel(i: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    index = []
    for size in reversed(shape):
        index.append(i % size)
        i //= size
    return tuple(reversed(index))
