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

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from typing import Any

import torch
from torch import nn

from initlab._core.validation import check_number
from initlab.doctor.calling import (
    LossFn,
    _check_inputs,
    _default_loss,
    _describe,
    _find,
    _first_line,
    _is_dropout,
    _main_output,
    _NoDropout,
    _sequence_loss_args,
    _shapes,
    _tensors,
)
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
from initlab.doctor.probe import _Call, _Probe, _queue_norms
from initlab.doctor.recommendations import _recommendations, recommend
from initlab.doctor.rows import _build_rows
from initlab.doctor.sections import DEFAULT_WIDTHS, check_sections, run_sections
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


def diagnose(
    model: nn.Module,
    inputs: torch.Tensor | Sequence[Any] | dict[str, Any],
    targets: torch.Tensor | None = None,
    loss_fn: LossFn | None = None,
    *,
    seed: int = 0,
    thresholds: Thresholds | None = None,
    label: str = "model",
    samples: int = 2048,
    recipe: str | None = None,
    sections: str | Sequence[str] | None = None,
    factory: Callable[[int], nn.Module] | None = None,
    widths: Sequence[int] = DEFAULT_WIDTHS,
) -> Diagnosis:
    """Run one forward and backward pass of ``model`` on ``inputs`` and diagnose its init.

    ``inputs``: how the model is called: a tensor ``(batch, ...)`` (``model(x)``), a tuple of
    positional arguments (``None`` entries allowed, ``model(*inputs)``) or a dict of keyword
    arguments (``model(**inputs)``, as Hugging Face models take a batch).

    The output may be a tensor, a tuple, a dict or a ``ModelOutput``-like object: the tensor
    diagnosed is its ``logits`` (by name), else ``last_hidden_state``, else the first
    floating-point tensor. The loss is ``loss_fn(output, targets)`` when ``targets`` are given
    (default: cross-entropy for integer targets, flattened over tokens for ``(batch, tokens,
    classes)`` outputs; BCE-with-logits for an :class:`initlab.MLP` with sigmoid output; MSE
    otherwise); else the model's own ``loss`` (by name, when its output has one, e.g. a Hugging
    Face model given ``labels``); else ``sum(P * y) / batch`` with a fixed ``P ~ N(0, 1)``
    drawn from ``seed``. ``samples``: output values kept per layer for histograms (0: none).

    The model runs in training mode with every dropout off (dropout would hide the init's
    effect): dropout modules, stochastic depth (timm's ``DropPath``, torchvision's
    ``StochasticDepth``), functional ``F.dropout`` calls and the attention dropout of
    ``F.scaled_dot_product_attention`` (Hugging Face attention) all pass their input through,
    through a ``TorchFunctionMode`` while the pass runs; batch norm stays in training mode
    (batch statistics, what training sees at step 0). Every module's training flag, the buffers
    (BatchNorm statistics), the parameters' ``.grad`` and the global RNG are as before when it
    returns, and all hooks are removed.

    Cost: the pass itself plus statistics gathered in its hooks (a few full reductions per
    module output and one per output gradient, no host sync until one copy at the end), and
    nothing else, except where a finding or an option needs more, each said here:

    - a signal out of float32's safe range for sums of squares (outputs below ``1e-12`` or
      with an overflowing sum of squares, output gradients with a sum of squares below
      ``1e-30``, zero gradients included): the pass runs again with float64 statistics
      (:meth:`~initlab.doctor.probe._Probe.needs_exact`);
    - a model with ``nn.LSTM``/``nn.GRU``/``nn.RNN`` layers: one step-by-step replay of each
      (gate saturation and gradient through time, :mod:`initlab.doctor.recurrent`);
    - an unhealthy model: one more forward without gradients for the recommendations
      (the traced data flow that ``fix`` and ``init_model`` share);
    - ``recipe``: the name of an init recipe (``initlab recipes`` lists them); the diagnosis
      then also holds a :class:`~initlab.doctor.recipe_check.RecipeCheck` (``.recipe``): each
      linear layer's observed output and gradient scale against the recipe's prediction, and
      the residual stream's growth with depth against ``1/sqrt(2L)`` branch scaling;
    - ``sections``: deeper checks as sections of the report (``.sections``, in the text and
      ``to_dict``), by name or ``"all"`` (:mod:`initlab.doctor.sections`): ``"spp"`` (residual
      networks: one more forward), ``"jacobian"`` (Jacobian spectrum: about 240 backward
      passes), ``"coord"`` (coordinate check: ``factory(width)`` built and trained 3 steps at
      each of ``widths``). Giving ``factory`` adds ``"coord"``.

    >>> import initlab, torch
    >>> net = initlab.mlp([64] * 20 + [1])
    >>> _ = initlab.init_model(net, "he_normal", seed=0)
    >>> x = torch.randn(128, 64, generator=torch.Generator().manual_seed(0))
    >>> initlab.diagnose(net, x).kinds
    ['healthy']
    """
    args, kwargs, thresholds = _validate(model, inputs, thresholds, targets)
    samples = int(check_number("samples", samples, minimum=0, integer=True))
    seed = int(check_number("seed", seed, minimum=0, integer=True))
    names = check_sections(sections)
    if factory is not None and "coord" not in names:
        names.append("coord")
    if "coord" in names and not callable(factory):
        raise ValueError(
            "sections 'coord' needs factory=a function of the width that builds the model "
            f"(e.g. lambda width: MyNet(width)); got {type(factory).__name__}"
        )
    measure = partial(_measure, model, args, kwargs, targets, loss_fn, seed, thresholds, samples)
    probe, per_weight, scalars = measure(exact=False)
    if probe.needs_exact():  # float32 sums of squares out of range: measure again, exactly
        probe, per_weight, scalars = measure(exact=True)
    result = _assemble(
        model, probe.calls, per_weight, thresholds, label, loss=scalars.get("loss"), example=inputs
    )
    if recipe is not None:
        from initlab.doctor.recipe_check import recipe_check

        result.recipe = recipe_check(model, inputs, recipe, seed=seed)
    if names:
        result.sections = run_sections(
            model, inputs, names, factory=factory, widths=widths, seed=seed
        )
    return result


def _measure(
    model: nn.Module,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    targets: torch.Tensor | None,
    loss_fn: LossFn | None,
    seed: int,
    thresholds: Thresholds,
    samples: int,
    *,
    exact: bool,
) -> tuple[_Probe, dict[int, dict[str, float]], dict[str, float]]:
    """One forward and one backward pass with the probe's hooks, statistics synced to the
    host once: the probe (its calls), per-weight statistics and ``{"loss": value}``."""
    probe = _Probe(model, thresholds, samples, exact=exact)
    per_weight: dict[int, dict[str, float]] = {}
    scalars: dict[str, float] = {}
    with _doctor_mode(model, probe, _tensors(args, kwargs)):
        output = _forward(model, args, kwargs)
        loss = _loss(model, output, targets, loss_fn, seed)
        probe.pending.append((loss.detach().reshape(1), [(scalars, "loss")]))
        probe.weight_stats(per_weight)
        _weight_grads(probe, loss, per_weight)
        probe.gradient_stats()
    probe.sync()
    return probe, per_weight, scalars


def _validate(
    model: Any, inputs: Any, thresholds: Any, targets: Any
) -> tuple[tuple[Any, ...], dict[str, Any], Thresholds]:
    """Check what :func:`diagnose` was given, once, where it enters."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"diagnose needs a torch.nn.Module; got {type(model).__name__}")
    args, kwargs = _check_inputs(inputs)
    thresholds = Thresholds() if thresholds is None else thresholds
    if not isinstance(thresholds, Thresholds):
        raise TypeError(f"thresholds must be an initlab.Thresholds; got {thresholds!r}")
    if targets is not None and not isinstance(targets, torch.Tensor):
        raise TypeError(f"targets must be a tensor or None; got {type(targets).__name__}")
    for t in _tensors(args, kwargs):
        if (t.is_floating_point() or t.is_complex()) and not bool(torch.isfinite(t).all()):
            bad = int((~torch.isfinite(t)).sum())
            raise ValueError(
                f"inputs {_shapes(args, kwargs)} hold {bad} non-finite values (nan or inf) of "
                f"{t.numel()}: the doctor measures how an init propagates a finite signal; "
                "clean the batch first"
            )
    return args, kwargs, thresholds


@contextmanager
def _doctor_mode(model: nn.Module, probe: _Probe, tensors: Sequence[torch.Tensor]) -> Iterator:
    """Training mode with dropout modules and stochastic depth off, the probe's hooks armed,
    the global RNG forked and gradients on; on exit the hooks are removed and every training
    flag and buffer (batch-norm statistics) is as before."""
    flags = [(m, m.training) for m in model.modules()]
    buffers = [(b, b.clone()) for b in model.buffers()]
    devices = sorted({a.device.index or 0 for a in tensors if a.device.type == "cuda"})
    try:
        model.train()
        for m in model.modules():
            if _is_dropout(m):
                m.eval()
        probe.attach()
        probe.arm()
        with torch.random.fork_rng(devices=devices), torch.enable_grad():
            yield
    finally:
        probe.detach()
        probe.armed = False
        for m, flag in flags:
            m.training = flag
        with torch.no_grad():
            for b, saved in buffers:
                b.copy_(saved)


def _forward(model: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``model(*args, **kwargs)`` with every dropout off; a failure becomes a one-line
    ``ValueError`` (``MemoryError`` for out of memory) naming the inputs."""
    try:
        with _NoDropout():  # the forward only: statistics and backward run without it
            return model(*args, **kwargs)
    except (torch.OutOfMemoryError, MemoryError) as error:
        raise MemoryError(
            f"the model ran out of memory on inputs {_shapes(args, kwargs)}: "
            f"{_first_line(error)}; use a smaller batch or input"
        ) from error
    except (RuntimeError, ValueError, TypeError, IndexError, AttributeError, KeyError) as e:
        if "not enough memory" in str(e) or "out of memory" in str(e):
            raise MemoryError(
                f"the model ran out of memory on inputs {_shapes(args, kwargs)}: "
                f"{_first_line(e)}; use a smaller batch or input"
            ) from e
        given = (
            f"of shape {', '.join(str(tuple(a.shape)) for a in args)}"
            if not kwargs and all(isinstance(a, torch.Tensor) for a in args)
            else _shapes(args, kwargs)
        )
        raise ValueError(
            f"the model rejected inputs {given}: {type(e).__name__}: {_first_line(e)}"
        ) from e


def _loss(
    model: nn.Module, output: Any, targets: torch.Tensor | None, loss_fn: LossFn | None, seed: int
) -> torch.Tensor:
    """The loss to differentiate (see :func:`diagnose`): ``loss_fn(output, targets)``, the
    model's own ``loss``, or ``sum(P * y) / batch`` with a fixed ``P ~ N(0, 1)``."""
    out = _main_output(output)
    if out is None:
        raise TypeError(
            "the model's output has no floating-point tensor to diagnose (looked for "
            f"'logits', 'last_hidden_state', then any float tensor); got {_describe(output)}"
        )
    own_loss = _find(output, "loss")
    if targets is None and loss_fn is None and isinstance(own_loss, torch.Tensor):
        return own_loss if own_loss.dim() == 0 else own_loss.mean()
    if targets is None:
        generator = torch.Generator(device=out.device).manual_seed(int(seed))
        projection = torch.randn(out.shape, generator=generator, device=out.device, dtype=out.dtype)
        return (out * projection).sum() / (out.shape[0] if out.dim() else 1)
    fn = loss_fn or _default_loss(model, targets)
    try:
        return fn(*_sequence_loss_args(fn, out, targets))
    except (RuntimeError, ValueError, TypeError, IndexError) as error:
        raise ValueError(
            f"the loss rejected output {tuple(out.shape)} and targets "
            f"{tuple(targets.shape)}: {_first_line(error)}"
        ) from error


def _weight_grads(probe: _Probe, loss: torch.Tensor, per_weight: dict[int, dict]) -> None:
    """The backward pass: gradients of the weights only (``.grad`` untouched), their norms
    queued in one fused call; the output-gradient hooks fire on the way."""
    wanted = [(key, w) for key, (_, w) in probe.weights.items() if w.requires_grad]
    if not (loss.requires_grad and wanted):
        return
    grads = torch.autograd.grad(loss, [w for _, w in wanted], allow_unused=True)
    found = [(key, g) for (key, _), g in zip(wanted, grads, strict=True) if g is not None]
    if found:
        _queue_norms(
            probe.pending,
            probe.repairs,
            [g for _, g in found],
            [(per_weight[key], "grad_weight") for key, _ in found],
        )


def _assemble(
    model: nn.Module,
    calls: Sequence[_Call],
    per_weight: dict[int, dict[str, float]],
    thresholds: Thresholds,
    label: str,
    *,
    loss: float | None = None,
    iteration: int | None = None,
    example: Any = None,
) -> Diagnosis:
    rows = _build_rows(calls, per_weight)
    verdicts = _verdicts(rows, thresholds, loss)
    # The activation after each layer comes from the discovery init_model uses. When there is
    # something to fix, it follows the real data flow of the diagnosed batch (one more forward
    # pass without gradients, the same answer init_model(..., example=inputs) gives, which fix
    # applies); a healthy model skips that pass (torch.fx or module order, no extra forward).
    traced = example if [v.kind for v in verdicts] != ["healthy"] else None
    return Diagnosis(
        layers=rows,
        verdicts=verdicts,
        recommendations=_recommendations(model, calls, per_weight, traced),
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

    A healthy model is left unchanged (``result.init`` is ``None``). ``result.success`` is
    true only when every finding went away and named a layer that was re-initialized
    (``result.resolved``); the text says which findings remain.

    ``seed`` seeds both the re-initialization and the diagnoses' random projection.
    """
    before = diagnose(
        model, inputs, targets, loss_fn, seed=seed, thresholds=thresholds, label="before"
    )
    if before.healthy:  # nothing to fix: leave the model as it is
        return Fix(before, before, None, {})
    rules: dict[str, str] = {}
    for rec in before.recommendations:
        rules[rec.parameter] = rec.scheme
        module_name = rec.parameter.rpartition(".")[0]
        module = model.get_submodule(module_name) if module_name else model
        if isinstance(getattr(module, "bias", None), torch.Tensor):
            rules[f"{module_name}.bias" if module_name else "bias"] = "zeros"
    rules_with_keep: dict[str, str] = {**rules, "*": "keep"}
    # The same example as the diagnosis: init_model and the recommendations share one
    # discovery of the activation after each layer (the traced data flow of this batch).
    report = init_model(model, "he_normal", rules=rules_with_keep, seed=seed, example=inputs)
    after = diagnose(
        model, inputs, targets, loss_fn, seed=seed, thresholds=thresholds, label="after"
    )
    return Fix(before, after, report, rules)
