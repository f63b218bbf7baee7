"""One training run of any ``nn.Module`` with plain autograd: :func:`train`.

The batched twin for many MLPs at once is :func:`initlab.bench.stacked.train_stacked`; both
share the math below, the options (:class:`~initlab.bench.options.RunOptions`), the losses
(:mod:`initlab.bench.losses`), the optimizers (:mod:`initlab.bench.optimizers`) and the result
types (:mod:`initlab.bench.results`).

- L2 (``l2 = lambda``, the course's convention): the loss gains ``lambda / (2 m) * sum_l
  ||W_l||_F^2`` over weight matrices (not biases), so each weight gradient gains
  ``lambda / m * W_l``.
- clipping (after L2, before the optimizer): :mod:`initlab.bench.clip`.
- history at iterations ``0, k, 2k, ...`` and after the last update: loss and accuracy on the
  whole training set (dropout off), per-layer weight norm ``||W_l||_F`` and gradient norm of the
  weight gradient (before clipping) at that iteration.
- divergence: the first iteration whose training loss (or a parameter) is NaN or Inf stops the
  run with status ``diverged``; results after it are not reported.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn

from initlab._core.progress import progress_bar
from initlab._core.rng import seeded_global_rng
from initlab._core.threads import few_threads
from initlab._core.validation import check_choice, check_seed
from initlab.bench import clip as _clip
from initlab.bench.inputs import DataLike, as_dataset
from initlab.bench.losses import OUTPUTS, accuracy, loss_from_logits, targets
from initlab.bench.optimizers import Batches, ElementwiseOptimizer
from initlab.bench.options import OptimizerName, RunOptions, merge_options
from initlab.bench.results import History, Run
from initlab.initializers.apply import init_model
from initlab.initializers.registry import Spec, get

Optimizer = OptimizerName
DTYPES = {"float32": torch.float32, "float64": torch.float64}


@runtime_checkable
class Monitor(Protocol):
    """Watches a training run: ``step(iteration)`` is called before each forward pass."""

    def step(self, iteration: int) -> None: ...


def train(
    model: nn.Module,
    data: DataLike,
    *,
    init: Spec | None = "he",
    optimizer: Optimizer = "gd",
    lr: float = 0.01,
    iterations: int = 15000,
    batch_size: int | None = None,
    l2: float = 0.0,
    clip_norm: float | None = None,
    clip_value: float | None = None,
    clip_adaptive: float | None = None,
    momentum: float = 0.9,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    seed: int = 0,
    log_every: int | None = None,
    dtype: torch.dtype | str | None = None,
    output: str | None = None,
    monitor: Monitor | None = None,
    progress: bool = True,
    options: RunOptions | None = None,
) -> Run:
    """Train ``model`` on ``data`` in place; returns a :class:`Run` (history, final metrics).

    ``init``: a scheme spec applied with :func:`initlab.init_model` (seeded by ``seed``), or
    ``None`` to keep the model's weights. ``output``: how the logits are read (``sigmoid``,
    ``softmax`` or ``linear``); default the model's ``.output`` attribute, else sigmoid for
    one output unit and softmax for several. ``batch_size`` (with ``optimizer="sgd"``,
    ``momentum`` or ``adam``): mini-batches drawn by reshuffling every epoch;
    ``iterations`` counts updates. Dropout layers in the model are active while training
    (their masks come from torch's RNG seeded with ``seed`` inside ``fork_rng``, so the
    global RNG is left as it was). ``monitor.step(i)`` is called before each forward pass.
    The run options may also come as one ``options=RunOptions(...)`` (then leave the
    individual keywords at their defaults).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"train needs a torch.nn.Module; got {type(model).__name__}")
    if monitor is not None and not callable(getattr(monitor, "step", None)):
        raise TypeError(f"monitor must have a step(iteration) method; got {type(monitor).__name__}")
    if isinstance(dtype, torch.dtype):
        if dtype not in DTYPES.values():
            raise ValueError(f"dtype must be float32 or float64; got {dtype}")
        dtype = str(dtype).removeprefix("torch.")
    opts = merge_options(options, "train", optimizer=optimizer, lr=lr, iterations=iterations,
                         batch_size=batch_size, l2=l2, clip_norm=clip_norm,
                         clip_value=clip_value, clip_adaptive=clip_adaptive,
                         momentum=momentum, betas=betas, eps=eps, log_every=log_every,
                         dtype=dtype)  # fmt: skip
    if opts.dropout:
        raise ValueError(
            f"train uses the model's own dropout layers; got options.dropout={opts.dropout} "
            f"(build the model with dropout, e.g. initlab.mlp(..., dropout=p))"
        )
    seed = check_seed(seed)
    dataset = as_dataset(data)
    if opts.dtype is not None:
        model.to(DTYPES[opts.dtype])
    if init is not None:
        get(init)
    setup = _Setup.build(model, dataset, output, opts, seed)
    if init is not None:
        init_model(model, init, seed=seed)
    scheme = "kept" if init is None else str(init)
    start = time.perf_counter()
    threads = 1 if sum(p.numel() for p in setup.params) * setup.n < 50_000_000 else None
    with (
        seeded_global_rng(seed, [setup.device]),
        few_threads(threads),
        progress_bar(progress, opts.iterations, "train") as advance,
    ):
        status, diverged_at, diverged_layer = _loop(setup, opts, monitor, advance)
    seconds = time.perf_counter() - start
    return _result(setup, opts, dataset, scheme, seed, seconds, status, diverged_at,
                   diverged_layer)  # fmt: skip


def _result(
    setup: _Setup, opts: RunOptions, dataset: Any, scheme: str, seed: int, seconds: float,
    status: str, diverged_at: int | None, diverged_layer: str | None,
) -> Run:  # fmt: skip
    """The :class:`Run` of a finished loop (test accuracy measured here)."""
    model, history, config = setup.model, setup.history, setup.config(opts, dataset.name)
    if status == "diverged":
        return Run(scheme, seed, "diverged", int(diverged_at or 0), None, None, None, seconds,
                   history, diverged_at, diverged_layer, config, model)  # fmt: skip
    test_acc = None
    if dataset.x_test.shape[0]:
        model.eval()
        with torch.no_grad():
            test_logits = model(dataset.x_test.to(setup.device, setup.dtype))
        test_acc = accuracy(setup.output, test_logits, dataset.y_test.to(setup.device))
    model.train()
    return Run(scheme, seed, "finished", opts.iterations, history.loss[-1],
               history.train_accuracy[-1], test_acc, seconds, history, None, None, config,
               model)  # fmt: skip


@dataclass
class _Setup:
    """What one run's loop works on: the model's trainable tensors, the data on the model's
    device and dtype, the loss targets, the optimizer and the mini-batch sampler."""

    model: nn.Module
    params: list[torch.Tensor]
    layers: list[tuple[str, torch.Tensor]]
    x: torch.Tensor
    y: torch.Tensor
    t_all: torch.Tensor
    output: str
    opt: ElementwiseOptimizer
    batches: Batches
    history: History

    @property
    def n(self) -> int:
        return int(self.x.shape[0])

    @property
    def device(self) -> torch.device:
        return self.params[0].device

    @property
    def dtype(self) -> torch.dtype:
        return self.params[0].dtype

    @classmethod
    def build(
        cls, model: nn.Module, dataset: Any, output: str | None, opts: RunOptions, seed: int
    ) -> _Setup:
        params = [p for p in model.parameters() if p.requires_grad]
        if not params:
            raise ValueError("the model has no trainable parameters")
        x = dataset.x_train.to(params[0].device, params[0].dtype)
        y = dataset.y_train.to(params[0].device)
        n_out = _output_units(model, x)
        output = (
            output or getattr(model, "output", None) or ("sigmoid" if n_out == 1 else "softmax")
        )
        check_choice("output", output, OUTPUTS)
        n = int(x.shape[0])
        batch = n if opts.batch_size is None else min(opts.batch_size, n)
        return cls(
            model, params, _layers(model), x, y, targets(output, y, n_out, params[0].dtype),
            output, ElementwiseOptimizer(params, opts),
            Batches(n, batch, torch.Generator(device="cpu").manual_seed(seed)), History(),
        )  # fmt: skip

    def config(self, opts: RunOptions, data_name: str) -> dict[str, Any]:
        return {"optimizer": opts.optimizer, "lr": opts.lr, "iterations": opts.iterations,
                "batch_size": opts.batch_size, "l2": opts.l2, "clip_norm": opts.clip_norm,
                "clip_value": opts.clip_value, "clip_adaptive": opts.clip_adaptive,
                "dtype": str(self.dtype).removeprefix("torch."), "output": self.output,
                "data": data_name}  # fmt: skip

    def record(self, iteration: int, l2: float) -> None:
        """Append full-data loss (with L2), accuracy and per-layer norms to the history."""
        model = self.model
        was_training = model.training
        model.eval()
        with torch.no_grad():
            logits = model(self.x)
            loss = loss_from_logits(self.output, logits, self.t_all)
            if l2:
                loss = loss + l2 / (2 * self.n) * sum(w.pow(2).sum() for _, w in self.layers)
        model.train(was_training)
        self.history.append(
            iteration, float(loss), accuracy(self.output, logits, self.y),
            {name: float(w.detach().norm()) for name, w in self.layers},
            {name: float(w.grad.norm()) if w.grad is not None else float("nan")
             for name, w in self.layers},
        )  # fmt: skip


def _output_units(model: nn.Module, x: torch.Tensor) -> int:
    """Output units of ``model`` on one row of ``x``; a feature-count mismatch is a clear error."""
    was_training = model.training
    model.eval()  # no dropout draws from the global RNG while probing the output size
    try:
        with torch.no_grad():
            return int(model(x[:1]).shape[-1])
    except RuntimeError as error:
        if "shape" in str(error) or "size" in str(error):
            raise ValueError(
                f"the data has {x.shape[1]} features, which the model does not accept "
                f"({str(error).splitlines()[0]})"
            ) from None
        raise
    finally:
        model.train(was_training)


def _loop(
    setup: _Setup, opts: RunOptions, monitor: Monitor | None, advance: Callable[..., None]
) -> tuple[str, int | None, str | None]:
    """Run ``opts.iterations`` updates (recording the history); returns the status, and the
    iteration and layer of a divergence."""
    model, params, l2 = setup.model, setup.params, opts.l2
    weight_ids = {id(w) for _, w in setup.layers}
    log_every, iterations = opts.log_interval, opts.iterations
    model.train()
    for it in range(iterations + 1):
        final = it == iterations
        if monitor is not None and not final:
            monitor.step(it)
        if setup.batches.batch == setup.n:
            xb, tb = setup.x, setup.t_all
        else:
            idx = setup.batches.next().to(setup.device)
            xb, tb = setup.x[idx], setup.t_all[idx]
        for p in params:
            p.grad = None
        loss = loss_from_logits(setup.output, model(xb), tb)
        if not bool(torch.isfinite(loss)) or not all(bool(torch.isfinite(p).all()) for p in params):
            _clear_grads(params)
            return "diverged", it, _first_nonfinite_module(model, xb) or "loss"
        loss.backward()
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        if l2:
            for p, g in zip(params, grads, strict=True):
                if id(p) in weight_ids:
                    g.add_(p.detach(), alpha=l2 / xb.shape[0])
        if final or it % log_every == 0:
            setup.record(it, l2)
            if final:
                break
            advance(log_every if it else 1)
        _clip_grads(params, grads, opts)
        with torch.no_grad():
            setup.opt.step(grads)
    _clear_grads(params)
    return "finished", None, None


def _clip_grads(params: list[torch.Tensor], grads: list[torch.Tensor], opts: RunOptions) -> None:
    if opts.clip_adaptive is not None:
        _clip.clip_adaptive_([p.detach() for p in params], grads, opts.clip_adaptive)
    if opts.clip_norm is not None:
        _clip.clip_by_norm_(grads, opts.clip_norm)
    if opts.clip_value is not None:
        _clip.clip_by_value_(grads, opts.clip_value)


def _clear_grads(params: list[torch.Tensor]) -> None:
    for p in params:
        p.grad = None


def _first_nonfinite_module(model: nn.Module, x: torch.Tensor) -> str | None:
    """The first module (in execution order) whose parameters or output are non-finite."""
    found: list[str] = []
    handles = []
    for name, module in model.named_modules():
        if not any(True for _ in module.parameters(recurse=False)):
            continue

        def hook(mod: nn.Module, inputs: Any, out: Any, name: str = name) -> None:
            if found:
                return
            bad_param = any(not bool(torch.isfinite(p).all())
                            for p in mod.parameters(recurse=False))  # fmt: skip
            if bad_param or (isinstance(out, torch.Tensor) and not bool(torch.isfinite(out).all())):
                found.append(name)

        handles.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return found[0] if found else None


def _layers(model: nn.Module) -> list[tuple[str, torch.Tensor]]:
    """(layer name, weight) for every parameter with >= 2 dims, named by its module."""
    out = []
    for name, param in model.named_parameters():
        if param.dim() >= 2:
            out.append((name.rsplit(".", 1)[0] if "." in name else name, param))
    return out


def __getattr__(name: str) -> Any:
    """Names that lived here before the split (``train_stacked``, ``progress_bar``, ...)."""
    moved = {
        "train_stacked": "initlab.bench.stacked",
        "History": "initlab.bench.results",
        "Run": "initlab.bench.results",
        "as_dataset": "initlab.bench.inputs",
        "progress_bar": "initlab._core.progress",
        "few_threads": "initlab._core.threads",
        "targets": "initlab.bench.losses",
        "loss_from_logits": "initlab.bench.losses",
        "accuracy": "initlab.bench.losses",
    }
    if name in moved:
        import importlib

        return getattr(importlib.import_module(moved[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["History", "Monitor", "Run", "train"]
