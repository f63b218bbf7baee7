"""The doctor: measure signal propagation through a model and name what is wrong with its init.

:func:`diagnose` runs one forward and one backward pass on a batch with hooks on every leaf
module (and every module that owns a weight), records per-layer statistics
(:mod:`initlab.probe`), names what is wrong (:mod:`initlab.verdicts`) and recommends an init
for every weight layer (:mod:`initlab.recommendations`). :func:`fix` re-initializes with the
recommendations and diagnoses again. The result types (:class:`Diagnosis`, :class:`Fix`, ...)
live in :mod:`initlab.diagnosis` and are re-exported here.

Without ``targets`` the loss is a fixed random projection of the output, ``L = sum(P * y) / B``
with ``P ~ N(0, 1)`` of the output's shape drawn from ``seed`` (never the global RNG) and ``B``
the batch size, so that ``dL/dy = P / B`` has the scale of a mean loss.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from initlab._core.validation import check_number
from initlab.doctor.diagnosis import (
    KINDS,
    Diagnosis,
    Fix,
    LayerStats,
    Recommendation,
    Thresholds,
    Verdict,
    VerdictKind,
)
from initlab.doctor.probe import _build_rows, _Call, _first_tensor, _Probe, _queue_norms, _sync
from initlab.doctor.recommendations import _recommendations, recommend
from initlab.doctor.verdicts import _verdicts
from initlab.initializers.apply import init_model

__all__ = [
    "KINDS",
    "Diagnosis",
    "Fix",
    "LayerStats",
    "LossFn",
    "Recommendation",
    "Thresholds",
    "Verdict",
    "VerdictKind",
    "diagnose",
    "fix",
    "recommend",
]

_DROPOUT = (
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
    nn.AlphaDropout,
    nn.FeatureAlphaDropout,
)

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
    seed = int(check_number("seed", seed, minimum=0, integer=True))

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
