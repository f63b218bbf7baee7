"""Finite-difference gradient checks for whole models and for plain functions: the public
entry points :func:`gradcheck` and :func:`gradcheck_function`.

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
default ``atol = max(16 * eps_float64 * max(|L|, 1), 4 r) / h`` (about ``3.6e-8`` for ``h =
1e-7``), the round-off of ``L`` divided by the step; ``r`` is the round-off of ``L`` measured
at the point (8 evaluations: batch norm over two values rounds far worse than float64).

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
  computed once); an in-place ``out += identity`` that vmap refuses is batched out of place
  (checked against the loop once); models that vmap cannot run (custom ``autograd.Function``
  without vmap support, ``.item()`` in the loss, ...) fall back to a plain loop, with the same
  numbers.
* ``"sample"``: ``samples`` random entries per tensor (a seeded generator), ``2 T samples``
  evaluations.
* ``"fast"``: directional derivatives. For each tensor separately, and for all tensors at
  once, ``directions`` random sign vectors ``d`` (entries +-1, so each entry moves by ``h``
  as in the full check) compare ``(L(w + h d) - L(w - h d)) / (2 h)`` with ``g . d``: a
  backward pass wrong by a factor ``c`` in one tensor gives relative error ``|c - 1| / (c +
  1)`` in *every* direction of that tensor, whatever its size. Per tensor, the relative error
  ``|num - ana| / (|num| + |ana|)`` is aggregated over the directions by the *median*.
  Directions come in two rounds (:func:`~initlab.gradient_check.runner._directions`): the
  first two, and the others only where those two are not both correct on their own: a wrong
  backward pass shows in every direction, so two agreeing ones cannot hide it. About ``4 (T
  + 1)`` evaluations where every tensor agrees at once, batched several tensors per vmap
  call; the cost does not grow with the parameter count.

Kinks (fast mode, :mod:`~initlab.gradient_check.kinks` and
:mod:`~initlab.gradient_check.directions`). The inputs of ReLU, ReLU6/hardtanh/clamp,
hardswish, hardsigmoid, leaky ReLU, abs and max-pool are recorded at the point. Entries that
move a unit sitting exactly on a kink (a ReLU6 input of exactly 0) are left out of the
directions (one-sided directions where a tensor has no others); each direction is measured
at the largest step up to ``h`` that moves no unit across a kink (seen during the evaluation
itself) and that balances truncation against round-off; a direction that no step clear of
round-off can measure is not compared, and a tensor none of whose directions could be
measured is ``inconclusive``, with the number of kinks, never a ``bug``.

Kinks in full and sample modes: the one-sided differences ``(L(w + h) - L(w)) / h`` and ``(L(w)
- L(w - h)) / h`` come for free. Where they disagree and keep disagreeing at ``h / 10``, the
loss has a kink *at* the point (a ReLU input exactly 0), the derivative does not exist, and
the analytic value is compared with the range between the two; where the gap vanishes at ``h
/ 10``, the step crossed a kink *near* the point and the central difference at ``h / 10`` is
used (see :func:`~initlab.gradient_check.numerics._at_kinks`). In every mode, a row that is
still not correct is measured again at ``h / 10`` and ``h / 100``: a difference that shrinks
with the step is truncation or kinks, never a ``bug`` (see
:mod:`initlab.gradient_check.decide`). Anything not finite is ``not finite``, never a pass.

Stochastic layers and state: the check works on a float64 deep copy of the model, so the
model, its gradients and its buffers are never modified. Dropout, drop-path, stochastic
depth (and RReLU) in training mode make the loss random, so the check refuses them unless
``dropout="off"``, which puts every module but batch norm in eval mode *in the copy*
(functional and attention dropout included, see :mod:`initlab.gradient_check.model_io`).
They are found before anything is measured, by type and by behaviour: any module whose
output changes between calls on the same input (a seeded RNG, so the same answer every
time), and the refusal names them. Batch norm in training mode is checked as it
trains, with the statistics of the batch; its running statistics are not updated (not even
in the copy). A loss that still changes between two evaluations at the same point is refused.
"""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Callable, Sequence
from typing import Any, Literal

import torch
from torch import nn

from initlab._core.rng import make_generator
from initlab._core.validation import check_choice, check_number, check_seed
from initlab.gradient_check.bugs import plant_bug
from initlab.gradient_check.losses import LOSSES, L2Loss, _takes_params, resolve_loss, with_l2
from initlab.gradient_check.memory import check_bytes, refuse_if_too_big
from initlab.gradient_check.model_io import (
    SMALL_BATCH,
    KeepFloat64,
    batch_statistics_sizes,
    changing_modules,
    random_modules,
    split_inputs,
    switch_off_randomness,
    to64,
)
from initlab.gradient_check.results import VERDICTS, Entry, GradCheck, TensorCheck
from initlab.gradient_check.runner import _run_check

__all__ = [
    "LOSSES",
    "MODES",
    "VERDICTS",
    "Entry",
    "GradCheck",
    "L2Loss",
    "TensorCheck",
    "gradcheck",
    "gradcheck_function",
    "plant_bug",
    "resolve_loss",
    "with_l2",
]

Mode = Literal["full", "sample", "fast"]
MODES = ("full", "sample", "fast")


def _check_options(
    mode: str,
    eps: float,
    samples: int,
    directions: int,
    thresholds: Sequence[float],
    atol: float | None,
    worst: int,
    seed: Any = 0,
) -> tuple[float, float]:
    check_choice("mode", mode, MODES)
    if seed is not None and not isinstance(seed, torch.Generator):
        check_seed(seed, "seed")
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


def _refuse_oversized(tensors: Sequence[torch.Tensor], mode: str, directions: int) -> None:
    count = sum(t.numel() for t in tensors)
    largest = max((t.numel() for t in tensors), default=0)
    what = f"a {mode} gradient check of {count:,} parameters" + (
        f" with {directions:,} directions" if mode == "fast" else ""
    )
    refuse_if_too_big(
        check_bytes(count, mode, int(directions), largest=largest),
        what,
        "use fewer directions, mode='sample' or a smaller model",
    )


def _reasons(work: nn.Module, args: tuple, kwargs: dict, result: GradCheck) -> list[str]:
    """Why a correct backward pass can still differ from finite differences here."""
    reasons = []
    sizes = batch_statistics_sizes(work, args, kwargs)
    small = [f"{name} ({count})" for name, count in sizes.items() if count <= SMALL_BATCH]
    if small:
        reasons.append(
            f"batch norm in training mode normalises over very few values per channel in "
            f"{_listed(small)}: its output is then nearly constant and sharply curved in the "
            "weights, so finite differences carry truncation error even for a correct backward "
            "pass; check with a larger batch (or the model in eval mode) to be sure"
        )
    if result.mode != "fast" and sum(t.kinks for t in result.tensors):
        reasons.append(
            "ReLU/max-pool kinks sit at the checked point (see the kinks column): there the "
            "derivative does not exist and any value between the one-sided ones is right"
        )
    return reasons


def _listed(names: Sequence[str], most: int = 6) -> str:
    shown = ", ".join(names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


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
    ``"mse"`` (built-in losses find the logits by name in a dict or ``ModelOutput``;
    ``cross_entropy`` takes ``(batch, tokens, vocab)`` logits with ``(batch, tokens)`` ids), or
    ``"model"`` (the loss the model returns, e.g. a Hugging Face model given ``labels``); a
    ``loss_fn`` with a ``params`` keyword receives the (perturbed, float64) parameters by name,
    so parameter terms are checked too (see :func:`with_l2`). ``inputs``: a tensor, a tuple of
    positional inputs or a dict of keyword inputs (``model(**inputs)``). Every trainable parameter
    (``requires_grad``) of shape ``s`` is checked; the model and the data are copied to
    float64 first and the model is never modified.

    ``mode``: ``"full"`` (every entry, ``2 P`` evaluations), ``"sample"`` (``samples`` random
    entries per tensor) or ``"fast"`` (``directions`` random directional derivatives per
    tensor and overall, the first two of them deciding where they agree; cost independent of
    ``P``). ``eps``: the step ``h``. ``seed``: for
    the random entries/directions. ``dropout``: ``"refuse"`` (a ``ValueError`` if dropout is
    active) or ``"off"`` (every dropout switched off in the check's copy, functional and
    attention dropout included; batch norm still uses batch statistics). ``thresholds``:
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
    low_high = _check_options(mode, eps, samples, directions, thresholds, atol, worst, seed)
    args, kwargs = split_inputs(inputs)
    _refuse_oversized([p for p in model.parameters() if p.requires_grad], mode, directions)

    notes: list[str] = []
    work = copy.deepcopy(model)
    batch_norms = [
        name
        for name, m in work.named_modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training and m.track_running_stats
    ]
    for name in batch_norms:
        work.get_submodule(name).track_running_stats = False
    work = work.to(torch.float64)
    args64, kwargs64, targets64 = to64(args), to64(kwargs), to64(targets)
    if dropout == "refuse":
        # by type first; only where none is known, by behaviour (a forward with replays)
        stochastic = random_modules(work)
        by_behaviour = [] if stochastic else changing_modules(work, args64, kwargs64)
        if stochastic or by_behaviour:
            shown = [*stochastic, *(f"{n} (output changes between two calls on the same "
                                    "input)" for n in by_behaviour)]  # fmt: skip
            raise ValueError(
                f"dropout is active (training mode) in {_listed(shown)}: it makes the loss "
                "random and a gradient check meaningless; pass dropout='off' to check the "
                "network with every dropout switched off (or call model.eval())"
            )
    else:
        stochastic = random_modules(work)
        switch_off_randomness(work)
        if stochastic:
            notes.append(f"dropout switched off for the check in {_listed(stochastic)}")
        still = changing_modules(work, args64, kwargs64)
        if still:
            raise ValueError(
                f"{_listed(still)}: output changes between two calls on the same input even "
                "with dropout switched off (every module but batch norm in eval mode); a "
                "gradient check needs a deterministic loss"
            )
    if batch_norms:
        notes.append(
            f"batch norm ({_listed(batch_norms)}) checked in training mode with batch "
            "statistics; running statistics not updated"
        )
    for p in work.parameters():
        p.grad = None
    base = {n: p.detach() for n, p in work.named_parameters() if p.requires_grad}
    empty = [n for n, v in base.items() if v.numel() == 0]
    base = {n: v for n, v in base.items() if v.numel() > 0}
    if empty:
        notes.append(f"{_listed(empty)}: no entries (a layer of size 0), nothing to check")
    if not base:
        raise ValueError(
            "the model has no trainable parameters (requires_grad) with entries to check"
            + (f"; {_listed(empty)} have size 0" if empty else "")
        )
    takes_params = _takes_params(loss_fn)

    keep64 = KeepFloat64()
    calls = [0]

    def objective(params: dict[str, torch.Tensor]) -> torch.Tensor:
        # the first forward shows whether the model casts to a lower precision; where it
        # does not, the others run without the mode (a Python call per torch function)
        calls[0] += 1
        with keep64 if calls[0] == 1 or keep64.skipped else contextlib.nullcontext():
            outputs = torch.func.functional_call(work, params, args64, kwargs64)
            if takes_params:
                return loss_fn(outputs, targets64, params=params)
            return loss_fn(outputs, targets64)

    generator = make_generator(seed)
    devices = sorted({v.device.index or 0 for v in base.values() if v.device.type == "cuda"})
    with torch.random.fork_rng(devices=devices):
        result = _run_check(objective, base, mode=mode, eps=float(eps), samples=int(samples),
                            directions=int(directions), generator=generator,
                            thresholds=low_high, atol=atol, worst=int(worst),
                            vectorize=vectorize, notes=notes, start=start,
                            model=work)  # fmt: skip
    if result.verdict != "correct":
        result.notes.extend(_reasons(work, args64, kwargs64, result))
    if keep64.skipped:
        casts = ", ".join(f"{k} x{v}" for k, v in sorted(keep64.skipped.items()))
        result.notes.append(
            f"the forward casts to a lower precision ({casts}); kept in float64 for the check, "
            "since float32 round-off would swamp the finite differences"
        )
    return result


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
    low_high = _check_options(mode, eps, samples, directions, thresholds, atol, worst, seed)
    tensors = [i for i, v in enumerate(inputs) if isinstance(v, torch.Tensor)
               and v.is_floating_point()]  # fmt: skip
    checked = [i for i in tensors if inputs[i].requires_grad] or tensors
    if not checked:
        raise TypeError("gradcheck_function needs at least one floating-point tensor input")
    _refuse_oversized([inputs[i] for i in checked], mode, directions)
    args = [to64(v) if isinstance(v, torch.Tensor) else v for v in inputs]
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
